"""Distributed training: 2 processes (gloo, CPU) train a model with ModulatedDeformConv2dPack layers
under DistributedDataParallel, each on half of the batch; the parameters after a few steps must match
a single-process run on the whole batch."""
import datetime
import faulthandler
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch import nn

from mx_dcn import nn as dnn

WORLD = 2
STEPS = 3
BATCH = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANK_DUMP_S = 150  # a rank takes ~7 s here
PARENT_TIMEOUT_S = 240


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dcn1 = dnn.ModulatedDeformConv2dPack(8, 8, 3, padding=1)
        self.dcn2 = dnn.ModulatedDeformConv2dPack(8, 4, 3, stride=2, padding=1, deform_groups=2)

    def forward(self, x):
        return self.dcn2(torch.relu(self.dcn1(torch.relu(self.stem(x)))))


def make_model():
    torch.manual_seed(0)
    model = Net().double()
    with torch.no_grad():  # non-zero offsets, so the offset branch is trained too
        for layer in (model.dcn1, model.dcn2):
            layer.conv_offset.weight.normal_(0, 0.05)
            layer.conv_offset.bias.normal_(0, 0.5)
    return model


def make_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(BATCH, 4, 4, 4, generator=g, dtype=torch.float64)
    return x, y


def train(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return model


def _worker(rank, port, out_dir):
    """One rank: DDP over gloo on 127.0.0.1, half of the batch, then save the parameters."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=120))
    try:
        model = nn.parallel.DistributedDataParallel(make_model())
        x, y = make_data()
        half = BATCH // WORLD
        train(model, x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])
        torch.save(model.module.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
        # Tear down in order: the DDP reducer while its process group exists, and the group only once
        # both ranks are done with it. Freed after destroy_process_group, the reducer hung a rank at
        # exit about one run in four on a loaded machine (faulthandler: stuck leaving _worker).
        del model
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available in this torch build")
def test_ddp_two_processes_match_single_process(tmp_path):
    # Plain subprocesses (not multiprocessing.spawn): nothing to unpickle, a hard timeout, and the
    # ranks' output shown if one fails.
    port = _free_port()
    env = dict(os.environ, PYTHONWARNINGS="ignore::RuntimeWarning",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-u", __file__, str(rank), str(port), str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(WORLD)]
    try:
        outputs = [p.communicate(timeout=PARENT_TIMEOUT_S)[0] for p in procs]
    except subprocess.TimeoutExpired:
        # Show where each rank was (the ranks dump their stacks themselves after RANK_DUMP_S).
        for p in procs:
            p.kill()
        outputs = [p.communicate()[0] for p in procs]
        pytest.fail(f"DDP ranks did not finish within {PARENT_TIMEOUT_S} s:\n" +
                    "\n".join(f"--- rank {r}:\n{out}" for r, out in enumerate(outputs)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{out}"

    start = make_model().state_dict()
    reference = train(make_model(), *make_data()).state_dict()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == reference.keys()
        for name, want in reference.items():
            assert (want - start[name]).abs().max() > 1e-6, f"{name} did not train"
            err = (got[name] - want).abs().max().item()
            assert err < 1e-9, f"rank {rank} {name}: differs from the single-process run by {err:.3e}"


if __name__ == "__main__":
    # A rank still running after RANK_DUMP_S prints every thread's stack and exits, so a hang shows
    # where it was (the parent's own timeout, later, would only see silence).
    faulthandler.dump_traceback_later(RANK_DUMP_S, exit=True)
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
