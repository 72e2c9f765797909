// Workspace buffers the CPU kernels keep between calls (see buffer_cache.h).
#include "cpu/buffer_cache.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

namespace mx_dcn {
namespace cpu {
namespace {

int64_t limit_from_env() {
  const char* raw = std::getenv("MX_DCN_WORKSPACE_CACHE_MB");
  if (raw == nullptr || *raw == '\0') return int64_t(64) << 20;
  const double mb = std::atof(raw);  // mx_dcn.workspace rejects a malformed value with a clear error
  return mb > 0.0 ? static_cast<int64_t>(mb * 1024 * 1024) : 0;
}

// One cache for the process (a lock per call, not per thread: a call's caller may be any thread).
struct Cache {
  std::mutex lock;
  std::vector<at::Tensor> buffers;  // unreferenced byte tensors
  int64_t bytes = 0;
  int64_t limit = limit_from_env();

  // Drops the largest buffers until at most `limit` bytes stay. Caller holds the lock.
  void trim() {
    if (bytes <= limit) return;
    std::sort(buffers.begin(), buffers.end(),
              [](const at::Tensor& a, const at::Tensor& b) { return a.numel() < b.numel(); });
    while (bytes > limit && !buffers.empty()) {
      bytes -= buffers.back().numel();
      buffers.pop_back();
    }
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: no order-of-destruction issue at exit
  return *c;
}

}  // namespace

at::Tensor take_buffer(int64_t bytes) {
  const int64_t size = std::max<int64_t>(64, (bytes + 63) / 64 * 64);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> hold(c.lock);
    auto best = c.buffers.end();
    for (auto it = c.buffers.begin(); it != c.buffers.end(); ++it) {
      if (it->numel() >= size && (best == c.buffers.end() || it->numel() < best->numel())) best = it;
    }
    if (best != c.buffers.end()) {
      at::Tensor found = std::move(*best);
      c.buffers.erase(best);
      c.bytes -= found.numel();
      return found;
    }
  }
  return at::empty({size}, at::TensorOptions().dtype(at::kByte));
}

void give_back_buffers(std::vector<at::Tensor>& buffers) {
  Cache& c = cache();
  std::lock_guard<std::mutex> hold(c.lock);
  for (at::Tensor& b : buffers) {
    // use_count 1: only `b` refers to the storage (no view of it left the call).
    if (c.limit > 0 && b.storage().use_count() == 1) {
      c.bytes += b.numel();
      c.buffers.push_back(std::move(b));
    }
  }
  buffers.clear();
  c.trim();
}

int64_t workspace_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> hold(c.lock);
  return c.limit;
}

void set_workspace_cache_limit(int64_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> hold(c.lock);
  c.limit = std::max<int64_t>(0, bytes);
  c.trim();
}

int64_t workspace_cache_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> hold(c.lock);
  return c.bytes;
}

void release_workspace_cache() {
  Cache& c = cache();
  std::vector<at::Tensor> dropped;
  {
    std::lock_guard<std::mutex> hold(c.lock);
    dropped.swap(c.buffers);
    c.bytes = 0;
  }  // freed outside the lock
}

}  // namespace cpu
}  // namespace mx_dcn
