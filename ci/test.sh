#!/usr/bin/env bash
# The test command of the README: sets up a fresh machine, then runs every check CI runs:
#   1. the Python test suite (all backends available here, against the float64 oracle);
#   2. the CUDA sources compiled with nvcc for sm_80 and sm_90 (compile only: no GPU here);
#   3. the C++ CPU kernel cross-compiled for aarch64 (compile only);
#   4. the AscendC kernel sources built and run against the CPU model of the AscendC API;
#   5. the C++ CPU kernel under AddressSanitizer and UndefinedBehaviorSanitizer.
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
# The installed console script, end to end, as a user runs it.
run_step "mx-dcn info" mx-dcn info
run_step "mx-dcn check (sample model, Atlas A2 target)" \
  mx-dcn check --model tests.models.three_dcn:build --input-shape 1,3,64,64 --device npu --soc Ascend910B2
run_step "mx-dcn regress run (cpu vs float64 oracle)" mx-dcn regress run --dtype float32,float64,float16 --no-progress
run_step "mx-dcn regress record + verify (cpu kernel vs portable)" bash -c \
  "mx-dcn regress record --out out/golden --dtype float32,float64 --no-progress >/dev/null && mx-dcn regress verify out/golden --backend portable --no-progress"
for script in ci/nvcc_check.sh ci/aarch64_check.sh ci/ascend_sim.sh ci/ascendc_check.sh ci/sanitize.sh; do
  if [ -f "$script" ]; then
    run_step "$script" bash "$script"
  fi
done
echo
echo "all checks passed"
