"""The C++ CPU kernel (torch.ops.mx_dcn.*): the case suite against the float64 oracle in every dtype
and every instruction-set variant, gradcheck, opcheck, torch.compile, torch.export, layouts, empty
batches, bitwise determinism across thread counts, and a workspace that does not grow with the batch."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import mx_dcn
from mx_dcn import ops
from mx_dcn.backends.cpu import CpuBackend
from mx_dcn.problem import describe
from mx_dcn.testing.cases import CASES, GEMM_EDGE_CASES, Case, within_tolerance
from mx_dcn.testing.oracle import oracle_backward, oracle_forward
from mx_dcn.workspace import workspace_budget

_LOAD_ERROR = ops.load_error()
pytestmark = pytest.mark.skipif(_LOAD_ERROR is not None, reason=f"extension not built: {_LOAD_ERROR}")

NAMES = ("x", "offset", "mask", "weight", "bias")
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def op_args(case):
    a = case.args()
    return (list(a["stride"]), list(a["padding"]), list(a["dilation"]), a["groups"], a["deformable_groups"])


def run_op(inputs, case):
    return torch.ops.mx_dcn.deform_conv2d(*(inputs[n] for n in NAMES), *op_args(case))


def check(got, want, dtype, what):
    ok, err, allowed = within_tolerance(got, torch.as_tensor(want), dtype)
    assert ok, f"{what}: max error {err:.3e} > allowed {allowed:.3e} ({dtype})"


def oracle_pair(inputs, case, seed=5):
    """Oracle output and gradients (for a fixed random grad_out) on the inputs as given (so half
    types are compared on their own rounded values)."""
    as64 = {n: None if t is None else t.detach().double() for n, t in inputs.items()}
    want = oracle_forward(**as64, **case.args())
    grad_out = torch.randn(tuple(want.shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grads = oracle_backward(**as64, grad_out=grad_out.numpy(), **case.args())
    return want, grad_out, grads


# --------------------------------------------------------------------------------------------
# Correctness against the oracle


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_suite_against_oracle(case, dtype):
    inputs = case.make_inputs(dtype=dtype, seed=7)
    want, grad_out, grads = oracle_pair(inputs, case)
    leaves = {n: None if t is None else t.requires_grad_(True) for n, t in inputs.items()}
    out = run_op(leaves, case)
    assert out.dtype == dtype and tuple(out.shape) == tuple(want.shape)
    check(out, want, dtype, f"{case.name} output")
    out.backward(grad_out.to(dtype))
    for n in NAMES:
        if leaves[n] is None:
            assert grads[n] is None
            continue
        assert leaves[n].grad.dtype == dtype
        check(leaves[n].grad, grads[n], dtype, f"{case.name} grad {n}")


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("k3x3", "groups2_dg4", "v1_no_mask", "stride2")],
                         ids=lambda c: c.name)
def test_backend_run_and_public_api(case):
    inputs = case.make_inputs(dtype=torch.float32, seed=2)
    want = oracle_forward(**{n: None if t is None else t.double() for n, t in inputs.items()}, **case.args())
    backend = CpuBackend()
    assert backend.available(), backend.available().reason
    problem = describe(*(inputs[n] for n in NAMES), **case.args())
    check(backend.run(problem, *(inputs[n] for n in NAMES)), want, torch.float32, "CpuBackend.run")
    with mx_dcn.use_backend("cpu"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the portable backend
        out = mx_dcn.modulated_deform_conv2d(*(inputs[n] for n in NAMES), **case.args())
    check(out, want, torch.float32, "public API")
    assert mx_dcn.explain(*(inputs[n] for n in NAMES), **case.args()).chosen == "cpu"


def _isa_supported(isa):
    import ctypes  # noqa: F401  (the CPU flags come from /proc/cpuinfo, enough on Linux)
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    need = {"avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512vl", "avx512bw", "avx512dq")}[isa]
    return all(f" {f}" in flags for f in need)


@pytest.mark.parametrize("isa,gemm", [("base", "blas"), ("avx2", "blas"), ("avx512", "own"), ("avx512", "blas")])
def test_every_instruction_set_variant(isa, gemm):
    """The kernels are compiled per instruction set and chosen at run time, and the float32 matrix products
    run on mx_dcn's AVX-512 GEMM or the BLAS; force each variant in a fresh process and check it on the
    whole case suite and the matrix products' edge cases (float32 and float64)."""
    if isa != "base" and not _isa_supported(isa):
        pytest.skip(f"this CPU lacks {isa}")
    script = textwrap.dedent("""
        import json, torch
        from mx_dcn import ops
        from mx_dcn.testing.cases import CASES, GEMM_EDGE_CASES, within_tolerance
        from mx_dcn.testing.oracle import oracle_forward, oracle_backward
        mod = ops.load()
        bad = []
        for dtype in (torch.float64, torch.float32):
            for case in CASES + GEMM_EDGE_CASES:
                inp = case.make_inputs(dtype=dtype, seed=3)
                a = case.args()
                d = {k: None if v is None else v.double() for k, v in inp.items()}
                want = oracle_forward(**d, **a)
                go = torch.randn(tuple(want.shape), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
                grads = oracle_backward(**d, grad_out=go.numpy(), **a)
                leaves = {k: None if v is None else v.requires_grad_() for k, v in inp.items()}
                out = ops.deform_conv2d(*leaves.values(), a["stride"], a["padding"], a["dilation"], a["groups"],
                                        a["deformable_groups"])
                pairs = [("out", out, want)]
                out.backward(go.to(dtype))
                pairs += [(k, leaves[k].grad, grads[k]) for k in leaves if leaves[k] is not None]
                for name, got, ref in pairs:
                    ok, err, allowed = within_tolerance(got, torch.as_tensor(ref), dtype)
                    if not ok:
                        bad.append(f"{dtype} {case.name} {name}: {err:.2e} > {allowed:.2e}")
        print(json.dumps({"isa": mod.kernel_isa(), "gemm": mod.kernel_gemm(), "bad": bad}))
    """)
    env = dict(os.environ, MX_DCN_CPU_ISA=isa, MX_DCN_CPU_GEMM=gemm,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["isa"] == isa
    assert report["gemm"] == gemm
    assert report["bad"] == []


def test_unknown_gemm_choice_is_a_clear_error():
    # with the base set, which has no own GEMM to choose: the setting is checked all the same
    env = dict(os.environ, MX_DCN_CPU_GEMM="fast", MX_DCN_CPU_ISA="base",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # through mx_dcn: refused before the extension loads (mx_dcn.settings)
    script = "import torch, mx_dcn; mx_dcn.ops.load().kernel_gemm()"
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "ValueError: MX_DCN_CPU_GEMM: expected own or blas, got 'fast'" in res.stderr
    # the extension on its own refuses it too
    script = "import torch; from mx_dcn import _C; _C.kernel_gemm()"
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "MX_DCN_CPU_GEMM=fast: expected own or blas" in res.stderr


# --------------------------------------------------------------------------------------------
# The op as a torch citizen: gradcheck, opcheck, compile, export


GRADCHECK_CASES = [
    Case("gc_3x3", 1, 4, 5, 5, 2),
    Case("gc_groups_dg", 2, 4, 4, 5, 4, kh=2, kw=3, stride=(2, 1), padding=(1, 0), dilation=(1, 2),
         groups=2, deformable_groups=2),
    Case("gc_v1_nobias", 1, 2, 4, 4, 2, mask=False, bias=False),
    Case("gc_outside", 1, 3, 4, 4, 2, offsets="outside"),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: c.name)
def test_gradcheck_float64(case):
    inputs = case.make_inputs(dtype=torch.float64, seed=11)
    inputs["offset"] = inputs["offset"] + 0.0137  # off integer coordinates, where bilinear has a kink
    names = [n for n in NAMES if inputs[n] is not None]

    def fn(*tensors):
        d = dict(inputs, **dict(zip(names, tensors)))
        return run_op(d, case)

    tensors = [inputs[n].clone().requires_grad_(True) for n in names]
    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", [GRADCHECK_CASES[0], GRADCHECK_CASES[2],
                                  Case("gc_mask_nobias", 1, 3, 4, 4, 2, bias=False),
                                  Case("gc_bias_nomask", 1, 3, 4, 4, 2, mask=False)], ids=lambda c: c.name)
