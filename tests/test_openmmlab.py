"""mx_dcn under OpenMMLab: `mx_dcn.use_in_mmcv()` against the real mmengine / mmcv / mmdet.

- mmengine + mmcv without its compiled ops (what ci/openmmlab.sh installs; CI runs these): the
  registry path -- `build_conv_layer(dict(type='DCNv2', ...))` builds mx_dcn's layer inside a bottleneck
  written the way mmdet's ResNet writes it, trains, and loads a checkpoint with mmcv's key names.
- mmcv built with its CPU ops (+ mmdet 3.x): the patch path and mmdet's ResNet-50-DCNv2 built from its
  config; these skip, saying why, where such an mmcv is absent.
"""
import importlib
import sys
import types

import pytest
import torch
from torch import nn

import mx_dcn
from mx_dcn import nn as dnn
from mx_dcn.model_check import record_calls
from mx_dcn.testing.oracle import oracle_forward

mmengine = pytest.importorskip("mmengine", reason="mmengine is not installed (bash ci/openmmlab.sh installs it)")
mmcv_cnn = pytest.importorskip("mmcv.cnn", reason="mmcv is not installed (bash ci/openmmlab.sh installs it)")
from mmengine.registry import MODELS  # noqa: E402

from tests.models.mm_resnet_dcn import Bottleneck  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _mmcv_ops_missing():
    try:
        importlib.import_module("mmcv.ops")
    except ImportError as e:
        return f"mmcv has no compiled ops here ({e}): the patch path needs mmcv built with MMCV_WITH_OPS=1"
    return None


DCN_CFG = dict(type="DCNv2", deform_groups=1, fallback_on_stride=False)


@pytest.fixture
def integration():
    with mx_dcn.use_in_mmcv() as report:
        yield report


def test_build_conv_layer_needs_the_call_and_undo_restores():
    from mmcv.cnn import build_conv_layer

    had_own = _mmcv_ops_missing() is None  # mmcv with ops registers its own (when mmcv.ops is imported)
    if not had_own:
        with pytest.raises(KeyError):
            build_conv_layer(dict(type="DCNv2"), 8, 8, 3)
    report = mx_dcn.use_in_mmcv(replace=True)
    try:
        assert "DCNv2" in report.registered + report.replaced and "DCN" in report.registered + report.replaced
        assert "registered in mmengine MODELS" in str(report)
        layer = build_conv_layer(dict(type="DCNv2", deform_groups=2), 8, 16, 3, padding=1, bias=False)
        assert type(layer) is dnn.ModulatedDeformConv2dPack and layer.deform_groups == 2 and layer.bias is None
        assert type(build_conv_layer(dict(type="DCN"), 8, 8, 3)) is dnn.DeformConv2dPack
        assert type(build_conv_layer(dict(type="ModulatedDeformConv2dPack"), 8, 8, 3)) is dnn.ModulatedDeformConv2dPack
        again = mx_dcn.use_in_mmcv(replace=True)  # idempotent: nothing left to change
        assert again.registered == again.replaced == [] and again.patched == []
    finally:
        report.undo()
    if not had_own:
        with pytest.raises(KeyError):
            build_conv_layer(dict(type="DCNv2"), 8, 8, 3)
        assert MODELS.get("DCN") is None


def test_existing_registration_is_kept_unless_replaced(monkeypatch):
    # mmcv with ops registers its own 'DCNv2'; stand in for it with a marker class.
    class TheirDCNv2(nn.Module):
        pass

    table = MODELS._module_dict
    monkeypatch.setitem(table, "DCNv2", TheirDCNv2)
    with mx_dcn.use_in_mmcv(patch=False) as report:
        # mmcv with ops also has its own 'DCN', kept as well
        assert report.kept[0] == "DCNv2" and MODELS.get("DCNv2") is TheirDCNv2
        assert "replace=True" in str(report)
    with mx_dcn.use_in_mmcv(replace=True, patch=False) as report:
        assert "DCNv2" in report.replaced and MODELS.get("DCNv2") is dnn.ModulatedDeformConv2dPack
    assert MODELS.get("DCNv2") is TheirDCNv2


