#!/usr/bin/env bash
# The C++ CPU kernel under AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Builds mx_dcn._C with MX_DCN_SANITIZE=1 (setup.py: -fsanitize=address,undefined, recovery off)
# in a temporary copy of the sources, so the normal in-place build is untouched, then runs the
# kernel tests and a bounded subset of the fuzz / numerics / concurrency / memory tests against
# that build. Python itself is not instrumented, so the ASan runtime is preloaded; leak detection
# is off because CPython keeps objects alive until exit by design. Any sanitizer report fails
# the script (the runtimes abort the process, and the log is scanned as well).
#
#   bash ci/sanitize.sh                 # a few minutes on 2 cores
#   MX_DCN_SANITIZE_DIR=/tmp/san bash ci/sanitize.sh   # keep and reuse the build directory
#   MX_DCN_SANITIZE_EXAMPLES=200 ...    # more hypothesis examples per fuzz test (default 20)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
EXAMPLES=${MX_DCN_SANITIZE_EXAMPLES:-20}

if [ -n "${MX_DCN_SANITIZE_DIR:-}" ]; then
  WORK=$MX_DCN_SANITIZE_DIR
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mx_dcn_sanitize.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
fi

LIBASAN=$(gcc -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
  echo "sanitize: gcc has no libasan ($LIBASAN); install the gcc sanitizer runtimes" >&2
  exit 1
fi

echo "sanitize: copying sources to $WORK"
# The sources only: no build outputs, caches or VCS data from the working tree.
tar -C "$ROOT" -cf - --exclude=.git --exclude='./build' --exclude='*.so' --exclude='*.o' \
    --exclude='__pycache__' --exclude='.hypothesis' --exclude='.pytest_cache' --exclude='*.egg-info' \
    --exclude='./kernels_ascend/build*' --exclude='./kernels_cuda/build*' --exclude='./out' \
    $(cd "$ROOT" && ls -d setup.py build_npu.py mx_dcn tests kernels_cuda 2>/dev/null) | tar -C "$WORK" -xf -

echo "sanitize: building mx_dcn._C with ASan+UBSan (MAX_JOBS=${MAX_JOBS:-2})"
start=$(date +%s)
# float-cast-overflow is not part of -fsanitize=undefined in gcc; a float -> int conversion of an
# out-of-range coordinate is exactly the bug class the sampling code must avoid, so add it.
(cd "$WORK" && CFLAGS="-fsanitize=float-cast-overflow" MX_DCN_SANITIZE=1 MX_DCN_WITH_CUDA=0 MX_DCN_WITH_NPU=0 \
   MAX_JOBS=${MAX_JOBS:-2} "$PY" setup.py build_ext --inplace >"$WORK/build.log" 2>&1) || {
  tail -n 40 "$WORK/build.log"; echo "sanitize: build failed" >&2; exit 1; }
echo "sanitize: built in $(( $(date +%s) - start )) s"

SO=$(ls "$WORK"/mx_dcn/_C*.so)
# ldd's output captured first: `ldd | grep -q` under pipefail fails at random, since grep -q exits at
# the first match and the loader's later lines then hit a closed pipe (SIGPIPE).
DEPS=$(ldd "$SO")
if ! grep -q libasan <<<"$DEPS"; then
  echo "sanitize: $SO is not linked against libasan" >&2
  exit 1
fi

# libstdc++ too: python is not linked against it, and ASan's __cxa_throw interceptor must find the
# real one at start-up, or the first C++ exception (a TORCH_CHECK) aborts in the interceptor.
export LD_PRELOAD="$LIBASAN $(gcc -print-file-name=libstdc++.so)"
# allocator_may_return_null: an impossible allocation (tested on purpose) must reach torch as a
# failed allocation, not abort inside the ASan allocator.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export MX_DCN_FUZZ_EXAMPLES=$EXAMPLES
cd "$WORK"

# The tests must load the instrumented copy, not the editable install of the working tree.
"$PY" - <<EOF
import mx_dcn, mx_dcn.ops as ops
ext = ops.load()
assert ext.__file__.startswith("$WORK"), f"loaded {ext.__file__}, not the sanitized build"
assert mx_dcn.get_backend("cpu").available(), mx_dcn.get_backend("cpu").available().reason
print("sanitize: loaded", ext.__file__, "isa", ext.kernel_isa())
EOF

TESTS=(tests/test_fuzz.py tests/test_numerics.py tests/test_concurrency.py tests/test_memory.py
       tests/test_limits.py)
[ -f tests/test_cpu_kernel.py ] && TESTS=(tests/test_cpu_kernel.py "${TESTS[@]}")
EXISTING=()
for t in "${TESTS[@]}"; do [ -f "$t" ] && EXISTING+=("$t"); done

start=$(date +%s)
status=0
# Two workers when pytest-xdist is there (the [test] extra): CI has 2 cores.
WORKERS=()
"$PY" -c "import xdist" 2>/dev/null && WORKERS=(-n 2)
# The portable backend's variants are deselected: pure torch, nothing of mx_dcn's C++ runs in them and
# torch is not instrumented (the cpu kernel's own refusal test keeps its place).
"$PY" -m pytest -q -p no:cacheprovider --durations=10 "${WORKERS[@]}" -k "not portable or rejects_coordinates" \
  "${EXISTING[@]}" 2>&1 | tee "$WORK/test.log" || status=$?
echo "sanitize: tests ran in $(( $(date +%s) - start )) s"
if grep -qE "AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:" "$WORK/test.log"; then
  echo "sanitize: sanitizer report above" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize: tests failed under the sanitizers (exit $status)" >&2
  exit "$status"
fi
echo "sanitize: clean"
