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

std::atomic<int64_t>& budget() {
  static std::atomic<int64_t> value{budget_from_env()};
  return value;
}

std::atomic<int64_t> peak{0};

}  // namespace

void set_workspace_budget(int64_t bytes) { budget().store(bytes < (1 << 20) ? (1 << 20) : bytes); }
int64_t get_workspace_budget() { return budget().load(); }
int64_t workspace_peak_bytes() { return peak.load(); }
void reset_workspace_peak() { peak.store(0); }

void record_workspace(int64_t bytes) {
  int64_t seen = peak.load();
  while (bytes > seen && !peak.compare_exchange_weak(seen, bytes)) {
  }
}

}  // namespace mx_dcn
