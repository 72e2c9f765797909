#!/usr/bin/env bash
# Type-checks the AscendC kernels against the REAL AscendC API headers (asc-devkit), with g++ in CANN's
# CPU-debug mode (ASCENDC_CPU_DEBUG=1) for an Atlas A2 vector core (__NPU_ARCH__ 2201):
#   1. every kernels_ascend/op_kernel/*.cpp, -fsyntax-only -Wall -Wextra -Werror (the headers are
#      -isystem, so their own warnings are theirs), templates instantiated as the kernels use them;
#   2. the negative cases kernels_ascend/typecheck/negative/*.cpp: each must FAIL with the message
#      its `// expect:` line gives, and pass with -DMXDCN_FIXED (the corrected call) -- so the check
#      is known to bite, and to bite for the stated reason;
#   3. op_host: dcn_tiling.cpp as plain C++11 (-pedantic -Werror); mx_dcn_ops.cpp against the real
#      headers when asc-devkit provides everything it includes, else the missing headers are named.
#
#   ASC_DEVKIT=<asc-devkit checkout with include/ and impl/> ci/ascendc_check.sh
#
# Without ASC_DEVKIT (or with a path lacking include/kernel_operator.h) it is SKIPPED with a message
# and exits 0. The pieces CANN's closed CPU-debug library supplies (stub_def.h, stub_fun.h,
# kernel_fp16.h, kernel_bf16.h, simt_stub.h) are declaration-only stand-ins written for this check in
# kernels_ascend/typecheck/, as is the per-op GET_TILING_DATA (tiling_standin.h); the two files the
# CANN build generates (kernel_tiling/kernel_tiling.h, ascendc/host_api/tiling/template_argument.h)
# are generated here from asc-devkit itself.
# What it proves: the kernels' API use (overloads, template arguments, parameter structs and their
# field widths, element types the API's static_asserts allow, TPipe/TQue/TBuf, HardEvent) matches the
# real headers. What it does not: that bisheng accepts the device code, the raw intrinsics below the
# API (stubbed to accept anything), synchronisation, timing; nothing runs.
# CXX (default g++), PYTHON (default python3) override the tools. About 40 s of CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ka="$root/kernels_ascend"
cxx="${CXX:-g++}"
py="${PYTHON:-python3}"
asc="${ASC_DEVKIT:-}"
export LC_ALL=C   # plain quotes in compiler messages, as the negative cases' `// expect:` lines write them

if [[ -z "$asc" || ! -f "$asc/include/kernel_operator.h" ]]; then
  echo "ascendc_check: SKIPPED: no AscendC headers (set ASC_DEVKIT to an asc-devkit checkout with" \
       "include/kernel_operator.h; got '${asc:-unset}')"
  exit 0
fi
asc="$(cd "$asc" && pwd)"
start=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "ascendc_check: AscendC headers $asc ($(cat "$asc/PINNED" 2>/dev/null | head -1 || echo 'version unknown'))"

# The two generated files (asc-devkit impl/basic_api/CMakeLists.txt and impl/adv_api/cmake).
mkdir -p "$work/gen/ascendc/host_api/tiling"
"$py" "$asc/impl/adv_api/cmake/scripts/gen_kernel_tiling_data_def.py" "$asc/include/adv_api" \
    "$work/gen/kernel_tiling/kernel_tiling.h" >/dev/null
cp "$asc/include/utils/tiling/template_argument.h" "$work/gen/ascendc/host_api/tiling/"

# Include directories as asc-devkit's impl/basic_api/CMakeLists.txt lists them for its headers.
sys=(-isystem "$ka/typecheck" -isystem "$work/gen")
for d in "" impl impl/basic_api impl/basic_api/reg_compute impl/simt_api impl/c_api include include/basic_api \
         include/simt_api include/simt_api/cpp include/basic_api/reg_compute include/c_api include/utils; do
  sys+=(-isystem "$asc/$d")
done
flags=(-std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Winvalid-pch
       -DASCENDC_CPU_DEBUG=1 -D__NPU_ARCH__=2201 -D__DAV_C220__ -D__DAV_C220_VEC__ -D__DAV_VEC__
       -DASCENDC_DEBUG=1 -DASCENDC_DUMP=0 "${sys[@]}")

# kernel_operator.h parsed once (a precompiled header with the same flags), then ~1 s per source.
mkdir -p "$work/pch"
echo '#include "kernel_operator.h"' > "$work/pch/ascendc_api.h"
"$cxx" "${flags[@]}" -x c++-header "$work/pch/ascendc_api.h" -o "$work/pch/ascendc_api.h.gch"
check() { "$cxx" "${flags[@]}" -I"$work/pch" -include ascendc_api.h -fsyntax-only "$@"; }

