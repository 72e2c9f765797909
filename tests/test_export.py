"""torch.export and torch.compile of models with mx_dcn layers: the native op stays one graph node,
the exported program (also after save/load) and the compiled model match eager, gradients included."""
import pytest
import torch

import mx_dcn
from mx_dcn import nn as dnn
from mx_dcn import ops

pytestmark = [
    pytest.mark.skipif(ops.load_error() is not None, reason=f"extension mx_dcn._C not built: {ops.load_error()}"),
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dcn2 = dnn.ModulatedDeformConv2dPack(8, 8, 3, stride=2, padding=1, deform_groups=2)
        self.dcn1 = dnn.DeformConv2dPack(8, 4, 3, padding=2, dilation=2)
        torch.manual_seed(0)
        with torch.no_grad():
            for layer in (self.dcn2, self.dcn1):
                layer.conv_offset.weight.normal_(0, 0.1)
                layer.conv_offset.bias.normal_(0, 0.5)

    def forward(self, x):
        return self.dcn1(torch.relu(self.dcn2(torch.relu(self.stem(x)))))


def _op_nodes(graph):
    return [n for n in graph.nodes if n.op == "call_function" and n.target == torch.ops.mx_dcn.deform_conv2d.default]


def test_torch_export_runs_and_matches_eager(tmp_path):
    model = Net().eval()
    x = torch.randn(2, 3, 10, 9, generator=torch.Generator().manual_seed(1))
    with mx_dcn.use_backend("cpu"):
        program = torch.export.export(model, (x,))
    assert len(_op_nodes(program.graph)) == 2
    with torch.no_grad():
        eager = model(x)
        assert torch.allclose(program.module()(x), eager, rtol=0, atol=1e-6)
    path = tmp_path / "net.pt2"
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path))
    with torch.no_grad():
        assert torch.allclose(loaded.module()(x), eager, rtol=0, atol=1e-6)


def test_torch_compile_forward_and_backward():
    # Graph breaks are allowed: the layers' Python dispatch (validation, backend selection) may break
    # the graph; the op itself is traced through its fake kernel and autograd formula.
    model = Net().double()
    x = torch.randn(2, 3, 10, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with mx_dcn.use_backend("cpu"):
        eager_out = model(x)
        eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
        compiled = torch.compile(model, backend="aot_eager")
        out = compiled(x)
        grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    assert torch.allclose(out, eager_out, rtol=1e-12, atol=1e-12)
    for (name, _), a, b in zip(model.named_parameters(), grads, eager_grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10), name
