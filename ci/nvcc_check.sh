#!/usr/bin/env bash
# Compile-only check of the CUDA kernels (no GPU, no torch): every kernels_cuda/*.cu is compiled
# with the machine's nvcc for sm_80 and sm_90, warnings are errors. Exits nonzero on any failure.
# Usage: ci/nvcc_check.sh            (NVCC=/path/to/nvcc and JOBS=N override the defaults)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVCC="${NVCC:-nvcc}"
JOBS="${JOBS:-2}"

if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "nvcc_check: FAILED: nvcc not found (set NVCC or put the CUDA toolkit's bin on PATH)" >&2
  exit 1
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# The same 16-bit macros torch's CUDAExtension passes, so the kernels compile as setup.py builds
# them (no implicit __half/__nv_bfloat16 conversions or operators).
FLAGS=(
  -std=c++17 -O3
  -gencode arch=compute_80,code=sm_80
  -gencode arch=compute_90,code=sm_90
  -I "$ROOT/mx_dcn/csrc" -I "$ROOT/kernels_cuda/include" -I "$ROOT/kernels_cuda"
  -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
  -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
  -Werror all-warnings
  -Xcompiler -Wall,-Wextra,-Werror
)

shopt -s nullglob
SOURCES=("$ROOT"/kernels_cuda/*.cu)
if [ ${#SOURCES[@]} -eq 0 ]; then
  echo "nvcc_check: FAILED: no .cu files in $ROOT/kernels_cuda" >&2
  exit 1
fi

echo "nvcc_check: $("$NVCC" --version | tail -n 1)"
start=$SECONDS
status=0
pids=()
names=()
for src in "${SOURCES[@]}"; do
  name="$(basename "$src" .cu)"
  ( "$NVCC" "${FLAGS[@]}" -c "$src" -o "$OUT/$name.o" >"$OUT/$name.log" 2>&1 ) &
  pids+=($!)
  names+=("$name")
  # keep at most JOBS compilers running
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
done
for k in "${!pids[@]}"; do
  name="${names[$k]}"
  if wait "${pids[$k]}"; then
    echo "nvcc_check: ok      ${name}.cu"
  else
    echo "nvcc_check: FAILED  ${name}.cu" >&2
    status=1
  fi
  # nvcc output of a passing file is empty with -Werror; print whatever it said
  if [ -s "$OUT/$name.log" ]; then sed "s|^|  ${name}: |" "$OUT/$name.log" >&2; fi
done
echo "nvcc_check: ${#SOURCES[@]} file(s), sm_80 + sm_90, $((SECONDS - start)) s"
exit $status
