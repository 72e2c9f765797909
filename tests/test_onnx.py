"""ONNX export: mx_dcn layers become standard DeformConv nodes (opset 19) with the right attributes,
and onnxruntime runs the file and matches eager."""
import pytest
import torch

import mx_dcn
from mx_dcn import nn as dnn
from mx_dcn import ops

onnx = pytest.importorskip("onnx", reason="onnx is a test extra: pip install -e .[test]")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra: pip install -e .[test]")
pytest.importorskip("onnxscript", reason="onnxscript is a test extra: pip install -e .[test]")
import mx_dcn.onnx  # noqa: E402
from tests.models.onnx_head import Head  # noqa: E402

pytestmark = [
    pytest.mark.skipif(ops.load_error() is not None, reason=f"extension mx_dcn._C not built: {ops.load_error()}"),
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning"),
]


WANT_ATTRS = [
    dict(strides=[2, 2], pads=[1, 2, 1, 2], dilations=[1, 2], group=2, offset_group=2),
    dict(strides=[1, 1], pads=[1, 0, 1, 0], dilations=[1, 1], group=1, offset_group=3),
    dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, offset_group=1),
]


def _deform_nodes(model_proto):
    return [n for n in model_proto.graph.node if n.op_type == "DeformConv"]


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_export_deformconv_nodes_and_onnxruntime(tmp_path, dynamo):
    model = Head().eval()
    x = torch.randn(2, 4, 11, 12, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "head.onnx"
    with mx_dcn.use_backend("portable"):  # export must not take the portable path even when forced outside
        mx_dcn.onnx.export(model, (x,), str(path), dynamo=dynamo)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert any(o.domain in ("", "ai.onnx") and o.version == 19 for o in proto.opset_import)
    nodes = _deform_nodes(proto)
    assert len(nodes) == 3
    # the portable backend would show as torch.gather / matmul: GatherElements and MatMul nodes
    assert not [n.op_type for n in proto.graph.node if n.op_type in ("GatherElements", "GatherND", "MatMul")]
    for node, want in zip(nodes, WANT_ATTRS):
        got = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        got = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in got.items()}
        assert {k: got.get(k) for k in want} == want, node.name
    # inputs: X, W, offset, [B], [mask]
    assert len(nodes[0].input) == 5 and nodes[0].input[3] != ""          # DCNv2 with bias
    assert len(nodes[1].input) == 3                                        # DCNv1, no bias
    assert len(nodes[2].input) == 5 and nodes[2].input[3] == ""           # DCNv2 without bias

    with torch.no_grad():
        eager = model(x)
    got = _run(path, x)
    err = float((torch.from_numpy(got) - eager).abs().max())
    assert got.shape == tuple(eager.shape) and err <= 1e-5, err


def test_translation_table_with_plain_torch_onnx_export(tmp_path):
    layer = dnn.ModulatedDeformConv2d(3, 2, 3, padding=1).eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x, offset, mask):
            return self.layer(x, offset, mask)

    g = torch.Generator().manual_seed(2)
    x, offset = torch.randn(1, 3, 5, 6, generator=g), torch.randn(1, 18, 5, 6, generator=g) * 2
    mask = torch.rand(1, 9, 5, 6, generator=g)
    path = tmp_path / "layer.onnx"
    with mx_dcn.use_backend("cpu"):
        torch.onnx.export(Wrap(), (x, offset, mask), str(path), dynamo=True, opset_version=19,
                          custom_translation_table=mx_dcn.onnx.translation_table())
    assert len(_deform_nodes(onnx.load(str(path)))) == 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, (x.numpy(), offset.numpy(), mask.numpy()))))[0]
    with torch.no_grad():
        assert float((torch.from_numpy(got) - layer(x, offset, mask)).abs().max()) <= 1e-5


def test_export_rejects_old_opset():
    with pytest.raises(ValueError, match="opset"):
        mx_dcn.onnx.export(Head(), (torch.randn(1, 4, 8, 8),), None, opset_version=18)