def test_gradcheck_each_input_alone(case):
    # The autograd kernel maps "which inputs need a gradient" to the backward's output mask, counting
    # only the tensors present (an absent mask or bias takes no index): one input at a time catches a
    # gradient sent to the wrong slot or one computed and dropped.
    inputs = case.make_inputs(dtype=torch.float64, seed=5)
    inputs["offset"] = inputs["offset"] + 0.0137
    present = [n for n in NAMES if inputs[n] is not None]
    for wanted in present:
        tensors = {n: inputs[n].clone().requires_grad_(n == wanted) for n in present}

        def fn(t, wanted=wanted, tensors=tensors):
            return run_op({**inputs, **tensors, wanted: t}, case)

        assert torch.autograd.gradcheck(fn, (tensors[wanted],), eps=1e-6, atol=1e-6, rtol=1e-5), wanted
        out = run_op({**inputs, **tensors}, case)
        out.sum().backward()
        assert all((tensors[n].grad is not None) == (n == wanted) for n in present), wanted


@pytest.mark.parametrize("case", [GRADCHECK_CASES[0], GRADCHECK_CASES[1], GRADCHECK_CASES[2],
                                  Case("oc_empty", 0, 4, 5, 5, 3)], ids=lambda c: c.name)
def test_opcheck(case):
    inputs = case.make_inputs(dtype=torch.float32, seed=1)
    args = tuple(inputs[n] if inputs[n] is None else inputs[n].requires_grad_(True) for n in NAMES) + op_args(case)
    torch.library.opcheck(torch.ops.mx_dcn.deform_conv2d.default, args)
    out = torch.ops.mx_dcn.deform_conv2d(*args)
    grad = torch.randn(out.shape)
    bwd_args = (grad,) + tuple(None if t is None else t.detach() for t in args[:5]) + op_args(case) + (
        [True, True, inputs["mask"] is not None, True, inputs["bias"] is not None],)
    torch.library.opcheck(torch.ops.mx_dcn.deform_conv2d_backward.default, bwd_args)


