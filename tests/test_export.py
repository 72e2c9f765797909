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


# --------------------------------------------------------------------------- changing batch sizes


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dcn = dnn.ModulatedDeformConv2dPack(8, 8, 3, padding=1)
        with torch.no_grad():
            self.dcn.conv_offset.weight.normal_(0, 0.1)

    def forward(self, x):
        return self.dcn(torch.relu(self.stem(x)))


@pytest.mark.parametrize("dynamic, most", [(None, 2), (True, 1)], ids=["automatic", "dynamic"])
def test_compile_changing_batch_fullgraph_without_recompiles(dynamic, most):
    # fullgraph=True fails on any graph break (backend selection included); the counter counts
    # compilations: automatic dynamic shapes compile twice (static, then a symbolic batch), dynamic=True once.
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model, counter = Small(), CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=dynamic)
    for batch in (2, 2, 3, 5):
        x = torch.randn(batch, 3, 9, 10, generator=torch.Generator().manual_seed(batch))
        out = compiled(x)
        with torch.no_grad():
            assert torch.allclose(out, model(x), rtol=0, atol=1e-6)
    assert counter.frame_count <= most, f"{counter.frame_count} compilations for batches 2, 2, 3, 5"


def test_torch_export_with_dynamic_batch_runs_at_two_sizes():
    model = Small().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.randn(2, 3, 9, 10),), dynamic_shapes=({0: batch},))
    assert len(_op_nodes(program.graph)) == 1
    for n in (2, 5):
        x = torch.randn(n, 3, 9, 10, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), rtol=0, atol=1e-6)


def test_traced_choice_ignores_sizes_but_keeps_static_rules():
    # Under tracing the sizes are unknown (one graph for every batch); the rules that read them are
    # left to the kernels, every other rule still decides: declared Atlas A2 with c_in 64 would take
    # ascendc eagerly, but not for unknown sizes; c_in 96 still breaks c_in_multiple_of_64.
    meta = dict(device="meta")
    x, w = torch.empty(2, 64, 8, 8, **meta), torch.empty(64, 64, 3, 3, **meta)
    off, mask = torch.empty(2, 18, 8, 8, **meta), torch.empty(2, 9, 8, 8, **meta)
    problem = mx_dcn.describe(x, off, mask, w, None, 1, 1, device="npu", soc="Ascend910B2")
    assert mx_dcn.registry.select(problem).chosen == "ascendc"
    traced = problem.without_sizes()
    assert traced.unknown_sizes and "?" in traced.summary()
    report = mx_dcn.registry.select(traced)
    assert report.chosen != "ascendc"
    assert [v.rule for v in report.backends["ascendc"].violations] == ["unknown_sizes"]
    # the cpu kernel's size rules are skipped for unknown sizes; it enforces them itself
    huge = mx_dcn.describe(torch.empty(1, 1, 50000, 50000, **meta), torch.empty(1, 2, 50000, 50000, **meta),
                           None, torch.empty(1, 1, 1, 1, **meta), device="cpu")
    cpu = mx_dcn.get_backend("cpu")
    assert [v.rule for v in cpu.violations(huge)] == ["plane_size"]
    assert cpu.violations(huge.without_sizes()) == []