def test_invalid_arguments():
    with pytest.raises(TypeError, match="replace"):
        mx_dcn.use_in_mmcv(replace="yes")


def test_bottleneck_trains_and_loads_an_mmcv_checkpoint(integration, tmp_path):
    torch.manual_seed(0)
    block = Bottleneck(16, 8, stride=2, dcn=DCN_CFG)
    # mx_dcn's layer (mmcv without ops) or mmcv's own layer with its functions patched onto mx_dcn
    expected = dnn.ModulatedDeformConv2dPack if _mmcv_ops_missing() else MODELS.get("DCNv2")
    assert type(block.conv2) is expected and block.conv2.stride == (2, 2)
    # mmcv's DCNv2 (mmcv/ops/modulated_deform_conv.py) has these parameters, under these names
    mmcv_keys = {"conv2.weight": (8, 8, 3, 3), "conv2.conv_offset.weight": (27, 8, 3, 3),
                 "conv2.conv_offset.bias": (27,)}
    state = block.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k.startswith("conv2.")} == mmcv_keys

    g = torch.Generator().manual_seed(1)
    x, target = torch.randn(2, 16, 12, 12, generator=g), torch.randn(2, 32, 6, 6, generator=g)
    opt = torch.optim.SGD(block.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        with record_calls(block, run_kernels=True) as calls:
            loss = torch.nn.functional.mse_loss(block(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss))
        assert [c.layer for c in calls] == ["conv2"]  # the DCN runs through mx_dcn
    assert all(torch.isfinite(torch.tensor(losses))) and losses[0] > losses[1] > losses[2], losses
    assert block.conv2.conv_offset.weight.abs().sum() > 0  # the offset branch learnt

    # A checkpoint written with mmcv's names (mmengine's format) loads into the mx_dcn model unchanged.
    from mmengine.runner import load_checkpoint

    saved = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in state.items()}
    for k, shape in mmcv_keys.items():
        saved[k] = torch.randn(shape, generator=g)
    torch.save({"meta": {"mmcv_version": "2.1.0"}, "state_dict": saved}, tmp_path / "mmcv.pth")
    fresh = Bottleneck(16, 8, stride=2, dcn=DCN_CFG)
    load_checkpoint(fresh, str(tmp_path / "mmcv.pth"), map_location="cpu", strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_patch_replaces_mmcv_functions_everywhere(monkeypatch):
    # Stand-ins for mmcv.ops' modules (the real ones need mmcv's compiled ops, see the test below):
    # the patch must reach the defining modules, mmcv.ops' re-exports and a module that imported by name.
    def their_mdcn(*args):
        raise AssertionError("mmcv's own op ran")

    def their_dcn(*args):
        raise AssertionError("mmcv's own op ran")

    mdc = types.ModuleType("mmcv.ops.modulated_deform_conv")
    mdc.modulated_deform_conv2d, mdc.ModulatedDeformConv2dFunction = their_mdcn, object()
    dc = types.ModuleType("mmcv.ops.deform_conv")
    dc.deform_conv2d, dc.DeformConv2dFunction = their_dcn, object()
    ops = types.ModuleType("mmcv.ops")
    ops.modulated_deform_conv2d, ops.deform_conv2d = their_mdcn, their_dcn
    user = types.ModuleType("user_head")
    user.modulated_deform_conv2d = their_mdcn
    for name, module in (("mmcv.ops", ops), ("mmcv.ops.modulated_deform_conv", mdc),
                         ("mmcv.ops.deform_conv", dc), ("user_head", user)):
        monkeypatch.setitem(sys.modules, name, module)
    with mx_dcn.use_in_mmcv() as report:
        assert report.mmcv_ops == "available"
        assert {"mmcv.ops.modulated_deform_conv.modulated_deform_conv2d", "mmcv.ops.deform_conv.deform_conv2d",
                "mmcv.ops.modulated_deform_conv2d", "mmcv.ops.deform_conv2d",
                "mmcv.ops.modulated_deform_conv.ModulatedDeformConv2dFunction",
                "mmcv.ops.deform_conv.DeformConv2dFunction", "user_head.modulated_deform_conv2d"} == set(report.patched)
        assert user.modulated_deform_conv2d is ops.modulated_deform_conv2d is mdc.modulated_deform_conv2d
        assert dc.DeformConv2dFunction.apply is ops.deform_conv2d
        x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
        out = ops.modulated_deform_conv2d(x, torch.zeros(1, 18, 3, 3), torch.ones(1, 9, 3, 3), w, None, 1, 0, 1, 1, 1)
        assert torch.allclose(out, torch.nn.functional.conv2d(x, w), atol=1e-5)
        # mmcv's keywords, and its AMP rule: input, mask, weight and bias take the offset's dtype
        # (autocast makes the offset conv's output float16 while the layer's weight stays float32)
        b = torch.randn(3)
        out16 = ops.modulated_deform_conv2d(input=x, offset=torch.zeros(1, 18, 3, 3, dtype=torch.float16),
                                            mask=torch.ones(1, 9, 3, 3), weight=w, bias=b, deform_groups=1)
        assert out16.dtype == torch.float16
        want = torch.nn.functional.conv2d(x.half().float(), w.half().float(), b.half().float())
        assert torch.allclose(out16.float(), want, atol=2e-2), float((out16.float() - want).abs().max())
        out16 = dc.DeformConv2dFunction.apply(x, torch.zeros(1, 18, 3, 3, dtype=torch.float16), w, 1, 0, 1, 1,
                                              1, False, 32)
        assert out16.dtype == torch.float16
        # a module imported while the patch is active takes the replacement by name; undo reaches it too
        late = types.ModuleType("late_head")
        late.modulated_deform_conv2d = ops.modulated_deform_conv2d
        monkeypatch.setitem(sys.modules, "late_head", late)
    assert user.modulated_deform_conv2d is their_mdcn and ops.deform_conv2d is their_dcn
    assert mdc.modulated_deform_conv2d is their_mdcn and late.modulated_deform_conv2d is their_mdcn


def test_a_patch_failing_midway_is_undone(monkeypatch):
    """If the patch raises part way (here a module refusing the attribute), nothing stays applied."""
    from mmengine.registry import MODELS

    class Refusing(types.ModuleType):
        def __setattr__(self, name, value):
            raise RuntimeError("read-only module")

    def their_mdcn(*args):
        raise AssertionError("mmcv's own op ran")

    mdc = types.ModuleType("mmcv.ops.modulated_deform_conv")
    mdc.modulated_deform_conv2d, mdc.ModulatedDeformConv2dFunction = their_mdcn, object()
    dc = types.ModuleType("mmcv.ops.deform_conv")
    dc.deform_conv2d, dc.DeformConv2dFunction = object(), object()
    stubborn = Refusing("zz_stubborn")
    stubborn.__dict__["modulated_deform_conv2d"] = their_mdcn
    for name, module in (("mmcv.ops", types.ModuleType("mmcv.ops")), ("mmcv.ops.modulated_deform_conv", mdc),
                         ("mmcv.ops.deform_conv", dc), ("zz_stubborn", stubborn)):
        monkeypatch.setitem(sys.modules, name, module)
    before = MODELS.get("DCNv2")
    with pytest.raises(RuntimeError, match="read-only module"):
        mx_dcn.use_in_mmcv()
    assert mdc.modulated_deform_conv2d is their_mdcn and MODELS.get("DCNv2") is before


# --------------------------------------------------------------------------- mmcv with its CPU ops


def test_patch_path_on_real_mmcv_ops():
    missing = _mmcv_ops_missing()
    if missing:
        pytest.skip(missing)
    from mmcv.ops import ModulatedDeformConv2dPack as MmcvDCNv2

    torch.manual_seed(0)
    layer = MmcvDCNv2(8, 8, 3, padding=1)
    nn.init.normal_(layer.conv_offset.weight, 0, 0.2)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        theirs = layer(x)  # mmcv's own CPU op
    with mx_dcn.use_in_mmcv() as report:
        assert "mmcv.ops.modulated_deform_conv.modulated_deform_conv2d" in report.patched
        with record_calls(layer, run_kernels=True) as calls, torch.no_grad():
            ours = layer(x)
        assert len(calls) == 1
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4), float((ours - theirs).abs().max())