explain_failure() {
  echo "  An AscendC name (namespace AscendC, CamelCase) reported as undeclared or without a matching overload"
  echo "  means the kernel uses an API the real headers do not declare. A raw intrinsic (lower_case) reported"
  echo "  from inside the headers is one the closed CPU-debug library declares: add it to"
  echo "  kernels_ascend/typecheck/stub_fun.h."
}

failed=0
shopt -s nullglob
kernels=("$ka"/op_kernel/*.cpp)
if [[ ${#kernels[@]} -eq 0 ]]; then
  echo "ascendc_check: FAILED: no kernel sources in $ka/op_kernel" >&2
  exit 1
fi
for src in "${kernels[@]}"; do
  name="op_kernel/$(basename "$src")"
  tiling=$(sed -n 's/.*REGISTER_TILING_DEFAULT(\s*\([^)]*\))\s*;.*/\1/p' "$src" | head -1)
  if [[ -z "$tiling" ]]; then
    echo "  FAIL $name: no REGISTER_TILING_DEFAULT(<struct>) to type GET_TILING_DATA with"
    failed=1
    continue
  fi
  if check -include "$ka/typecheck/tiling_standin.h" -DMXDCN_TILING_TYPE="$tiling" "$src" 2> "$work/err.txt"; then
    echo "  ok   $name (tiling struct $tiling)"
  else
    echo "  FAIL $name against the real AscendC headers:"
    grep -E "error|required from here" "$work/err.txt" | head -40 | sed 's/^/    /'
    explain_failure
    failed=1
  fi
done

negatives=("$ka"/typecheck/negative/*.cpp)
rejected=0
for src in "${negatives[@]}"; do
  name="negative/$(basename "$src")"
  expect=$(sed -n 's|^// expect: ||p' "$src" | head -1)
  if [[ -z "$expect" ]]; then
    echo "  FAIL $name: no '// expect: <regex>' line"
    failed=1
    continue
  fi
  if ! check -DMXDCN_FIXED "$src" 2> "$work/err.txt"; then
    echo "  FAIL $name: its corrected form (-DMXDCN_FIXED) does not compile, so its failure would prove nothing:"
    grep -m5 error "$work/err.txt" | sed 's/^/    /'
    failed=1
  elif check "$src" 2> "$work/err.txt"; then
    echo "  FAIL $name: the real headers accepted a call they must reject ($expect)"
    failed=1
  elif ! grep -qE -- "$expect" "$work/err.txt"; then
    echo "  FAIL $name: rejected, but not for the stated reason (expected /$expect/):"
    grep -m5 error "$work/err.txt" | sed 's/^/    /'
    failed=1
  else
    echo "  ok   $name rejected: $(grep -m1 -oE -- "$expect" "$work/err.txt")"
    rejected=$((rejected + 1))
  fi
done
if [[ $rejected -lt 5 ]]; then
  echo "  FAIL: only $rejected negative cases rejected as stated (at least 5 are required)"
  failed=1
fi

# op_host: the tiling function is plain C++11 by design (no CANN headers).
if "$cxx" -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only "$ka/op_host/dcn_tiling.cpp" 2> "$work/err.txt"; then
  echo "  ok   op_host/dcn_tiling.cpp (plain C++11, no CANN headers)"
else
  echo "  FAIL op_host/dcn_tiling.cpp as plain C++11:"
  grep -m10 error "$work/err.txt" | sed 's/^/    /'
  failed=1
fi
# The op definition and tiling entry need CANN's graph-engine headers (OpDef, gert contexts).
host_inc=(-I"$asc/include/utils" -I"$asc/include" -I"$ka/op_host")
missing=$("$cxx" -std=c++17 -MM -MG "${host_inc[@]}" "$ka/op_host/mx_dcn_ops.cpp" | tr -d '\\' | tr ' ' '\n' \
          | grep -vE '^$|:$|^/' || true)
if [[ -n "$missing" ]]; then
  echo "  skip op_host/mx_dcn_ops.cpp: asc-devkit does not provide $(echo $missing | sed 's/ /, /g')" \
       "(CANN's metadef headers: OpDef registration, gert::TilingContext, the SoC spec)"
elif "$cxx" -std=c++17 -Wall -Wextra -Werror -fsyntax-only "${host_inc[@]}" "$ka/op_host/mx_dcn_ops.cpp" \
     2> "$work/err.txt"; then
  echo "  ok   op_host/mx_dcn_ops.cpp"
else
  echo "  FAIL op_host/mx_dcn_ops.cpp against the real headers:"
  grep -m10 error "$work/err.txt" | sed 's/^/    /'
  failed=1
fi

elapsed=$(( $(date +%s) - start ))
if [[ $failed -ne 0 ]]; then
  echo "ascendc_check: FAILED (${elapsed} s)" >&2
  exit 1
fi
echo "ascendc_check: passed: ${#kernels[@]} kernels type-check against the real headers, $rejected negative cases rejected (${elapsed} s)"
