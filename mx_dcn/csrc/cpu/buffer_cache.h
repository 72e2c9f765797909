// Workspace buffers the CPU kernels keep between calls.
//
// A fresh buffer costs a page fault on the first touch of each 4 KiB page: ~2.5 us per page on the
// machine the benchmark ran on, ~1,400 faults (3.5 ms) in a 7-9 ms (2,64,64,64,64) forward whose
// workspace came back from the OS. A call takes its buffers from this cache and gives them back at
// its end, so repeated calls touch memory that is already mapped. The cache holds at most
// `workspace_cache_limit()` bytes between calls (MX_DCN_WORKSPACE_CACHE_MB, 64 MiB by default;
// 0 turns it off); the workspace budget still bounds what one call uses.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace mx_dcn {
namespace cpu {

// A byte tensor of at least `bytes`: the smallest cached buffer that fits, else a new one.
at::Tensor take_buffer(int64_t bytes);
// Returns a call's buffers to the cache. A buffer whose storage is still referenced elsewhere (a
// view that left the call) is not reused. The largest buffers are dropped first until the cache
// holds at most the limit.
void give_back_buffers(std::vector<at::Tensor>& buffers);

int64_t workspace_cache_limit();
// Sets the limit (>= 0) and drops buffers beyond it; 0 empties the cache and turns it off.
void set_workspace_cache_limit(int64_t bytes);
// Bytes the cache holds now (between calls).
int64_t workspace_cache_bytes();
// Frees every cached buffer (the limit stays).
void release_workspace_cache();

}  // namespace cpu
}  // namespace mx_dcn