def _train_three_steps(model, x, loss_of, dcns, probe) -> dict:
    """Three SGD steps of `model` on `x`: every layer of `dcns` ((name, module) pairs) runs on mx_dcn
    at each step, the losses stay finite. `probe` gets a real deformation (its offset conv's weight
    drawn) and, after one more forward with the final weights, its input and output are returned
    ({"x", "out"}) for the oracle check."""
    nn.init.normal_(probe.conv_offset.weight, 0, 0.05)
    seen = {}
    probe.register_forward_hook(lambda m, args, out: seen.update(x=args[0].detach(), out=out.detach()))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        with record_calls(model, run_kernels=True) as calls:
            loss = loss_of(model(x))
        loss.backward()
        opt.step()
        losses.append(float(loss))
        assert sorted(c.layer for c in calls) == sorted(n for n, _ in dcns)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    with torch.no_grad():
        model(x)
    return seen


def test_mmdet_resnet50_dcnv2_from_config_trains_on_mx_dcn():
    missing = _mmcv_ops_missing()
    if missing:
        pytest.skip(missing)
    try:
        from mmdet.registry import MODELS as MMDET_MODELS
        from mmdet.utils import register_all_modules
    except ImportError as e:
        pytest.skip(f"mmdet is not installed ({e}): pip install mmdet==3.3.0")
    register_all_modules()
    from mmcv.ops import ModulatedDeformConv2dPack as MmcvDCNv2

    torch.manual_seed(0)
    with mx_dcn.use_in_mmcv():
        model = MMDET_MODELS.build(dict(type="ResNet", depth=50, out_indices=(1, 2, 3),
                                        dcn=dict(type="DCNv2", deform_groups=1, fallback_on_stride=False),
                                        stage_with_dcn=(False, True, True, True)))
        dcns = [(n, m) for n, m in model.named_modules() if isinstance(m, MmcvDCNv2)]
        assert len(dcns) == 4 + 6 + 3  # the conv2 of every bottleneck in stages 2-4
        name, probe = dcns[0]
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        seen = _train_three_steps(model, x, lambda out: sum(o.square().mean() for o in out), dcns, probe)
        with torch.no_grad():
            offset_mask = probe.conv_offset(seen["x"])
        o1, o2, m = torch.chunk(offset_mask, 3, dim=1)
        want = oracle_forward(seen["x"], torch.cat((o1, o2), 1), torch.sigmoid(m), probe.weight, probe.bias,
                              probe.stride, probe.padding, probe.dilation, probe.groups, probe.deform_groups)
        err = float((seen["out"].double() - torch.from_numpy(want)).abs().max())
        assert err <= 1e-4 * max(1.0, float(abs(want).max())), f"{name}: {err}"


