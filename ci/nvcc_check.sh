#!/usr/bin/env bash
# Compile-only check of the CUDA code (no GPU needed):
#   1. every kernels_cuda/*.cu (and kernels_cuda/tests/*.cu) compiled with the machine's nvcc for
#      sm_80 and sm_90 to object files in a temporary directory, warnings as errors (no torch needed:
#      the kernels are framework-free);
#   2. the torch glue mx_dcn/csrc/cuda/*.cpp parsed and type-checked by the host compiler
#      (-fsyntax-only) against the installed torch's headers -- CPU wheels ship the CUDA headers too --
#      when torch is importable; skipped with a message otherwise or with MX_DCN_GLUE_CHECK=0.
# Exits nonzero on any failure. NVCC, CXX, PYTHON and JOBS (default 2) override the tools used.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVCC="${NVCC:-nvcc}"
CXX="${CXX:-g++}"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-2}"

if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "nvcc_check: FAILED: nvcc not found (set NVCC or put the CUDA toolkit's bin on PATH)" >&2
  exit 1
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# No warning is suppressed. The 16-bit macros are the ones torch's CUDAExtension passes, so the
# kernels compile as setup.py builds them (no implicit __half/__nv_bfloat16 conversions/operators).
NVCC_FLAGS=(
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
# the kernels, and the GPU self-test (kernels_cuda/tests, compiled only: it needs a GPU to run)
SOURCES=("$ROOT"/kernels_cuda/*.cu "$ROOT"/kernels_cuda/tests/*.cu)
if [ ${#SOURCES[@]} -eq 0 ]; then
  echo "nvcc_check: FAILED: no .cu files in $ROOT/kernels_cuda" >&2
  exit 1
fi

names=()
pids=()
# launch NAME CMD...: runs CMD in the background (at most JOBS at once), output to $OUT/NAME.log
launch() {
  local name=$1; shift
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
  ( "$@" >"$OUT/$name.log" 2>&1 ) &
  pids+=($!)
  names+=("$name")
}

echo "nvcc_check: $("$NVCC" --version | tail -n 1)"
start=$SECONDS
for src in "${SOURCES[@]}"; do
  name="$(basename "$src" .cu)"
  launch "$name.cu" "$NVCC" "${NVCC_FLAGS[@]}" -c "$src" -o "$OUT/$name.o"
done

glue=("$ROOT"/mx_dcn/csrc/cuda/*.cpp)
glue_note="glue: none"
if [ "${MX_DCN_GLUE_CHECK:-1}" = "0" ]; then
  glue_note="glue check disabled (MX_DCN_GLUE_CHECK=0)"
elif [ ${#glue[@]} -gt 0 ]; then
  torch_inc="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))' 2>/dev/null || true)"
  cuda_inc=""
  for dir in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    if [ -n "$dir" ] && [ -f "$dir/include/cuda_runtime_api.h" ]; then cuda_inc="$dir/include"; break; fi
  done
  if [ -z "$torch_inc" ] || [ ! -d "$torch_inc" ]; then
    glue_note="glue check SKIPPED: torch is not importable with $PYTHON"
  elif [ -z "$cuda_inc" ]; then
    glue_note="glue check SKIPPED: cuda_runtime_api.h not found (set CUDA_HOME)"
  else
    # C10_CUDA_NO_CMAKE_CONFIGURE_FILE: CPU wheels lack c10/cuda's generated config header, which
    # only sets build macros; -isystem keeps torch's own warnings out of -Werror.
    for src in "${glue[@]}"; do
      launch "$(basename "$src")" "$CXX" -std=c++17 -fsyntax-only -Wall -Wextra -Werror \
        -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -DMX_DCN_WITH_CUDA=1 \
        -isystem "$torch_inc" -isystem "$torch_inc/torch/csrc/api/include" -isystem "$cuda_inc" \
        -I "$ROOT/mx_dcn/csrc" -I "$ROOT/kernels_cuda/include" "$src"
    done
    glue_note="glue: ${#glue[@]} file(s) syntax-checked with $("$CXX" -dumpfullversion 2>/dev/null || echo "$CXX")"
  fi
fi

status=0
for k in "${!pids[@]}"; do
  name="${names[$k]}"
  if wait "${pids[$k]}"; then
    echo "nvcc_check: ok      $name"
  else
    echo "nvcc_check: FAILED  $name" >&2
    status=1
  fi
  # with -Werror the output of a passing compile is empty; show whatever a compiler said
  if [ -s "$OUT/$name.log" ]; then sed "s|^|  $name: |" "$OUT/$name.log" >&2; fi
done
echo "nvcc_check: ${#SOURCES[@]} .cu file(s) for sm_80 + sm_90; $glue_note; $((SECONDS - start)) s"
exit $status
