#!/usr/bin/env bash
# The test command of the README: sets up a fresh machine, then runs every check CI runs:
#   1. the Python test suite (all backends available here, against the float64 oracle);
#   2. the CUDA sources compiled with nvcc for sm_80 and sm_90 (compile only: no GPU here);
#   3. the AscendC kernel sources built and run against the CPU model of the AscendC API;
#   4. the C++ CPU kernel under AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

bash ci/setup.sh --test

run_step() {
  local name=$1; shift
  printf '\n== %s\n' "$name"
  local start=$(date +%s)
  "$@"
  echo "-- $name: done in $(( $(date +%s) - start )) s"
}

run_step "pytest" $PY -m pytest -q -p no:cacheprovider tests
for script in ci/nvcc_check.sh ci/ascend_sim.sh ci/sanitize.sh; do
  if [ -f "$script" ]; then
    run_step "$script" bash "$script"
  fi
done
echo
echo "all checks passed"
