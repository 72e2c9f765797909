#!/usr/bin/env bash
# Sets up a fresh machine for mx_dcn: torch (the CPU build 2.13.0), NumPy, and mx_dcn itself in
# editable mode, which compiles the C++ extension mx_dcn._C. With --test, also the test tools and
# the optional peers the tests exercise (onnx, onnxruntime, onnxscript, matplotlib, hypothesis).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n== %s\n' "$*"; }

step "python packages"
$PY -m pip install -q --disable-pip-version-check "torch==2.13.0" numpy setuptools wheel ninja
if [ "${1:-}" = "--test" ]; then
  $PY -m pip install -q --disable-pip-version-check pytest hypothesis onnx onnxruntime onnxscript matplotlib
  PYTHON=$PY bash ci/openmmlab.sh   # mmengine + mmcv without its ops, for tests/test_openmmlab.py
fi

step "mx_dcn (editable; compiles mx_dcn._C)"
start=$(date +%s)
MAX_JOBS=${MAX_JOBS:-2} $PY -m pip install -q --disable-pip-version-check --no-build-isolation -e .
echo "built in $(( $(date +%s) - start )) s"
$PY -c "import mx_dcn, torch; print('mx_dcn', mx_dcn.__version__, 'torch', torch.__version__)"
