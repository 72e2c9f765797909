#!/usr/bin/env bash
# Installs the OpenMMLab packages the integration tests (tests/test_openmmlab.py) run against:
# mmengine and mmcv 2.1.0 *without* its compiled ops (it installs as mmcv-lite), as on an NPU box
# whose mmcv has no DCN of its own. Idempotent: does nothing when both import.
#
# mmcv ships no wheel for torch 2.13, so it is built from its source release with MMCV_WITH_OPS=0
# (pure Python, seconds). Its setup.py imports pkg_resources, which setuptools >= 81 no longer has,
# and torch (hence --no-build-isolation): setuptools 80 is put on PYTHONPATH for that one build only,
# from a scratch directory, so the setuptools that builds mx_dcn's extension is left as it is.
set -euo pipefail
PY=${PYTHON:-python3}
MMCV_VERSION=2.1.0   # mmdet 3.3.0 requires mmcv < 2.2

versions="import mmengine, mmcv; print('mmengine', mmengine.__version__, 'mmcv', mmcv.__version__)"
if have=$($PY -c "$versions" 2>/dev/null); then
  echo "$have (already installed)"
  exit 0
fi
start=$(date +%s)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
pip() { $PY -m pip --disable-pip-version-check "$@"; }

pip install -q mmengine
pip install -q --target "$scratch/setuptools80" "setuptools>=80,<81"
export PYTHONPATH="$scratch/setuptools80"   # pip download runs setup.py (egg_info) too
pip download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$scratch/src"
MMCV_WITH_OPS=0 pip install -q --no-build-isolation "$scratch/src/mmcv-$MMCV_VERSION.tar.gz"
unset PYTHONPATH
$PY -c "$versions"
echo "OpenMMLab packages installed in $(( $(date +%s) - start )) s"
