"""Every invalid call is rejected before any kernel runs, with an exception that names the argument,
the expected and the actual value. One test per class of mistake."""
import pytest
import torch

import mx_dcn


def good(n=2, c_in=4, h=6, w=7, c_out=3, k=3, dg=1, groups=1, dtype=torch.float32):
    """A valid call (stride 1, padding 1): x, offset, mask, weight, bias."""
    return dict(x=torch.randn(n, c_in, h, w, dtype=dtype),
                offset=torch.randn(n, 2 * dg * k * k, h, w, dtype=dtype),
                mask=torch.rand(n, dg * k * k, h, w, dtype=dtype),
                weight=torch.randn(c_out, c_in // groups, k, k, dtype=dtype),
                bias=torch.randn(c_out, dtype=dtype))


def run(args, stride=1, padding=1, dilation=1, groups=1, dg=1):
    return mx_dcn.modulated_deform_conv2d(args["x"], args["offset"], args["mask"], args["weight"], args["bias"],
                                          stride, padding, dilation, groups, dg)


def rejects(exc, pattern, args, **kw):
    with pytest.raises(exc, match=pattern):
        run(args, **kw)
    # explain() validates with the same rules.
    with pytest.raises(exc, match=pattern):
        mx_dcn.explain(args["x"], args["offset"], args["mask"], args["weight"], args["bias"],
                       kw.get("stride", 1), kw.get("padding", 1), kw.get("dilation", 1),
                       kw.get("groups", 1), kw.get("dg", 1))


def test_valid_call_passes():
    assert tuple(run(good()).shape) == (2, 3, 6, 7)


def test_x_wrong_ndim():
    a = good()
    a["x"] = a["x"][0]
    rejects(ValueError, r"x: expected a 4-D tensor .* got 3-D shape \(4, 6, 7\)", a)


def test_weight_wrong_ndim():
    a = good()
    a["weight"] = a["weight"].flatten(1)
    rejects(ValueError, r"weight: expected a 4-D tensor", a)


def test_not_a_tensor():
    a = good()
    a["offset"] = a["offset"].tolist()
    rejects(TypeError, r"offset: expected a Tensor .* got list", a)


def test_integer_dtype():
    a = good()
    a["x"] = a["x"].to(torch.int64)
    rejects(TypeError, r"x: expected a floating dtype .* got torch.int64", a)


def test_mixed_dtypes():
    a = good()
    a["weight"] = a["weight"].double()
    rejects(TypeError, r"weight: expected dtype torch.float32 \(the dtype of x\), got torch.float64", a)


def test_mixed_devices():
    a = good()
    a["mask"] = a["mask"].to("meta")
    rejects(ValueError, r"mask: expected device cpu \(the device of x\), got meta", a)


def test_groups_not_dividing_c_in():
    a = good(c_in=4, c_out=6)
    a["weight"] = torch.randn(6, 1, 3, 3)
    rejects(ValueError, r"groups: expected a divisor of C_in=4, got 3", a, groups=3)


def test_groups_not_dividing_c_out():
    a = good(c_in=4, c_out=3, groups=2)
    rejects(ValueError, r"groups: expected a divisor of C_out=3 \(weight.shape\[0\]\), got 2", a, groups=2)


def test_weight_channels_mismatch():
    a = good()
    a["weight"] = torch.randn(3, 5, 3, 3)
    rejects(ValueError, r"weight: expected shape\[1\] == C_in/groups = 4/1 = 4, got 5", a)


def test_deformable_groups_not_dividing_c_in():
    a = good(c_in=4)
    a["offset"] = torch.randn(2, 2 * 3 * 9, 6, 7)
    a["mask"] = torch.rand(2, 3 * 9, 6, 7)
    rejects(ValueError, r"deformable_groups: expected a divisor of C_in=4, got 3", a, dg=3)


def test_offset_channel_count():
    a = good()
    a["offset"] = torch.randn(2, 9, 6, 7)
    rejects(ValueError, r"offset: expected shape \(2, 18, 6, 7\) = \(N, 2\*deformable_groups\*kh\*kw, H_out, W_out\), "
                        r"got \(2, 9, 6, 7\)", a)


def test_mask_channel_count():
    a = good()
    a["mask"] = torch.rand(2, 18, 6, 7)
    rejects(ValueError, r"mask: expected shape \(2, 9, 6, 7\) .* got \(2, 18, 6, 7\)", a)


def test_offset_spatial_mismatch():
    a = good()
    a["offset"] = torch.randn(2, 18, 5, 7)
    rejects(ValueError, r"offset: expected shape \(2, 18, 6, 7\)", a)


def test_mask_spatial_mismatch():
    a = good()
    a["mask"] = torch.rand(2, 9, 6, 8)
    rejects(ValueError, r"mask: expected shape \(2, 9, 6, 7\)", a)


def test_batch_mismatch():
    a = good()
    a["offset"] = torch.randn(3, 18, 6, 7)
    rejects(ValueError, r"offset: expected shape \(2, 18, 6, 7\)", a)


def test_bias_shape():
    a = good()
    a["bias"] = torch.randn(4)
    rejects(ValueError, r"bias: expected shape \(3,\) \(C_out\), got \(4,\)", a)


def test_bias_wrong_type():
    a = good()
    with pytest.raises(TypeError, match=r"bias: expected a Tensor, None or False, got str"):
        mx_dcn.deform_conv2d(a["x"], a["offset"], a["weight"], 1, 1, bias="yes")


def test_zero_stride():
    rejects(ValueError, r"stride: expected every value >= 1, got \(0, 0\)", good(), stride=0)


def test_negative_padding():
    rejects(ValueError, r"padding: expected every value >= 0, got \(1, -1\)", good(), padding=(1, -1))


def test_zero_dilation():
    rejects(ValueError, r"dilation: expected every value >= 1, got \(0, 1\)", good(), dilation=(0, 1))


def test_stride_wrong_length():
    rejects(TypeError, r"stride: expected an int or a pair of ints, got \(1, 1, 1\)", good(), stride=(1, 1, 1))


def test_stride_float():
    rejects(TypeError, r"stride: expected an int or a pair of ints, got float 1.5", good(), stride=1.5)


def test_groups_zero_and_type():
    rejects(ValueError, r"groups: expected a positive int, got 0", good(), groups=0)
    rejects(TypeError, r"deformable_groups: expected a positive int, got float 1.0", good(), dg=1.0)


def test_output_too_small():
    a = good(h=2, w=2)
    rejects(ValueError, r"x: spatial size 2x2 is too small for kernel 3x3 .* got 0x0", a, padding=0)


@pytest.mark.parametrize("h,w", [(0, 5), (5, 0)])
def test_empty_image_with_padding(h, w):
    """An empty image plane is refused as F.conv2d refuses it, even where padding would give an
    output (the portable backend failed on it with an index error, the NPU tiling divided by zero)."""
    a = good(n=1, h=h, w=w, k=1)
    for name in ("offset", "mask"):
        a[name] = a[name].new_zeros(1, a[name].shape[1], h + 2, w + 2)
    rejects(ValueError, r"x: expected a non-empty image \(H, W >= 1\), got shape \(1, 4, %d, %d\)" % (h, w), a)


def test_zero_channels():
    a = good()
    a["x"] = torch.randn(2, 0, 6, 7)
    rejects(ValueError, r"x: expected at least 1 input channel", a)


def test_im2col_step_checked():
    a = good()
    with pytest.raises(ValueError, match=r"im2col_step: expected a positive int"):
        mx_dcn.deform_conv2d(a["x"], a["offset"], a["weight"], 1, 1, im2col_step=0)


def test_declared_device_checked():
    a = good()
    with pytest.raises(ValueError, match=r"device: expected 'cpu', 'cuda' or 'npu', got 'tpu'"):
        mx_dcn.explain(a["x"], a["offset"], a["mask"], a["weight"], padding=1, device="tpu")


def test_rejected_before_any_kernel_runs(monkeypatch):
    """Validation happens before the registry is even consulted."""
    from mx_dcn import registry

    def boom(problem):
        raise AssertionError("a backend was resolved for an invalid call")

    monkeypatch.setattr(registry, "resolve", boom)
    with pytest.raises(ValueError):
        run(good(), padding=-1)
