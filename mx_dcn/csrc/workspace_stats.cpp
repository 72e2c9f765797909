// Workspace budget and high-water mark shared by the device kernels (see workspace_stats.h).
#include "workspace_stats.h"

#include <atomic>
#include <cstdlib>

namespace mx_dcn {
namespace {

int64_t budget_from_env() {
  const char* raw = std::getenv("MX_DCN_WORKSPACE_MB");
  const double mb = raw ? std::atof(raw) : 0.0;
  return mb >= 1.0 ? static_cast<int64_t>(mb * 1024 * 1024) : int64_t(256) * 1024 * 1024;
}

// Per thread, like mx_dcn.workspace's budgets (a `with workspace_budget(...)` block is per thread):
// each Python thread hands its own budget over before its calls, and the kernels read it on the
// calling thread (the autograd engine runs CPU backward on the caller's thread too).
int64_t& budget() {
  thread_local int64_t value = budget_from_env();
  return value;
}

std::atomic<int64_t> peak{0};

}  // namespace

void set_workspace_budget(int64_t bytes) { budget() = bytes < (1 << 20) ? (1 << 20) : bytes; }
int64_t get_workspace_budget() { return budget(); }
int64_t workspace_peak_bytes() { return peak.load(); }
void reset_workspace_peak() { peak.store(0); }

void record_workspace(int64_t bytes) {
  int64_t seen = peak.load();
  while (bytes > seen && !peak.compare_exchange_weak(seen, bytes)) {
  }
}

}  // namespace mx_dcn