def test_mmdet3d_centerpoint_dcn_head_trains_on_mx_dcn():
    """CenterPoint's DCNSeparateHead (mmdet3d 1.4) with its DCN (v1, groups 4) built from mmcv's config
    name: both feature-adaptation DCNs run on mx_dcn, a few training steps, one checked against the oracle."""
    missing = _mmcv_ops_missing()
    if missing:
        pytest.skip(missing)
    try:
        import mmdet3d.models  # noqa: F401
        from mmdet3d.registry import MODELS as MMDET3D_MODELS
    except ImportError as e:
        pytest.skip(f"mmdet3d is not installed ({e}): pip install mmdet3d==1.4.0")
    from mmcv.ops import DeformConv2dPack as MmcvDCN
    from mmengine.registry import DefaultScope

    torch.manual_seed(0)
    with mx_dcn.use_in_mmcv(), DefaultScope.overwrite_default_scope("mmdet3d"):
        head = MMDET3D_MODELS.build(dict(
            type="DCNSeparateHead", in_channels=64, num_cls=3, head_conv=64, final_kernel=3,
            heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
            dcn_config=dict(type="DCN", in_channels=64, out_channels=64, kernel_size=3, padding=1, groups=4)))
        dcns = [(n, m) for n, m in head.named_modules() if isinstance(m, MmcvDCN)]
        assert [n for n, _ in dcns] == ["feature_adapt_cls", "feature_adapt_reg"]
        probe = dcns[0][1]
        x = torch.randn(2, 64, 16, 16, generator=torch.Generator().manual_seed(1))
        seen = _train_three_steps(head, x, lambda out: sum(o.square().mean() for o in out.values()), dcns, probe)
        with torch.no_grad():
            offset = probe.conv_offset(seen["x"])
        want = oracle_forward(seen["x"], offset, None, probe.weight, None, probe.stride, probe.padding,
                              probe.dilation, probe.groups, probe.deform_groups)
        err = float((seen["out"].double() - torch.from_numpy(want)).abs().max())
        assert err <= 1e-4 * max(1.0, float(abs(want).max())), err


