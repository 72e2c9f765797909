// The workspace budget the kernels chunk their buffers to, and a record of the largest workspace a
// call held (for tests and the benchmark). The budget is set from Python (mx_dcn/workspace.py).
#pragma once

#include <cstdint>

namespace mx_dcn {

void set_workspace_budget(int64_t bytes);
int64_t get_workspace_budget();
int64_t workspace_peak_bytes();
void reset_workspace_peak();
// Called by a kernel with the bytes it holds at its high-water mark.
void record_workspace(int64_t bytes);

}  // namespace mx_dcn
