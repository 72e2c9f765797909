#!/usr/bin/env bash
# Compiles the C++ CPU kernel for aarch64, the host CPU of many Atlas servers, with Debian's cross
# compiler: the x86-only parts (the avx2 and avx512 sets, the own GEMM, the CPU feature probes) must
# drop out and leave the base set. Compile only: nothing runs on aarch64 here. The kernel files are
# compiled to objects; the files that include ATen are checked with -fsyntax-only against the
# installed torch headers (the same headers as aarch64's torch). Installs g++-aarch64-linux-gnu when
# missing (as root, with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CXX=${CXX_AARCH64:-aarch64-linux-gnu-g++}
start=$SECONDS

if ! command -v "$CXX" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "aarch64_check: installing g++-aarch64-linux-gnu"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q g++-aarch64-linux-gnu >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q g++-aarch64-linux-gnu >/dev/null; }
  else
    echo "aarch64_check: $CXX is missing and cannot be installed here (needs root and apt-get)" >&2
    exit 1
  fi
fi

TORCH_INC=$($PY -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'include'))")
PY_INC=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
FLAGS=(-std=c++17 -O2 -fopenmp -fno-trapping-math -Werror=pragmas -I mx_dcn/csrc)

# Framework-free kernel files: compiled to aarch64 objects.
for f in mx_dcn/csrc/cpu/sampling_*.cpp mx_dcn/csrc/cpu/gemm_*.cpp; do
  "$CXX" "${FLAGS[@]}" -c "$f" -o "$OUT/$(basename "$f" .cpp).o"
  echo "  compiled $f"
done
# The ATen side (dispatch, CPU feature probes, the op registrations).
for f in mx_dcn/csrc/*.cpp mx_dcn/csrc/cpu/deform_conv_cpu.cpp mx_dcn/csrc/cpu/buffer_cache.cpp; do
  "$CXX" "${FLAGS[@]}" -fsyntax-only -isystem "$TORCH_INC" -isystem "$TORCH_INC/torch/csrc/api/include" -isystem "$PY_INC" \
    -DTORCH_EXTENSION_NAME=_C "$f"
  echo "  checked  $f"
done
echo "aarch64_check: the CPU kernel compiles for aarch64 ($CXX); $((SECONDS - start)) s"
