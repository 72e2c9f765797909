"""Train a small CenterNet-style detection head with DCNv2 layers on synthetic images.

Each image holds a few bright rectangles on noise. The model (a strided conv stem, then a head with
mmcv-style DCNv2 layers, `mx_dcn.nn.ModulatedDeformConv2dPack`) predicts a centre heatmap and box
sizes on a stride-4 grid. The script prints which mx_dcn backend each DCN layer gets (from
`layer.explain(x)`, the selection report), then the loss as it goes down.

    python examples/train_dcn_head.py               # 40 steps, well under 30 s on 2 CPU cores
    python examples/train_dcn_head.py --steps 8 --check   # exit 1 unless the loss went down
    MX_DCN_BACKEND=portable python examples/train_dcn_head.py   # force a backend
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from mx_dcn import nn as dnn

STRIDE = 4


class DCNHead(nn.Module):
    """Stem (stride 4) -> shared DCNv2 -> two branches (each a DCNv2 + 1x1): heatmap and box size."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.shared = dnn.ModulatedDeformConv2dPack(width, width, 3, padding=1)
        self.cls_dcn = dnn.ModulatedDeformConv2dPack(width, width, 3, padding=1, deform_groups=2)
        self.reg_dcn = dnn.ModulatedDeformConv2dPack(width, width, 3, padding=2, dilation=2)
        self.cls_out = nn.Conv2d(width, 1, 1)
        self.reg_out = nn.Conv2d(width, 2, 1)
        nn.init.constant_(self.cls_out.bias, -2.0)  # start with a low objectness prior

    def forward(self, images):
        f = F.relu(self.shared(self.stem(images)))
        heat = self.cls_out(F.relu(self.cls_dcn(f)))
        size = self.reg_out(F.relu(self.reg_dcn(f)))
        return heat, size


def synthetic_batch(batch: int, size: int, generator: torch.Generator):
    """Images (B, 3, size, size) with 1-3 rectangles each; targets on the stride-4 grid: a Gaussian
    centre heatmap (B, 1, g, g), box sizes (B, 2, g, g) in grid cells and a centre mask."""
    grid = size // STRIDE
    images = torch.randn(batch, 3, size, size, generator=generator) * 0.3
    heat = torch.zeros(batch, 1, grid, grid)
    sizes = torch.zeros(batch, 2, grid, grid)
    centres = torch.zeros(batch, 1, grid, grid)
    ys, xs = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    for b in range(batch):
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            h, w = (int(v) for v in torch.randint(6, size // 2, (2,), generator=generator))
            y0 = int(torch.randint(0, size - h, (1,), generator=generator))
            x0 = int(torch.randint(0, size - w, (1,), generator=generator))
            colour = torch.rand(3, 1, 1, generator=generator) + 0.5
            images[b, :, y0:y0 + h, x0:x0 + w] += colour
            cy, cx = (y0 + h / 2) / STRIDE, (x0 + w / 2) / STRIDE
            sigma = max(h, w) / STRIDE / 4 + 0.5
            blob = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma ** 2))
            heat[b, 0] = torch.maximum(heat[b, 0], blob)
            iy, ix = min(int(cy), grid - 1), min(int(cx), grid - 1)
            sizes[b, :, iy, ix] = torch.tensor([h / STRIDE, w / STRIDE])
            centres[b, 0, iy, ix] = 1.0
    return images, heat, sizes, centres


def loss_fn(pred_heat, pred_size, heat, sizes, centres):
    cls = F.binary_cross_entropy_with_logits(pred_heat, heat)
    reg = (F.l1_loss(pred_size, sizes, reduction="none") * centres).sum() / centres.sum().clamp(min=1)
    return cls + 0.1 * reg


def report_backends(model: nn.Module, images: torch.Tensor) -> None:
    """For each DCN layer: the input it sees and the backend mx_dcn picks for it (and why not others)."""
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: seen.setdefault(name, args[0]))
             for name, m in model.named_modules() if isinstance(m, dnn.ModulatedDeformConv2dPack)]
    with torch.no_grad():
        model(images)
    for h in hooks:
        h.remove()
    print("mx_dcn backend per DCN layer:")
    for name, x in seen.items():
        report = dict(model.named_modules())[name].explain(x)
        line = f"  {name:8s} -> {report.chosen}   ({report.problem.summary()})"
        if report.is_fallback and report.forced is None:
            line += "\n             fallback: " + "; ".join(report.fallback_reasons())
        print(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=48, help="image side (pixels)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the loss went down")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps: expected at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)  # the report below says the same, per layer

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = DCNHead()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    report_backends(model, synthetic_batch(2, args.size, gen)[0])

    start, losses = time.time(), []
    every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        images, heat, sizes, centres = synthetic_batch(args.batch, args.size, gen)
        loss = loss_fn(*model(images), heat, sizes, centres)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 1 or step % every == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.time() - start:.1f}s)", flush=True)

    # Compare averages over the first and last fifth: single batches are noisy.
    k = max(1, len(losses) // 5)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    went_down = last < first
    print(f"mean loss of the first {k} steps {first:.4f} -> last {k} steps {last:.4f}: "
          f"{'went down' if went_down else 'did NOT go down'}; {time.time() - start:.1f}s")
    return 0 if went_down or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