# --------------------------------------------------------------------------- mx-dcn check on mm models


def _run_check(capsys, *argv):
    from mx_dcn import cli

    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def _verdicts(out):
    return {line.split()[1]: line.split()[-1] if "fallback" not in line else line.split()[-2]
            for line in out.splitlines() if line[:1].isdigit()}


def test_check_model_factory_with_dict_inputs_lists_every_dcn(capsys):
    status, out, err = _run_check(capsys, "check", "--model", "tests.models.mm_resnet_dcn:build_with_inputs",
                                  "--device", "npu", "--soc", "Ascend910B2")
    assert status == 0, err
    assert _verdicts(out) == {"layer1.0.conv2": "ascendc", "layer2.0.conv2": "cann"}
    assert "[c_in_multiple_of_64]" in out and "the factory's example inputs" in out
    assert MODELS.get("DCNv2") is None or MODELS.get("DCNv2") is not dnn.ModulatedDeformConv2dPack  # undone
    status, _, err = _run_check(capsys, "check", "--model", "tests.models.mm_resnet_dcn:build_with_inputs",
                                "--input-shape", "1,3,8,8")
    assert status == 2 and "drop --input-shape" in err


def test_check_config_built_with_the_registry(capsys, tmp_path):
    cfg = tmp_path / "tiny_dcn.py"
    cfg.write_text("custom_imports = dict(imports=['tests.models.mm_resnet_dcn'], allow_failed_imports=False)\n"
                   "model = dict(type='TinyResNetDCN')\n")
    status, out, err = _run_check(capsys, "check", "--config", cfg, "--input-shape", "1,3,16,16", "--device", "npu",
                                  "--soc", "Ascend910B2", "--json")
    assert status == 0, err
    import json
    report = json.loads(out)
    assert [(c["layer"], c["chosen"]) for c in report["calls"]] == [("layer1.0.conv2", "ascendc"),
                                                                    ("layer2.0.conv2", "cann")]
    status, _, err = _run_check(capsys, "check", "--config", tmp_path / "missing.py", "--input-shape", "1,3,8,8")
    assert status == 2 and "cannot read" in err


def test_check_mmdet_resnet50_dcnv2_config(capsys, tmp_path):
    missing = _mmcv_ops_missing()
    if missing:
        pytest.skip(missing)
    pytest.importorskip("mmdet.models", reason="mmdet is not installed: pip install mmdet==3.3.0")
    cfg = tmp_path / "r50_dcn.py"
    cfg.write_text("default_scope = 'mmdet'\n"
                   "model = dict(type='ResNet', depth=50, dcn=dict(type='DCNv2', deform_groups=1, "
                   "fallback_on_stride=False), stage_with_dcn=(False, True, True, True))\n")
    status, out, err = _run_check(capsys, "check", "--config", cfg, "--input-shape", "1,3,64,64", "--device", "npu",
                                  "--soc", "Ascend910B2")
    assert status == 0, err
    verdicts = _verdicts(out)
    assert len(verdicts) == 13 and all(layer.endswith(".conv2") for layer in verdicts), out
    assert set(verdicts.values()) == {"ascendc"}, out  # c_in 128, 256, 512: all multiples of 64
