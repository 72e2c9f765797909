"""Size limits: index and size arithmetic beyond 2^31 stays exact (64-bit), the cpu kernel's guard
on its 32-bit per-plane index rejects what it cannot address, and -- opt-in, MX_DCN_TEST_LARGE=1,
about 13 GB of RAM -- a problem with more than 2^31 input elements runs correctly on every backend.

The default tests cost no memory: they use meta tensors or stride-0 (expanded) tensors, which
have the logical sizes of huge inputs and the storage of one element.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import mx_dcn
from mx_dcn.testing.cases import within_tolerance
from mx_dcn.testing.oracle import oracle_backward, oracle_forward

BACKENDS = [n for n in mx_dcn.backend_names()
            if "cpu" in mx_dcn.get_backend(n).device_types and mx_dcn.get_backend(n).available()]
NAMES = ("x", "offset", "mask", "weight", "bias")
LARGE = os.environ.get("MX_DCN_TEST_LARGE", "0") == "1"


def expanded(*shape, dtype=torch.float32):
    """A CPU tensor of `shape` backed by one element (stride 0)."""
    return torch.zeros((1,) * len(shape), dtype=dtype).expand(*shape)


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu kernel (mx_dcn._C) is not built")
@pytest.mark.parametrize("side", (46341, 65536))
def test_cpu_kernel_rejects_planes_its_32_bit_plane_index_cannot_address(side):
    # The kernel stores per-plane corner indices (row * W + col) in 32 bits and guards H*W + 1 < 2^31.
    # 64 channels: were the guard missing, its channels-last copy (> 500 GB) would fail to allocate
    # (a RuntimeError) rather than touch memory.
    x = expanded(1, 64, side, side)
    weight = torch.ones(1, 64, 1, 1)
    offset = torch.zeros(1, 2, 1, 1)
    # The backend declares the limit, so selection says why before any kernel runs ...
    report = mx_dcn.explain(x, offset, None, weight, None, stride=side)
    assert report.chosen != "cpu"
    assert [v.rule for v in report.backends["cpu"].violations] == ["plane_size"]
    with mx_dcn.use_backend("cpu"), pytest.raises(mx_dcn.BackendUnusableError, match=r"plane_size.*H\*W"):
        mx_dcn.modulated_deform_conv2d(x, offset, None, weight, None, stride=side)
    # ... and the raw op, called directly, still refuses it itself.
    with pytest.raises(ValueError, match=r"H\*W"):
        torch.ops.mx_dcn.deform_conv2d(x, offset, None, weight, None, [side, side], [0, 0], [1, 1], 1, 1)


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu kernel (mx_dcn._C) is not built")
def test_cpu_kernel_rejects_coordinates_beyond_32_bits_and_portable_runs_them():
    # padding 2^32 with stride 2^34: a 1x1 output whose undeformed sample sits at (-2^32, -2^32), far
    # outside the image (out = bias); truncated to 32 bits it would read pixel (0, 0).
    pad, stride = 2**32, 2**34
    x = torch.randn(1, 2, 4, 4)
    offset = torch.zeros(1, 2, 1, 1)
    weight, bias = torch.ones(3, 2, 1, 1), torch.tensor([1.0, 2.0, 3.0])
    report = mx_dcn.explain(x, offset, None, weight, bias, stride=stride, padding=pad)
    assert [v.rule for v in report.backends["cpu"].violations] == ["padded_extent"]
    assert report.chosen == "portable"
    out = mx_dcn.modulated_deform_conv2d(x, offset, None, weight, bias, stride=stride, padding=pad)
    assert torch.equal(out, bias.view(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"H \+ 2\*pad_h"):
        torch.ops.mx_dcn.deform_conv2d(x, offset, None, weight, bias, [stride, stride], [pad, pad], [1, 1], 1, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_beyond_2_31_elements_are_exact(backend):
    # x has 2 * 64 * 32768^2 = 2^37 elements; the output (2, 5, 512, 512). On the meta device every
    # backend runs its shape and chunking logic (the cpu op its fake kernel) without data.
    n, c, side, stride = 2, 64, 32768, 64
    meta = dict(x=torch.empty(n, c, side, side, device="meta"),
                offset=torch.empty(n, 2, side // stride, side // stride, device="meta"),
                mask=torch.empty(n, 1, side // stride, side // stride, device="meta"),
                weight=torch.empty(5, c, 1, 1, device="meta"), bias=torch.empty(5, device="meta"))
    problem = mx_dcn.describe(*(meta[k] for k in NAMES), stride=stride)
    assert (problem.batch * problem.in_channels * problem.height * problem.width) == 1 << 37
    assert (problem.out_height, problem.out_width) == (512, 512)
    with mx_dcn.use_backend(backend):
        report = mx_dcn.explain(*(meta[k] for k in NAMES), stride=stride)
        assert report.chosen == backend
        if "meta" in mx_dcn.get_backend(backend).device_types or backend == "cpu":
            out = mx_dcn.get_backend(backend).run(problem, *(meta[k] for k in NAMES))
            assert out.shape == (2, 5, 512, 512) and out.device.type == "meta"


@pytest.mark.parametrize("backend", BACKENDS)
def test_plane_index_beyond_2_24_is_exact(backend):
    # A 4097 x 4097 float32 image (67 MB): pixel (4096, 4095) has the odd plane index 16,785,407 > 2^24,
    # which float32 cannot hold. Each output pixel samples one exact pixel: out = x there.
    x = torch.randn(1, 1, 4097, 4097, generator=torch.Generator().manual_seed(0))
    offset = torch.zeros(1, 2, 2, 2)
    offset[0, 1, 1, 1] = -1.0                      # output (1, 1) samples (4096, 4095)
    with mx_dcn.use_backend(backend):
        out = mx_dcn.modulated_deform_conv2d(x, offset, None, torch.ones(1, 1, 1, 1), None, stride=4096)
    want = x[0, 0].new_tensor([[x[0, 0, 0, 0], x[0, 0, 0, 4096]], [x[0, 0, 4096, 0], x[0, 0, 4096, 4095]]])
    assert torch.equal(out[0, 0], want)


def test_output_size_beyond_2_47_bytes_reaches_the_allocator_unwrapped():
    # 2^32 images of 4 x 32 x 32 float32 outputs: 2^48 bytes. Whatever backend runs it, the request
    # that reaches the allocator must be exactly that (a wrapped 32-bit product would be small and
    # be written past). Checked on the cpu kernel; the portable backend's chunking cannot be run on
    # it (see test_memory.py).
    if "cpu" not in BACKENDS:
        pytest.skip("the cpu kernel (mx_dcn._C) is not built")
    n = 1 << 32
    with mx_dcn.use_backend("cpu"), pytest.raises(RuntimeError, match=str(n * 4 * 32 * 32 * 4)):
        mx_dcn.modulated_deform_conv2d(expanded(n, 1, 32, 32), expanded(n, 2, 32, 32), None,
                                       torch.ones(4, 1, 1, 1), None)


# --------------------------------------------------------------------------- opt-in: > 2^31 elements

SIDE = 32769            # one image of 2 x 32769 x 32769 = 2,147,614,722 > 2^31 fp16 elements (4.3 GB)
STRIDE = 32768          # outputs at rows/cols 0 and 32768: the first and the very last pixels
# (dy, dx) per output pixel (ho, wo), exact in fp16; every sample keeps its four corners in the image.
OFFSETS = {(0, 0): (0.25, 0.25), (0, 1): (1.5, -1.75), (1, 0): (-3.0, 2.5), (1, 1): (-0.5, -0.5)}


@pytest.mark.skipif(not LARGE, reason="opt-in: MX_DCN_TEST_LARGE=1 (needs ~13 GB of RAM and a few minutes)")
@pytest.mark.parametrize("backend", BACKENDS)
def test_more_than_2_31_input_elements(backend):
    g = torch.Generator().manual_seed(0)
    x = torch.empty(1, 2, SIDE, SIDE, dtype=torch.float16)
    x.uniform_(-1, 1, generator=g)
    assert x.numel() > 2 ** 31
    offset = torch.zeros(1, 2, 2, 2, dtype=torch.float16)
    for (ho, wo), (dy, dx) in OFFSETS.items():
        offset[0, 0, ho, wo], offset[0, 1, ho, wo] = dy, dx
    leaves = dict(offset=offset, mask=torch.rand(1, 1, 2, 2, generator=g).half(),
                  weight=torch.randn(3, 2, 1, 1, generator=g).half(), bias=torch.randn(3, generator=g).half())
    leaves = {k: v.requires_grad_(True) for k, v in leaves.items()}
    with mx_dcn.use_backend(backend):
        out = mx_dcn.modulated_deform_conv2d(x, leaves["offset"], leaves["mask"], leaves["weight"],
                                             leaves["bias"], stride=STRIDE)
    grad_out = torch.randn(out.shape, generator=g).half()
    grads = dict(zip(leaves, torch.autograd.grad(out, list(leaves.values()), grad_out)))

    # Reference: each output pixel reads one 2x2 patch; the oracle on that patch, sampled at the
    # same fractional position, is the same sample (no corner of these samples is outside the image).
    want_out = torch.zeros(out.shape, dtype=torch.float64)
    want = {k: np.zeros(tuple(leaves[k].shape)) for k in ("offset", "mask", "weight")}
    for (ho, wo), (dy, dx) in OFFSETS.items():
        y, xx = ho * STRIDE + dy, wo * STRIDE + dx
        y0, x0 = int(np.floor(y)), int(np.floor(xx))
        patch = x[:, :, y0:y0 + 2, x0:x0 + 2]
        assert patch.shape[2:] == (2, 2)
        local_off = torch.tensor([y - y0, xx - x0], dtype=torch.float64).view(1, 2, 1, 1)
        mask = leaves["mask"][:, :, ho:ho + 1, wo:wo + 1]
        args = (patch, local_off, mask, leaves["weight"], leaves["bias"])
        # stride 2 on the 2x2 patch: the one output pixel (0, 0), sampled at the local offset.
        want_out[:, :, ho, wo] = torch.from_numpy(oracle_forward(*args, stride=2))[:, :, 0, 0]
        g_local = oracle_backward(*args, grad_out[:, :, ho:ho + 1, wo:wo + 1], stride=2)
        want["offset"][:, :, ho, wo] = g_local["offset"][:, :, 0, 0]
        want["mask"][:, :, ho, wo] = g_local["mask"][:, :, 0, 0]
        want["weight"] += g_local["weight"]
    ok, err, allowed = within_tolerance(out, want_out, torch.float16)
    assert ok, f"forward: {err:.3g} > {allowed:.3g}"
    for name in ("offset", "mask", "weight"):
        ok, err, allowed = within_tolerance(grads[name], torch.from_numpy(want[name]), torch.float16)
        assert ok, f"grad {name}: {err:.3g} > {allowed:.3g}"
    assert torch.allclose(grads["bias"].double(), grad_out.double().sum((0, 2, 3)), rtol=4e-3, atol=4e-3)
