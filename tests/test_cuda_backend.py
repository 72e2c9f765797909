"""The CUDA backend without a GPU: its availability reason, its selection logic, the compile-check
script, and the CUDA kernels' per-thread code run on the host against the float64 oracle.

The kernels in kernels_cuda/*.cu are thin launches of the __host__ __device__ functions of
kernels_cuda/include/mx_dcn_cuda/point_ops.h; kernels_cuda/tests/host_emulation.cpp calls those
functions once per CUDA thread index on the CPU (the atomicAdd replaced by a plain add, the CUB radix
sort by std::stable_sort), and here the results, composed with the same matrix products as the glue
in mx_dcn/csrc/cuda, are compared with the oracle. What this cannot check: the launch configuration,
the CUB call, atomics, 16-bit conversions and anything else that needs a GPU.
"""
import os
import shutil
import stat
import subprocess
import textwrap

import numpy as np
import pytest
import torch

import mx_dcn
from mx_dcn.backends import cuda as cuda_backend
from mx_dcn.problem import describe
from mx_dcn.testing.cases import CASES, CASES_BY_NAME, within_tolerance
from mx_dcn.testing.oracle import oracle_backward, oracle_forward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NVCC_CHECK = os.path.join(ROOT, "ci", "nvcc_check.sh")
INT32_LIMIT = 2**31 - 1 - 1024  # kInt32IndexLimit in mx_dcn_cuda/geometry.h


# ------------------------------------------------------------------------------ availability

def test_reason_on_this_machine():
    avail = mx_dcn.get_backend("cuda").available()
    if torch.version.cuda is None:
        assert not avail
        assert avail.reason == f"torch {torch.__version__} has no CUDA support (torch.version.cuda is None)"
    else:
        assert bool(avail) == (cuda_backend.unavailability_reason(*cuda_backend._facts()) == "")


def test_explain_lists_cuda_with_reason():
    x = torch.empty(1, 4, 5, 5, device="meta")
    offset, mask = torch.empty(1, 18, 5, 5, device="meta"), torch.empty(1, 9, 5, 5, device="meta")
    weight = torch.empty(4, 4, 3, 3, device="meta")
    report = mx_dcn.explain(x, offset, mask, weight, padding=1, device="cuda")
    verdict = report.backends["cuda"]
    avail = mx_dcn.get_backend("cuda").available()
    assert verdict.available == bool(avail)
    assert verdict.reason == avail.reason
    if not avail:
        assert avail.reason in str(report)


@pytest.mark.parametrize("facts, expected", [
    (("2.13.0+cpu", None, None, False, 0), "torch 2.13.0+cpu has no CUDA support (torch.version.cuda is None)"),
    (("2.13.0", "12.8", "mx_dcn._C could not be imported (ImportError: x)", False, 0),
     "mx_dcn._C could not be imported (ImportError: x)"),
    (("2.13.0", "12.8", None, False, 0), "mx_dcn._C was built without CUDA"),
    (("2.13.0", "12.8", None, True, 0), "no CUDA device visible (torch.cuda.device_count() is 0"),
    (("2.13.0", "12.8", None, True, 2), ""),
])
def test_unavailability_reason_branches(facts, expected):
    reason = cuda_backend.unavailability_reason(*facts)
    assert reason.startswith(expected) if expected else reason == ""