class _DcnModule(torch.nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(bias)

    def forward(self, x, offset, mask):
        y = torch.ops.mx_dcn.deform_conv2d(x, offset, mask, self.weight, self.bias, [1, 1], [1, 1], [1, 1], 1, 1)
        return torch.relu(y) * 2


def test_torch_compile_fullgraph_matches_eager():
    case = Case("compile", 2, 4, 7, 6, 3)
    inputs = case.make_inputs(dtype=torch.float32, seed=9)
    module = _DcnModule(inputs["weight"], inputs["bias"])
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    results = []
    for m in (module, compiled):
        x = inputs["x"].clone().requires_grad_(True)
        off = inputs["offset"].clone().requires_grad_(True)
        mask = inputs["mask"].clone().requires_grad_(True)
        m.zero_grad()
        out = m(x, off, mask)
        out.sum().backward()
        results.append([out, x.grad, off.grad, mask.grad, m.weight.grad, m.bias.grad])
    for eager, comp in zip(*results):
        torch.testing.assert_close(comp, eager, rtol=0, atol=0)


def test_torch_compile_inductor_runs():
    case = Case("inductor", 1, 4, 6, 6, 3)
    inputs = case.make_inputs(dtype=torch.float32, seed=9)
    module = _DcnModule(inputs["weight"], inputs["bias"])
    compiled = torch.compile(module, fullgraph=True)
    try:
        out = compiled(inputs["x"], inputs["offset"], inputs["mask"])
    except Exception as exc:  # inductor needs a working C++ toolchain for its own kernels
        if "CppCompileError" in type(exc).__name__ or "InvalidCxxCompiler" in type(exc).__name__:
            pytest.skip(f"inductor cannot compile here: {type(exc).__name__}")
        raise
    torch.testing.assert_close(out, module(inputs["x"], inputs["offset"], inputs["mask"]))


def test_torch_export():
    case = Case("export", 2, 4, 7, 6, 3)
    inputs = case.make_inputs(dtype=torch.float32, seed=9)
    module = _DcnModule(inputs["weight"], inputs["bias"])
    exported = torch.export.export(module, (inputs["x"], inputs["offset"], inputs["mask"]))
    assert any("mx_dcn.deform_conv2d" in str(node.target) for node in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(inputs["x"], inputs["offset"], inputs["mask"]),
                               module(inputs["x"], inputs["offset"], inputs["mask"]), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Edge cases: empty batch, layouts, bad input


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_empty_batch(dtype):
    case = Case("empty", 0, 4, 6, 7, 3)
    inputs = {n: None if t is None else t.requires_grad_(True) for n, t in case.make_inputs(dtype=dtype).items()}
    out = run_op(inputs, case)
    assert tuple(out.shape) == (0, 3, 6, 7) and out.dtype == dtype
    out.sum().backward()
    assert inputs["x"].grad.shape == inputs["x"].shape
    assert torch.equal(inputs["weight"].grad, torch.zeros_like(inputs["weight"]))
    assert torch.equal(inputs["bias"].grad, torch.zeros_like(inputs["bias"]))


def _layout_variants(t):
    """The same values in other layouts: non-contiguous (a strided slice of channels), every other image
    of a larger batch (each image contiguous, the batch not), and channels_last."""
    wide = torch.zeros(t.shape[0], t.shape[1] * 2, *t.shape[2:], dtype=t.dtype)
    wide[:, ::2] = t
    tall = torch.zeros(t.shape[0] * 2, *t.shape[1:], dtype=t.dtype)
    tall[::2] = t
    return {"sliced": wide[:, ::2], "batch_sliced": tall[::2],
            "channels_last": t.contiguous(memory_format=torch.channels_last)}


@pytest.mark.parametrize("layout", ["sliced", "batch_sliced", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_non_contiguous_and_channels_last(layout, dtype):
    case = Case("layouts", 2, 6, 7, 8, 4, groups=2, deformable_groups=3)
    base = case.make_inputs(dtype=dtype, seed=4)
    want, grad_out, grads = oracle_pair(base, case)
    inputs = {n: None if t is None else (_layout_variants(t)[layout] if t.dim() == 4 else t)
              for n, t in base.items()}
    assert not inputs["x"].is_contiguous()
    leaves = {n: None if t is None else t.requires_grad_(True) for n, t in inputs.items()}
    out = run_op(leaves, case)
    check(out, want, dtype, f"{layout} output")
    # a non-contiguous grad_output too
    out.backward(_layout_variants(grad_out.to(dtype))[layout])
    for n in NAMES:
        check(leaves[n].grad, grads[n], dtype, f"{layout} grad {n}")


def test_expanded_grad_output():
    case = Case("expanded", 2, 4, 5, 5, 3)
    inputs = {n: t.requires_grad_(True) for n, t in case.make_inputs(dtype=torch.float64, seed=1).items()}
    out = run_op(inputs, case)
    out.sum().backward()  # grad_output is an expanded (stride 0) tensor
    d = {n: t.detach() for n, t in inputs.items()}
    grads = oracle_backward(**d, grad_out=torch.ones(out.shape, dtype=torch.float64).numpy(), **case.args())
    for n in NAMES:
        check(inputs[n].grad, grads[n], torch.float64, f"grad {n}")


def test_raw_op_rejects_bad_input_with_a_clear_error():
    case = Case("bad", 1, 4, 5, 5, 3)
    i = case.make_inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match="offset"):
        torch.ops.mx_dcn.deform_conv2d(i["x"], i["offset"][:, :4], i["mask"], i["weight"], i["bias"], *op_args(case))
    with pytest.raises(ValueError, match="groups"):
        torch.ops.mx_dcn.deform_conv2d(i["x"], i["offset"], i["mask"], i["weight"], i["bias"],
                                       [1, 1], [1, 1], [1, 1], 3, 1)
    with pytest.raises(TypeError, match="dtype"):
        torch.ops.mx_dcn.deform_conv2d(i["x"], i["offset"].double(), i["mask"], i["weight"], i["bias"], *op_args(case))
    stride, padding, dilation, groups, dg = op_args(case)
    bad = [  # (what is wrong, the arguments, the words the message must contain)
        ("mask shape", dict(mask=i["mask"][:, :2]), r"mask: expected shape \(1, 9, 5, 5\)"),
        ("bias shape", dict(bias=i["bias"][:2]), r"bias: expected shape \(3,\)"),
        ("stride 0", dict(stride=[0, 1]), "stride: expected >= 1"),
        ("negative padding", dict(padding=[-1, 1]), "padding: expected >= 0"),
        ("dilation 0", dict(dilation=[1, 0]), "dilation: expected >= 1"),
        ("deformable groups", dict(dg=3), "deformable_groups: expected a divisor of C_in=4"),
        ("weight channels", dict(weight=i["weight"][:, :2]), r"weight: expected shape\[1\] == C_in/groups = 4"),
        ("too small", dict(padding=[0, 0], dilation=[3, 3]), "input: too small for the kernel"),
        ("x rank", dict(x=i["x"][0]), r"input: expected \(N, C, H, W\)"),
    ]
    for what, change, words in bad:
        a = dict(x=i["x"], offset=i["offset"], mask=i["mask"], weight=i["weight"], bias=i["bias"], stride=stride,
                 padding=padding, dilation=dilation, groups=groups, dg=dg)
        a.update(change)
        with pytest.raises(ValueError, match=words):
            torch.ops.mx_dcn.deform_conv2d(*a.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", GEMM_EDGE_CASES, ids=lambda c: c.name)
def test_matrix_product_edges(case, dtype):
    """The matrix products (float32: the avx512 set's own GEMM where the CPU has it; bfloat16 is computed in
    float32 and converted on the way out) on partial register blocks: rows not a multiple of 6, column
    blocks ending in a partial vector, conv groups, a single tile's product split between threads."""
    inputs = case.make_inputs(dtype=dtype, seed=11)
    want, grad_out, grads = oracle_pair(inputs, case)
    leaves = {n: t.requires_grad_(True) for n, t in inputs.items()}
    with workspace_budget(256 << 20):  # the default, which the split case's single tile needs
        out = ops.deform_conv2d(*(leaves[n] for n in NAMES), *op_args(case))
    check(out, want, dtype, f"{case.name} output")
    out.backward(grad_out.to(dtype))
    for n in NAMES:
        check(leaves[n].grad, grads[n], dtype, f"{case.name} grad {n}")


@pytest.mark.parametrize("name", ["gemm_one_tile_split_groups", "det_one_tile_split"])
def test_split_cases_reach_the_split(name):
    """The cases meant to cover a lone tile's split product meet its conditions (float32, default budget):
    one tile, more than one block of 64 output channels, and 2^24 multiply-adds or more."""
    case = {c.name: c for c in GEMM_EDGE_CASES + tuple(DETERMINISM_CASES)}[name]
    mod = ops.load()
    with workspace_budget(256 << 20):
        ops._sync_budget()
        rows = mod.forward_tile_rows(case.n, case.c_in, case.h, case.w, case.c_out, groups=case.groups,
                                     deformable_groups=case.deformable_groups)
    pixels = case.h * case.w  # 3x3, stride 1, padding 1
    assert rows >= pixels
    assert case.c_out // case.groups > 64 or case.groups > 1
    assert pixels * 9 * case.c_in // case.groups * case.c_out >= 1 << 24


def test_tiles_smaller_than_an_image_give_the_same_answer():
    """A tight workspace budget forces many small tiles; the result must not change beyond rounding."""
    case = Case("tiles", 2, 16, 40, 40, 8, deformable_groups=2, groups=2)
    inputs = case.make_inputs(dtype=torch.float64, seed=3)
    want, grad_out, grads = oracle_pair(inputs, case)
    for budget in (1 << 20, 256 << 20):
        with workspace_budget(budget):
            leaves = {n: t.clone().requires_grad_(True) for n, t in inputs.items()}
            out = ops.deform_conv2d(*(leaves[n] for n in NAMES), *op_args(case))
            out.backward(grad_out)
        check(out, want, torch.float64, f"budget {budget} output")
        for n in NAMES:
            check(leaves[n].grad, grads[n], torch.float64, f"budget {budget} grad {n}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_small_images_share_rounds(dtype):
    """Images of one tile run several per parallel round (forward: up to 8 tiles, backward: 2, as the
    budget allows): 11 images of 7x7 make forward rounds of 8 and 3 at 256 MiB, with the next round's
    channels-last copies as tasks of the current one (by bands in float32; bfloat16 converts through
    ATen). Offsets and masks that are not contiguous are staged per image. Every image must match the
    oracle, whatever the budget: at 8 MiB the spare room holds 5 images per forward round, at 1 MiB one
    (512 channels: ~100 KB per copy; counts seen with a temporary print in the kernel)."""
    case = Case("small_images", 11, 512, 7, 7, 4, deformable_groups=2)
    inputs = case.make_inputs(dtype=dtype, seed=4)
    inputs["offset"] = inputs["offset"].transpose(2, 3).contiguous().transpose(2, 3)  # strided, same values
    inputs["mask"] = inputs["mask"].transpose(2, 3).contiguous().transpose(2, 3)
    assert not inputs["offset"].is_contiguous()
    want, grad_out, grads = oracle_pair(inputs, case)
    for budget in (256 << 20, 8 << 20, 1 << 20):
        leaves = {n: t.detach().clone().requires_grad_(True) for n, t in inputs.items()}
        with workspace_budget(budget):
            out = ops.deform_conv2d(*(leaves[n] for n in NAMES), *op_args(case))
            out.backward(grad_out.to(dtype))  # the backward pairs images of one tile per round
        check(out, want, dtype, f"budget {budget}")
        for n in NAMES:
            check(leaves[n].grad, grads[n], dtype, f"budget {budget} grad {n}")


# --------------------------------------------------------------------------------------------
# Determinism and memory


def _fwd_bwd(case, dtype, threads, seed=0):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        inputs = {n: None if t is None else t.requires_grad_(True)
                  for n, t in case.make_inputs(dtype=dtype, seed=seed).items()}
        # through the Python wrapper, which hands the current workspace budget to the kernel
        out = ops.deform_conv2d(*(inputs[n] for n in NAMES), *op_args(case))
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype))
        return [out.detach()] + [inputs[n].grad for n in NAMES if inputs[n] is not None]
    finally:
        torch.set_num_threads(previous)


DETERMINISM_CASES = [
    Case("det_many_tiles", 2, 32, 48, 40, 16, offsets="random"),
    Case("det_groups_dg", 2, 16, 20, 20, 8, groups=2, deformable_groups=4, stride=(2, 1)),
    Case("det_one_tile", 1, 8, 6, 7, 4),
    Case("det_c256", 1, 256, 16, 16, 64),
    Case("det_small_images", 11, 8, 5, 5, 4),  # several images per round, two rounds
    # one image of one tile, its product (49 x 2304 by 2304 x 150) split in 3 blocks of output channels
    Case("det_one_tile_split", 1, 256, 7, 7, 150),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", DETERMINISM_CASES, ids=lambda c: c.name)
def test_bitwise_identical_with_1_and_2_threads(case, dtype):
    one = _fwd_bwd(case, dtype, 1)
    two = _fwd_bwd(case, dtype, 2)
    again = _fwd_bwd(case, dtype, 2)
    for a, b, c in zip(one, two, again):
        assert torch.equal(a, b), "1 vs 2 threads differ"
        assert torch.equal(b, c), "two runs with 2 threads differ"


def test_workspace_does_not_grow_with_the_batch():
    """The kernel's recorded workspace (every buffer it allocates: channels-last copies, tiles,
    staging, converted weights) is the same for 2 and 12 images, and within the budget."""
    case2 = Case("ws2", 2, 32, 48, 48, 32)
    case12 = Case("ws12", 12, 32, 48, 48, 32)
    peaks = []
    for case in (case2, case12):
        for dtype in (torch.float32, torch.float16):
            ops.reset_workspace_peak()
            _fwd_bwd(case, dtype, torch.get_num_threads())
            peaks.append(ops.workspace_peak_bytes())
    assert peaks[0] > 0 and peaks[0] == peaks[2] and peaks[1] == peaks[3], peaks
    with workspace_budget(2 << 20):
        ops.reset_workspace_peak()
        _fwd_bwd(case12, torch.float32, torch.get_num_threads())
        assert ops.workspace_peak_bytes() <= 2 << 20


_RSS_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    from mx_dcn import ops
    n = int(sys.argv[1])
    torch.manual_seed(0)
    x, w, b = torch.randn(n, 64, 64, 64), torch.randn(64, 64, 3, 3) / 24, torch.randn(64)
    off, m = torch.randn(n, 18, 64, 64), torch.rand(n, 9, 64, 64)
    leaves = [t.requires_grad_() for t in (x, off, m, w, b)]
    # warm up on one image so lazily allocated library state is in place
    y = ops.deform_conv2d(*(t[:1] for t in leaves[:3]), *leaves[3:], (1, 1), (1, 1), (1, 1), 1, 1)
    y.sum().backward()
    for t in leaves:
        t.grad = None
    del y
    grad_out = torch.randn(n, 64, 64, 64)
    kept = sum(t.numel() * 4 for t in leaves) + grad_out.numel() * 4  # results: output + 5 gradients
    before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
    out = ops.deform_conv2d(*leaves, (1, 1), (1, 1), (1, 1), 1, 1)
    out.backward(grad_out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"extra": peak - before - kept}))
""")


def test_peak_rss_does_not_grow_with_the_batch():
    """Independent of the kernel's own accounting: the process's peak RSS above its inputs and
    results, for 2 and for 16 images of 64x64x64 (1 MiB each). A buffer per batch would add
    ~14 MiB per batch-sized tensor between the two."""
    extras = []
    for n in (2, 16):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        res = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(n)], env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        extras.append(json.loads(res.stdout.strip().splitlines()[-1])["extra"])
    print("extra bytes above inputs and results:", extras)
    assert extras[1] - extras[0] < 6 * 2 ** 20, f"extra memory grew with the batch: {extras}"


def test_channels_last_input_gives_channels_last_output():
    # as torch.nn.functional.conv2d does; values and gradients unchanged
    from mx_dcn import ops
    if ops.load_error() is not None:
        pytest.skip(ops.load_error())
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 8, 9, 10, generator=g)
    offset, mask = torch.randn(2, 18, 9, 10, generator=g), torch.rand(2, 9, 9, 10, generator=g)
    w = torch.randn(4, 8, 3, 3, generator=g)
    xl = x.to(memory_format=torch.channels_last).requires_grad_()
    with mx_dcn.use_backend("cpu"):
        ref = mx_dcn.modulated_deform_conv2d(x, offset, mask, w, None, 1, 1)
        out = mx_dcn.modulated_deform_conv2d(xl, offset, mask, w, None, 1, 1)
    assert torch.nn.functional.conv2d(xl, w, padding=1).is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    assert torch.equal(out, ref)
    out.sum().backward()
    assert xl.grad is not None and torch.isfinite(xl.grad).all()
    assert ref.is_contiguous()  # an NCHW input keeps an NCHW output
