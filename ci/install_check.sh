#!/usr/bin/env bash
# The README's install into an environment that already has torch, checked as a user would meet it:
#   1. a second virtual environment that sees the torch of .venv (made by ci/setup.sh) through a .pth
#      file -- the way a --system-site-packages venv sees a system's packages -- and not this tree;
#   2. the README's command there, as written: pip install --no-build-isolation .
#      (a wheel, not editable; the objects ci/setup.sh compiled in build/ are reused, since the torch
#      and the compiler flags are the same, so this relinks instead of recompiling);
#   3. the same without --no-build-isolation stops at once, saying why (no torch where pip builds);
#   4. torch exactly as before (version, location, every file's size and time: ci/torch_fingerprint.py),
#      mx_dcn imported from that environment with its C++ kernel, and a test subset run against it.
# Run after ci/setup.sh (ci/test.sh does). The environment is temporary and removed at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=$ROOT/.venv
[ -x "$BASE/bin/python" ] || { echo "install_check: $BASE is missing: run ci/setup.sh first" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mx_dcn_install_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ENV=$WORK/existing-env
start=$SECONDS
export MAX_JOBS=${MAX_JOBS:-2}

"$BASE/bin/python" -m venv "$ENV"
base_site=$("$BASE/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
env_site=$("$ENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$base_site" > "$env_site/existing_torch.pth"
. "$ENV/bin/activate"
before=$(python "$ROOT/ci/torch_fingerprint.py")
echo "install_check: the environment has $before"

cd "$ROOT"
echo "\$ pip install --no-build-isolation .      (the README's command, in $ENV)"
pip install --no-build-isolation . >"$WORK/install.log" 2>&1 || {
  tail -n 40 "$WORK/install.log"; echo "install_check: the install failed" >&2; exit 1; }
echo "install_check: installed in $((SECONDS - start)) s"

# Without --no-build-isolation pip builds where torch is absent: that must stop at once and say so
# (it used to pull the newest torch into the build and start a CUDA build that died).
iso_start=$SECONDS
if pip install . >"$WORK/isolated.log" 2>&1; then
  echo "install_check: an isolated build (no --no-build-isolation) went through; it must refuse" >&2; exit 1
fi
grep -q "add --no-build-isolation" "$WORK/isolated.log" ||
  { tail -n 30 "$WORK/isolated.log"; echo "install_check: the isolated build failed without the message" >&2; exit 1; }
echo "install_check: without --no-build-isolation pip stops after $((SECONDS - iso_start)) s, saying why"

after=$(python "$ROOT/ci/torch_fingerprint.py")
if [ "$before" != "$after" ]; then
  printf 'install_check: the install changed torch\n  before: %s\n  after:  %s\n' "$before" "$after" >&2
  exit 1
fi
echo "install_check: torch untouched: $after"

# From outside the tree, so that `import mx_dcn` can only find the installed copy.
cd "$WORK"
python - "$ENV" <<'EOF'
import sys
import mx_dcn
assert mx_dcn.__file__.startswith(sys.argv[1]), f"imported {mx_dcn.__file__}, not the installed copy"
cpu = mx_dcn.get_backend("cpu").available()
assert cpu, f"the installed C++ kernel does not load: {cpu.reason}"
print("install_check: mx_dcn imported from", mx_dcn.__file__.rsplit("/", 2)[0], "with its C++ kernel")
EOF
mx-dcn info | grep -E "^  (mx_dcn|torch) |^  cpu "
python -m pytest -q -p no:cacheprovider "$ROOT/tests/test_validation.py" "$ROOT/tests/test_registry.py" \
  "$ROOT/tests/test_compat.py" "$ROOT/tests/test_export.py"
echo "install_check: passed in $((SECONDS - start)) s"