def test_deterministic_request(monkeypatch):
    monkeypatch.delenv(cuda_backend.DETERMINISTIC_ENV, raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        assert not cuda_backend.deterministic_requested()
        monkeypatch.setenv(cuda_backend.DETERMINISTIC_ENV, "1")
        assert cuda_backend.deterministic_requested()
        monkeypatch.setenv(cuda_backend.DETERMINISTIC_ENV, "0")
        assert not cuda_backend.deterministic_requested()
        torch.use_deterministic_algorithms(True)
        assert cuda_backend.deterministic_requested()
    finally:
        torch.use_deterministic_algorithms(before)


def _problem(h, w, dtype=torch.float32):
    return describe(torch.empty(1, 4, h, w, device="meta", dtype=dtype),
                    torch.empty(1, 18, h, w, device="meta", dtype=dtype),
                    torch.empty(1, 9, h, w, device="meta", dtype=dtype),
                    torch.empty(4, 4, 3, 3, device="meta", dtype=dtype), None, 1, 1, 1, 1, 1)


def test_violations_deterministic_size(monkeypatch):
    backend = mx_dcn.get_backend("cuda")
    # 4 * 9 taps * H * W corners per image: 8192 x 8192 exceeds 2^31 - 1, 64 x 64 does not.
    big, small = _problem(8192, 8192), _problem(64, 64)
    monkeypatch.delenv(cuda_backend.DETERMINISTIC_ENV, raising=False)
    assert backend.violations(big) == []
    monkeypatch.setenv(cuda_backend.DETERMINISTIC_ENV, "1")
    assert [v.rule for v in backend.violations(big)] == ["deterministic_size"]
    assert backend.violations(small) == []
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        assert backend.violations(_problem(8, 8, dtype)) == []


# ------------------------------------------------------------------------------ ci/nvcc_check.sh

def _fake_nvcc(tmp_path, body):
    path = tmp_path / "nvcc"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _run_check(nvcc, cxx=None):
    env = dict(os.environ, NVCC=nvcc)
    if cxx:
        env["CXX"] = cxx
    else:
        env["MX_DCN_GLUE_CHECK"] = "0"  # the real glue check takes a while; test_... covers it
    return subprocess.run(["bash", NVCC_CHECK], env=env, capture_output=True, text=True, timeout=120)


def test_nvcc_check_flags_every_cu_file(tmp_path):
    log = tmp_path / "calls"
    nvcc = _fake_nvcc(tmp_path, f"""
        [ "$1" = --version ] && {{ echo "fake nvcc"; exit 0; }}
        echo "$@" >> {log}
        """)
    result = _run_check(nvcc)
    assert result.returncode == 0, result.stderr
    assert "glue check disabled" in result.stdout
    calls = log.read_text().splitlines()
    sources = sorted(f for d in ("kernels_cuda", os.path.join("kernels_cuda", "tests"))
                     for f in os.listdir(os.path.join(ROOT, d)) if f.endswith(".cu"))
    assert {"im2col.cu", "col2im.cu", "col2im_deterministic.cu", "gpu_selftest.cu"} <= set(sources)
    assert sorted(os.path.basename(c.split(" -c ")[1].split()[0]) for c in calls) == sources
    for call in calls:
        for flag in ("-gencode arch=compute_80,code=sm_80", "-gencode arch=compute_90,code=sm_90",
                     "-Werror all-warnings", "-Wall,-Wextra,-Werror", "-D__CUDA_NO_HALF_CONVERSIONS__"):
            assert flag in call


def test_nvcc_check_fails_on_compiler_error(tmp_path):
    nvcc = _fake_nvcc(tmp_path, """
        [ "$1" = --version ] && { echo "fake nvcc"; exit 0; }
        echo "warning #177-D: variable declared but never referenced" >&2
        exit 1
        """)
    result = _run_check(nvcc)
    assert result.returncode != 0
    assert "FAILED" in result.stderr and "warning #177-D" in result.stderr


def test_nvcc_check_syntax_checks_the_glue(tmp_path):
    """With torch importable, each mx_dcn/csrc/cuda/*.cpp goes through the host compiler's
    -fsyntax-only; a compiler error there fails the script."""
    log = tmp_path / "cxx_calls"
    nvcc = _fake_nvcc(tmp_path, """
        [ "$1" = --version ] && { echo "fake nvcc"; exit 0; }
        exit 0
        """)
    cxx = tmp_path / "cxx"
    cxx.write_text(f"#!/bin/sh\n[ \"$1\" = -dumpfullversion ] && {{ echo 0; exit 0; }}\necho \"$@\" >> {log}\n"
                   "echo 'error: expected ; before }' >&2\nexit 1\n")
    cxx.chmod(cxx.stat().st_mode | stat.S_IEXEC)
    result = _run_check(nvcc, str(cxx))
    if "SKIPPED" in result.stdout:  # no CUDA headers found: the script says so and cannot check
        assert result.returncode == 0 and not log.exists()
        return
    glue = sorted(f for f in os.listdir(os.path.join(ROOT, "mx_dcn", "csrc", "cuda")) if f.endswith(".cpp"))
    calls = log.read_text().splitlines()
    assert sorted(os.path.basename(c.split()[-1]) for c in calls) == glue
    assert all("-fsyntax-only" in c and "-Werror" in c for c in calls)
    assert result.returncode != 0 and "FAILED  deform_conv_cuda.cpp" in result.stderr


def test_nvcc_check_fails_without_nvcc(tmp_path):
    result = _run_check(str(tmp_path / "no-such-nvcc"))
    assert result.returncode != 0 and "nvcc not found" in result.stderr


# ------------------------------------------------------------------------------ host emulation

@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    assert cxx, "a C++ compiler is needed to build the host emulation of the CUDA kernels"
    exe = str(tmp_path_factory.mktemp("cuda_host") / "host_emulation")
    build = subprocess.run([cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror",
                            "-I", os.path.join(ROOT, "mx_dcn", "csrc"), "-I", os.path.join(ROOT, "kernels_cuda", "include"),
                            os.path.join(ROOT, "kernels_cuda", "tests", "host_emulation.cpp"), "-o", exe],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return exe


def _geometry_args(n, c, h, w, kh, kw, stride, padding, dilation, dg, has_mask):
    return [str(v) for v in (n, c, h, w, kh, kw, *stride, *padding, *dilation, dg, int(has_mask))]


def _launch_choices(harness, *geometry):
    out = subprocess.run([harness, "-", "f32", "32", "nchw", *_geometry_args(*geometry)],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split("=") for line in out.split())


def _needs_int64(harness, *geometry):
    return _launch_choices(harness, *geometry)["needs_int64_index"] == "1"


def test_channel_split_by_size(harness):
    # Enough sample points (8*9*64*64 = 294912 >= 2^18): one thread per point, whole group.
    assert _launch_choices(harness, 8, 256, 64, 64, 3, 3, (1, 1), (1, 1), (1, 1), 1, True)[
        "channels_per_thread"] == "256"
    # Few points (9*16*16 = 2304): the 256 channels are split (2^18 // 2304 = 113 chunks of 3).
    assert _launch_choices(harness, 1, 256, 16, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1, True)[
        "channels_per_thread"] == "3"


def test_index_width_selected_by_size(harness):
    one = ((1, 1), (0, 0), (1, 1))
    assert not _needs_int64(harness, 2, 64, 64, 64, 3, 3, (1, 1), (1, 1), (1, 1), 1, True)
    # A 1x1 kernel over a 1 x W image: 4*W sample corners is the largest index, so the switch is
    # exactly where 4*W passes the int32 limit.
    w0 = INT32_LIMIT // 4
    assert not _needs_int64(harness, 1, 1, 1, w0, 1, 1, *one, 1, False)
    assert _needs_int64(harness, 1, 1, 1, w0 + 1, 1, 1, *one, 1, False)
    # Large channel counts: x has 2^31 elements while the sample points stay few.
    assert _needs_int64(harness, 1, 2**21, 32, 32, 1, 1, (32, 32), (0, 0), (1, 1), 1, False)


def _emulate(harness, tmp_path, case, inputs, grad_out, dtype="f64", index="32", layout="nchw", cpt=None):
    """The CUDA path of one case on the host: kernels emulated, products as in the glue."""
    x, offset, mask, weight, bias = (inputs[k] for k in ("x", "offset", "mask", "weight", "bias"))
    n, c, _, _ = x.shape
    c_out, _, kh, kw = weight.shape
    g, taps = case.groups, kh * kw
    ho, wo = case.out_hw
    p = ho * wo
    wmat = weight.numpy().reshape(g, c_out // g, c * taps // g)
    go = grad_out.numpy().reshape(n, g, c_out // g, p).transpose(1, 2, 0, 3).reshape(g, c_out // g, n * p)
    gcols = np.matmul(wmat.transpose(0, 2, 1), go).reshape(c * taps, n * p)
    for name, t in (("x", x), ("offset", offset), ("mask", mask), ("gcols", gcols)):
        if t is not None:
            np.ascontiguousarray(np.asarray(t, dtype=np.float64)).tofile(tmp_path / f"{name}.bin")
    args = _geometry_args(n, c, case.h, case.w, kh, kw, case.stride, case.padding, case.dilation,
                          case.deformable_groups, mask is not None)
    env = dict(os.environ)
    env.pop("MXDCN_HOST_CPT", None)
    if cpt is not None:
        env["MXDCN_HOST_CPT"] = str(cpt)
    subprocess.run([harness, str(tmp_path), dtype, index, layout, *args], check=True, capture_output=True, env=env)

    def load(name, shape):
        return np.fromfile(tmp_path / f"{name}.bin", dtype=np.float64).reshape(shape)

    cols = load("cols", (g, c * taps // g, n * p))
    out = np.matmul(wmat, cols).reshape(c_out, n, p).transpose(1, 0, 2).reshape(n, c_out, ho, wo)
    if bias is not None:
        out = out + bias.numpy().reshape(1, c_out, 1, 1)
    grads = {
        "x_atomic": load("gx_atomic", x.shape), "x_det": load("gx_det", x.shape),
        "offset": load("goff", offset.shape),
        "mask": load("gmask", mask.shape) if mask is not None else None,
        "weight": np.matmul(go, cols.transpose(0, 2, 1)).reshape(weight.shape),
        "bias": grad_out.numpy().sum(axis=(0, 2, 3)) if bias is not None else None,
    }
    return out, grads


def _check_case(harness, tmp_path, case, dtype="f64", index="32", layout="nchw", cpt=None):
    torch_dtype = torch.float64 if dtype == "f64" else torch.float32
    inputs = case.make_inputs(torch.float64, seed=3)
    if torch_dtype != torch.float64:  # what the kernel sees, rounded to its storage type
        inputs = {k: None if v is None else v.to(torch_dtype).double() for k, v in inputs.items()}
    ho, wo = case.out_hw
    grad_out = torch.randn(case.n, case.c_out, ho, wo, generator=torch.Generator().manual_seed(7),
                           dtype=torch.float64)
    out, grads = _emulate(harness, tmp_path, case, inputs, grad_out, dtype, index, layout, cpt)
    tensors = [inputs[k] for k in ("x", "offset", "mask", "weight", "bias")]
    want_out = oracle_forward(*tensors, **case.args())
    want = oracle_backward(*tensors, grad_out, **case.args())

    def close(got, expect, what):
        ok, err, allowed = within_tolerance(torch.as_tensor(got), torch.as_tensor(expect), torch_dtype)
        assert ok, f"{case.name} {what}: max error {err:.3e} > {allowed:.3e} ({dtype}, int{index}, {layout}, cpt={cpt})"

    close(out, want_out, "forward")
    close(grads["x_atomic"], want["x"], "grad x (atomic path)")
    close(grads["x_det"], want["x"], "grad x (deterministic path)")
    for name in ("offset", "mask", "weight", "bias"):
        assert (grads[name] is None) == (want[name] is None), name
        if want[name] is not None:
            close(grads[name], want[name], f"grad {name}")


RUNNABLE = [c.name for c in CASES if c.n > 0]  # the glue returns before any kernel for N == 0


@pytest.mark.parametrize("name", RUNNABLE)
def test_host_emulation_float64_matches_oracle(harness, tmp_path, name):
    _check_case(harness, tmp_path, CASES_BY_NAME[name])


@pytest.mark.parametrize("name", ["k3x3", "dg2", "groups2_dg4", "offsets_outside", "stride_pad_dil_mixed"])
@pytest.mark.parametrize("dtype, index, layout", [("f64", "64", "nchw"), ("f64", "32", "nhwc"),
                                                  ("f32", "32", "nchw"), ("f32", "64", "nhwc")])
def test_host_emulation_variants(harness, tmp_path, name, dtype, index, layout):
    _check_case(harness, tmp_path, CASES_BY_NAME[name], dtype, index, layout)


@pytest.mark.parametrize("name", ["k3x3", "dg2", "c64_groups2_bias_maskzeros"])
@pytest.mark.parametrize("cpt", [3, 1000])  # uneven chunks of a group; the whole group per thread
def test_host_emulation_channel_splits(harness, tmp_path, name, cpt):
    _check_case(harness, tmp_path, CASES_BY_NAME[name], cpt=cpt)
