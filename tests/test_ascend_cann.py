"""The cann backend: layout conversion against the canonical layout (hand-checked example, round
trips, DCNv1 ones) and its own constraints. Its call wiring and semantics, through a stand-in of
torch_npu that computes with CANN's documented rules: tests/test_cann_semantics.py (no NPU here)."""
import pytest
import torch

from mx_dcn.backends.cann import CannBackend
from mx_dcn.layouts import canonical_to_cann, canonical_to_mindspore, cann_to_canonical, mindspore_to_canonical
from mx_dcn.problem import describe


def test_hand_checked_example():
    # dg=1, kernel 1x2 (T=2 samples), one output pixel. Canonical: [dy0, dx0, dy1, dx1], mask [m0, m1].
    offset = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    mask = torch.tensor([5.0, 6.0]).reshape(1, 2, 1, 1)
    planar = canonical_to_cann(offset, mask)
    # CANN: [dx0, dx1, dy0, dy1, m0, m1]
    assert planar.flatten().tolist() == [2.0, 4.0, 1.0, 3.0, 5.0, 6.0]
    back_offset, back_mask = cann_to_canonical(planar)
    assert back_offset.flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert back_mask.flatten().tolist() == [5.0, 6.0]


def test_hand_checked_example_two_groups():
    # dg=2, kernel 1x1: samples t = group. Canonical [dy_g0, dx_g0, dy_g1, dx_g1].
    offset = torch.tensor([10.0, 20.0, 30.0, 40.0]).reshape(1, 4, 1, 1)
    planar = canonical_to_cann(offset, None)
    assert planar.flatten().tolist() == [20.0, 40.0, 10.0, 30.0, 1.0, 1.0]   # no mask -> ones


@pytest.mark.parametrize("dg,kh,kw", [(1, 3, 3), (2, 3, 1), (4, 1, 1), (1, 5, 5)])
def test_round_trips(dg, kh, kw):
    g = torch.Generator().manual_seed(dg * 100 + kh * 10 + kw)
    t = dg * kh * kw
    offset = torch.randn(2, 2 * t, 3, 4, generator=g)
    mask = torch.rand(2, t, 3, 4, generator=g)
    planar = canonical_to_cann(offset, mask)
    assert planar.shape == (2, 3 * t, 3, 4)
    o, m = cann_to_canonical(planar)
    assert torch.equal(o, offset) and torch.equal(m, mask)
    # Element by element against the definition: sample s of pixel (i, j).
    for s in range(t):
        assert torch.equal(planar[:, s], offset[:, 2 * s + 1])         # dx
        assert torch.equal(planar[:, t + s], offset[:, 2 * s])         # dy
        assert torch.equal(planar[:, 2 * t + s], mask[:, s])
    assert torch.equal(canonical_to_cann(*mindspore_to_canonical(planar)), planar)
    assert torch.equal(canonical_to_mindspore(offset, mask), planar)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="offset"):
        canonical_to_cann(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="mask"):
        canonical_to_cann(torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="offset_mask"):
        cann_to_canonical(torch.zeros(1, 4, 2, 2))


def test_constraints_are_named():
    b = CannBackend()
    meta = lambda *s, dtype=torch.float32: torch.empty(*s, device="meta", dtype=dtype)  # noqa: E731
    p = describe(meta(1, 8, 7, 7), meta(1, 6, 5, 7), meta(1, 3, 5, 7), meta(4, 8, 3, 1), device="npu")
    assert [v.rule for v in b.violations(p)] == ["square_kernel"]
    p = describe(meta(1, 8, 7, 7, dtype=torch.float64), meta(1, 18, 7, 7, dtype=torch.float64), None,
                 meta(4, 8, 3, 3, dtype=torch.float64), padding=1, device="npu")
    assert [v.rule for v in b.violations(p)] == ["dtype"]
    assert "torch_npu is not importable" in b.available().reason
