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
      { apt-get update -q >/dev/null && apt-get install -y -q g++-aarch64-linux-gnu >/dev/null; } || true
  fi
  command -v "$CXX" >/dev/null ||
    { echo "aarch64_check: $CXX is missing and could not be installed (needs root and apt-get)" >&2; exit 1; }
fi

TORCH_INC=$($PY -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'include'))")
PY_INC=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
# The C++ standard setup.py picks for this torch (its headers need C++20 from 2.14 on).
STD=$($PY -c "import torch; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]);
print('-std=c++20' if v >= (2, 14) else '-std=c++17')")
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# Debian's own Python has a multiarch pyconfig.h that includes <aarch64-linux-gnu/python3.X/pyconfig.h>
# under an aarch64 compiler; point that at this Python's (both are LP64 Linux).
PY_VER=$($PY -c "import sys; print(f'python{sys.version_info[0]}.{sys.version_info[1]}')")
mkdir -p "$OUT/inc/aarch64-linux-gnu/$PY_VER"
X86_PYCONFIG="$PY_INC/pyconfig.h"
if [ -f "/usr/include/x86_64-linux-gnu/$PY_VER/pyconfig.h" ]; then
  X86_PYCONFIG="/usr/include/x86_64-linux-gnu/$PY_VER/pyconfig.h"
fi
echo "#include \"$X86_PYCONFIG\"" > "$OUT/inc/aarch64-linux-gnu/$PY_VER/pyconfig.h"
FLAGS=("$STD" -O2 -fopenmp -fno-trapping-math -Werror=pragmas -I mx_dcn/csrc)

JOBS=${JOBS:-2}
names=()
pids=()
# Runs a compile in the background, at most JOBS at once (CI has 2 cores); its log goes to OUT.
launch() {
  local name=$1; shift
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
  ( "$@" >"$OUT/job${#pids[@]}.log" 2>&1 ) &
  pids+=($!)
  names+=("$name")
}
# Framework-free kernel files: compiled to aarch64 objects; the ATen files: syntax only.
for f in mx_dcn/csrc/cpu/sampling_*.cpp mx_dcn/csrc/cpu/gemm_*.cpp; do
  launch "compiled $f" "$CXX" "${FLAGS[@]}" -c "$f" -o "$OUT/$(basename "$f" .cpp).o"
done
for f in mx_dcn/csrc/*.cpp mx_dcn/csrc/cpu/deform_conv_cpu.cpp mx_dcn/csrc/cpu/buffer_cache.cpp; do
  launch "checked  $f" "$CXX" "${FLAGS[@]}" -fsyntax-only -isystem "$TORCH_INC" \
    -isystem "$TORCH_INC/torch/csrc/api/include" -isystem "$PY_INC" -isystem "$OUT/inc" \
    -DTORCH_EXTENSION_NAME=_C "$f"
done
status=0
for k in "${!pids[@]}"; do
  name=${names[$k]}
  if wait "${pids[$k]}"; then echo "  $name"; else echo "  FAILED: $name" >&2; status=1; fi
  log="$OUT/job$k.log"
  if [ -s "$log" ]; then sed "s|^|    |" "$log" >&2; fi
done
[ "$status" -eq 0 ] || { echo "aarch64_check: FAILED" >&2; exit 1; }
echo "aarch64_check: the CPU kernel compiles for aarch64 ($CXX); $((SECONDS - start)) s"