@pytest.mark.parametrize("name", ["offsets_outside", "offsets_integer", "stride_pad_dil_mixed", "groups2_dg4",
                                  "v1_no_mask", "no_bias"])
def test_onnxruntime_agrees_on_case_suite(tmp_path, name):
    # DeformConv in onnxruntime must mean what mx_dcn means, at the image border and on integer
    # sample points too: export the bare call of a case and compare.
    from mx_dcn.testing.cases import CASES_BY_NAME
    case = CASES_BY_NAME[name]
    i = case.make_inputs(dtype=torch.float32, seed=21)

    class Call(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(i["weight"])
            self.bias = None if i["bias"] is None else torch.nn.Parameter(i["bias"])

        def forward(self, x, offset, *mask):
            return mx_dcn.modulated_deform_conv2d(x, offset, mask[0] if mask else None, self.weight, self.bias,
                                                  **case.args())

    inputs = tuple(t for t in (i["x"], i["offset"], i["mask"]) if t is not None)
    path = tmp_path / f"{name}.onnx"
    mx_dcn.onnx.export(Call(), inputs, str(path))
    assert len(_deform_nodes(onnx.load(str(path)))) == 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {s.name: t.numpy() for s, t in zip(session.get_inputs(), inputs)}
    got = torch.from_numpy(session.run(None, feeds)[0])
    with torch.no_grad():
        want = Call()(*inputs)
    err = float((got - want).abs().max())
    assert err <= 1e-5, err


# --------------------------------------------------------------------------- plain torch.onnx.export

# A fresh process that imports only mx_dcn.nn and calls torch.onnx.export itself: nothing of
# mx_dcn.onnx is imported or called first, so the export must work from what `import mx_dcn` sets up.
_PLAIN_EXPORT = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from tests.models.onnx_head import Head
dynamo, path = sys.argv[2] == "dynamo", sys.argv[3]
model = Head().eval()
x = torch.randn(2, 4, 11, 12)
if dynamo:
    extra = dict(dynamic_shapes=({0: torch.export.Dim("batch")},))
else:
    extra = dict(input_names=["x"], dynamic_axes={"x": {0: "batch"}})
torch.onnx.export(model, (x,), path, opset_version=19, dynamo=dynamo, **extra)
torch.save(model.state_dict(), path + ".state")
"""


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_plain_torch_onnx_export_dynamic_batch(tmp_path, dynamo):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = tmp_path / "plain.onnx"
    run = subprocess.run([sys.executable, "-c", _PLAIN_EXPORT, root, "dynamo" if dynamo else "torchscript",
                          str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    nodes = _deform_nodes(proto)
    assert len(nodes) == 3
    assert not [n.op_type for n in proto.graph.node if n.op_type in ("GatherElements", "GatherND", "MatMul")]
    for node, want in zip(nodes, WANT_ATTRS):
        got = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        got = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in got.items()}
        assert {k: got.get(k) for k in want} == want, node.name
    assert len(nodes[1].input) == 3 and nodes[2].input[3] == ""
    model = Head().eval()
    model.load_state_dict(torch.load(str(path) + ".state"))
    for batch in (2, 5):  # the batch is a graph input dimension, not a constant
        x = torch.randn(batch, 4, 11, 12, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            eager = model(x)
        got = _run(path, x)
        assert got.shape == tuple(eager.shape)
        assert float((torch.from_numpy(got) - eager).abs().max()) <= 1e-5


def test_a_call_while_another_thread_imports_torch_onnx(monkeypatch):
    """While another thread imports torch.onnx, sys.modules holds it half-initialised (no
    is_in_onnx_export yet): a call must run, not raise AttributeError (it did 3 times in 3)."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "torch.onnx", types.ModuleType("torch.onnx"))
    x, w = torch.randn(1, 4, 6, 6), torch.randn(3, 4, 3, 3)
    out = mx_dcn.modulated_deform_conv2d(x, torch.zeros(1, 18, 4, 4), torch.ones(1, 9, 4, 4), w)
    assert torch.allclose(out, torch.nn.functional.conv2d(x, w), atol=1e-5)
