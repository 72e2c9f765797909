#!/usr/bin/env bash
# Builds the AscendC kernel sources (kernels_ascend/op_kernel) against the CPU model of the AscendC
# API (kernels_ascend/sim) into a shared library, builds and runs the C++ model tests.
#   ci/ascend_sim.sh             build + run the C++ tests
#   ci/ascend_sim.sh --lib-only  build the library only (what the Python tests call when it is missing)
#   ci/ascend_sim.sh --sanitize  the C++ tests built with AddressSanitizer + UBSan (one g++, ~20 s of CPU)
# Build directory: $MX_DCN_SIM_BUILD or kernels_ascend/build_sim (ignored by git).
# Two g++ invocations; no CANN, NPU or cmake needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ka="$root/kernels_ascend"
build="${MX_DCN_SIM_BUILD:-$ka/build_sim}"
cxx="${CXX:-g++}"
mkdir -p "$build"

flags=(-std=c++17 -O2 -g -fPIC -Wall -Wextra -Wno-unused-parameter
       -I"$ka/sim/include" -I"$ka/op_host" -I"$ka/op_kernel")
sources=("$ka/sim/sim_runtime.cpp" "$ka/sim/sim_pipes.cpp" "$ka/sim/sim_buffers.cpp" "$ka/sim/sim_checks.cpp"
         "$ka/sim/capi.cpp" "$ka/sim/selftest_kernels.cpp"
         "$ka/op_host/dcn_tiling.cpp" "$ka/op_kernel/mx_dcn_im2col.cpp" "$ka/op_kernel/mx_dcn_col2im.cpp")

if [[ "${1:-}" == "--sanitize" ]]; then
  "$cxx" "${flags[@]/-O2/-O1}" -fsanitize=address,undefined -fno-sanitize-recover=undefined \
      -o "$build/test_model_sanitized" "${sources[@]}" "$ka/sim/tests/test_model.cpp"
  "$build/test_model_sanitized"
  exit 0
fi

# Build into a temporary name and rename, so a concurrent reader never loads a half-written file.
"$cxx" "${flags[@]}" -shared -o "$build/libmxdcn_ascend_sim.so.tmp.$$" "${sources[@]}"
mv -f "$build/libmxdcn_ascend_sim.so.tmp.$$" "$build/libmxdcn_ascend_sim.so"
echo "built $build/libmxdcn_ascend_sim.so"
[[ "${1:-}" == "--lib-only" ]] && exit 0

"$cxx" "${flags[@]}" -o "$build/test_model" "$ka/sim/tests/test_model.cpp" \
    -L"$build" -lmxdcn_ascend_sim -Wl,-rpath,"$build"
"$build/test_model"
