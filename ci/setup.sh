#!/usr/bin/env bash
# Sets up a fresh machine for mx_dcn in a virtual environment of its own, .venv in the repository: it
# never installs into the Python you run it with (the README's "existing environment" command is for
# that). It runs the README's fresh-machine commands, as written (tests/test_install.py checks):
#   1. python3 -m venv .venv && . .venv/bin/activate      (the venv is created only when missing)
#   2. pip install torch==2.13.0 numpy setuptools wheel ninja   (torch only when .venv has none)
#   3. pip install -v --no-build-isolation -e .           (with --test: -e ".[test]", the test tools,
#      then mmengine and mmcv without its ops through ci/openmmlab.sh)
# Step 3 compiles mx_dcn._C; its compiler steps are shown as they finish, shortened to the source
# file (the whole log: build/install.log). Objects are kept in build/, so running this again
# recompiles only what changed. torch must come through step 3 untouched (ci/torch_fingerprint.py).
# Afterwards, in your shell: . .venv/bin/activate   (python, pip and mx-dcn of this environment)
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }
# A command of the README, run as written.
run_documented() { printf '$ %s\n' "$1"; eval "$1"; }
# pip -v prints each compiler command whole (thousands of characters): keep ninja's "[done/total,
# seconds]" and the file compiled, drop pip's and setuptools' bookkeeping; warnings and errors stay.
shorten_build_log() {
  sed -u -E 's#^ *(mx_dcn build \[[^]]*\]) .* -c ([^ ]+) .*#  \1 \2#' |
    grep --line-buffered -v -E '^ *(Running command|copying|creating|running|writing|reading|adding|changing mode|Created|Stored|Building|Installing|Preparing|Checking|Getting|Source in|Processing|Obtaining|Requirement already|Link requires)'
}

step "virtual environment .venv"
if [ -x .venv/bin/python ]; then
  echo "exists: reused"
  . .venv/bin/activate
else
  run_documented "python3 -m venv .venv && . .venv/bin/activate"
fi

step "torch and the build tools"
if python -c "import torch" 2>/dev/null; then
  echo "torch $(python -c 'import torch; print(torch.__version__)') is already in .venv: kept"
  pip install -q numpy setuptools wheel ninja
else
  run_documented "pip install torch==2.13.0 numpy setuptools wheel ninja"
fi
before=$(python ci/torch_fingerprint.py)

step "mx_dcn (editable; compiles mx_dcn._C)"
start=$SECONDS
mkdir -p build
export MAX_JOBS=${MAX_JOBS:-2}
if [ "${1:-}" = "--test" ]; then
  run_documented 'pip install -v --no-build-isolation -e ".[test]"'
else
  run_documented "pip install -v --no-build-isolation -e ."
fi 2>&1 | tee build/install.log | shorten_build_log   # pipefail: a failed install fails the script
echo "installed in $((SECONDS - start)) s (the whole log: build/install.log)"
if [ "${1:-}" = "--test" ]; then
  step "OpenMMLab packages for tests/test_openmmlab.py"
  PYTHON=python bash ci/openmmlab.sh   # mmengine + mmcv without its compiled ops (mmcv-lite)
fi

after=$(python ci/torch_fingerprint.py)
if [ "$before" != "$after" ]; then
  printf 'setup: installing mx_dcn changed torch\n  before: %s\n  after:  %s\n' "$before" "$after" >&2
  exit 1
fi
echo "torch untouched: $after"
python -c "import mx_dcn, torch; print('mx_dcn', mx_dcn.__version__, 'with torch', torch.__version__, 'in .venv')"
