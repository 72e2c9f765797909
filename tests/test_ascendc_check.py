"""ci/ascendc_check.sh, the real-header type-check of the AscendC kernels, as far as it can be checked
quickly: it skips with a message where the headers are absent, and its negative cases are well
formed (each states the message it must fail with and carries its corrected form). The check itself
(~30 s of CPU against the pinned asc-devkit) runs in CI through .ci/run -> ci/test.sh."""
import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "ci", "ascendc_check.sh")
NEGATIVES = sorted(glob.glob(os.path.join(ROOT, "kernels_ascend", "typecheck", "negative", "*.cpp")))


@pytest.mark.parametrize("value", [None, "/nonexistent/asc-devkit"])
def test_skips_with_a_message_without_headers(value):
    env = {k: v for k, v in os.environ.items() if k != "ASC_DEVKIT"}
    if value:
        env["ASC_DEVKIT"] = value
    proc = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("ascendc_check: SKIPPED: no AscendC headers (set ASC_DEVKIT")
    assert (value or "unset") in proc.stdout


def test_at_least_five_negative_cases():
    assert len(NEGATIVES) >= 5


@pytest.mark.parametrize("path", NEGATIVES, ids=os.path.basename)
def test_negative_case_is_well_formed(path):
    with open(path) as f:
        text = f.read()
    expect = re.findall(r"^// expect: (.+)$", text, re.M)
    assert len(expect) == 1 and re.compile(expect[0])
    assert "#ifdef MXDCN_FIXED" in text and "#else" in text
    assert "\u2018" not in expect[0] and "\u2019" not in expect[0]   # the script runs g++ with LC_ALL=C: plain quotes
