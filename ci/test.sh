#!/usr/bin/env bash
# The test command of the README (what CI runs): the README's first command (ci/setup.sh makes .venv
# and compiles the extension -- once; later steps relink -- then the demo and the training example),
# ci/setup.sh --test (the test tools), then:
#   1. the Python test suite (all backends available here, against the float64 oracle), two workers;
#   2. the installed console script, end to end;
#   3. the README's install into an existing environment (ci/install_check.sh: torch untouched, a test
#      subset against the installed wheel; it reuses the objects compiled first, so it only relinks);
#   4. the CUDA sources compiled with nvcc for sm_80 and sm_90 (compile only: no GPU here);
#   5. the C++ CPU kernel cross-compiled for aarch64 (compile only);
#   6. the AscendC kernel sources built and run against the CPU model of the AscendC API, and type-checked
#      against the real AscendC headers (ci/ascendc_check.sh, with ASC_DEVKIT from .ci/run);
#   7. the C++ CPU kernel under AddressSanitizer and UndefinedBehaviorSanitizer (its own build: the
#      only other compilation of the extension).
set -euo pipefail
cd "$(dirname "$0")/.."
total=$SECONDS

run_step() {
  local name=$1; shift
  printf '\n== %s\n' "$name"
  local start=$SECONDS
  "$@"
  echo "-- $name: done in $((SECONDS - start)) s"
}

# The README's first command, as written (tests/test_install.py checks): on a fresh clone it makes
# .venv and compiles the extension, then runs the main job.
run_step "the README's first command (setup, demo, training example)" bash -c \
  "bash ci/setup.sh && . .venv/bin/activate && python -m mx_dcn.demo && python examples/train_dcn_head.py --steps 30"
run_step "setup with the test tools (ci/setup.sh --test: relinks, adds the [test] extra)" bash ci/setup.sh --test
# python, pip, pytest and mx-dcn of the environment ci/setup.sh made
# shellcheck disable=SC1091
. .venv/bin/activate

# Two workers (pytest-xdist, in the [test] extra): most tests are single-threaded Python or a
# subprocess starting torch, so two processes on CI's 2 cores take ~40% less time than one.
run_step "pytest" python -m pytest -q -p no:cacheprovider -n 2 tests
run_step "mx-dcn info" mx-dcn info
run_step "mx-dcn check (sample model, Atlas A2 target)" \
  mx-dcn check --model tests.models.three_dcn:build --input-shape 1,3,64,64 --device npu --soc Ascend910B2
run_step "mx-dcn regress run (cpu vs float64 oracle)" mx-dcn regress run --dtype float32,float64,float16 --no-progress
run_step "mx-dcn regress record + verify (cpu kernel vs portable)" bash -c \
  "mx-dcn regress record --out out/golden --dtype float32,float64 --no-progress >/dev/null && mx-dcn regress verify out/golden --backend portable --no-progress"
for script in ci/install_check.sh ci/nvcc_check.sh ci/aarch64_check.sh ci/ascend_sim.sh ci/ascendc_check.sh ci/sanitize.sh; do
  if [ -f "$script" ]; then
    run_step "$script" bash "$script"
  fi
done
echo
echo "all checks passed in $((SECONDS - total)) s"
