"""A short demonstration: one DCNv2 call on the best backend available here, its selection report,
what an Atlas A2 NPU would do with the same call, and the result checked against the float64 oracle.

    python -m mx_dcn.demo [--repeats N] [--seed S]
"""
from __future__ import annotations

import argparse
import statistics

import torch

import mx_dcn
from mx_dcn.bench import paired_ratio, timed_rounds
from mx_dcn.cli.args import positive_int
from mx_dcn.testing.cases import within_tolerance
from mx_dcn.testing.oracle import oracle_forward


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mx_dcn.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=positive_int, default=9,
                        help="timed calls of each side, after a warm-up (default 9; the median is shown)")
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(args.seed)
    n, c_in, h, w, c_out, k = 2, 64, 24, 40, 64, 3
    x = torch.randn(n, c_in, h, w, generator=g)
    weight = torch.randn(c_out, c_in, k, k, generator=g) / (c_in * k * k) ** 0.5
    bias = torch.randn(c_out, generator=g)
    offset = torch.randn(n, 2 * k * k, h, w, generator=g) * 2.0
    mask = torch.rand(n, k * k, h, w, generator=g)
    call = (x, offset, mask, weight, bias, 1, 1, 1, 1, 1)

    print(f"mx_dcn {mx_dcn.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    report = mx_dcn.explain(*call)
    print(report, "\n")
    print("The same call declared for an Atlas A2 NPU (no NPU needed to ask):")
    print(mx_dcn.explain(*call, device="npu", soc="Ascend910B2"), "\n")
    print("...and for c_in=96, deformable_groups=2 on the same NPU:")
    meta = dict(device="meta")
    print(mx_dcn.explain(torch.empty(n, 96, h, w, **meta), torch.empty(n, 36, h, w, **meta),
                         torch.empty(n, 18, h, w, **meta), torch.empty(c_out, 96, k, k, **meta), None,
                         1, 1, 1, 1, 2, device="npu", soc="Ascend910B2"), "\n")

    out = mx_dcn.modulated_deform_conv2d(*call)
    # Both sides alike: warmed up, then called in alternation (a slow spell of the machine hits both),
    # the median of the calls and of the per-call ratios.
    with torch.no_grad():
        dense_ms, ours_ms = timed_rounds([lambda: torch.nn.functional.conv2d(x, weight, bias, padding=1),
                                          lambda: mx_dcn.modulated_deform_conv2d(*call)],
                                         repeats=args.repeats, warmup=2)
    print(f"ran on '{report.chosen}': output {tuple(out.shape)}; median of {args.repeats} calls after a warm-up: "
          f"{statistics.median(ours_ms):.2f} ms, the dense conv2d of the same shape {statistics.median(dense_ms):.2f} "
          f"ms (ratio {paired_ratio(ours_ms, dense_ms):.2f}; python -m mx_dcn.bench measures more shapes)")

    want = torch.from_numpy(oracle_forward(x, offset, mask, weight, bias, 1, 1, 1, 1, 1))
    ok, err, allowed = within_tolerance(out, want, torch.float32)
    print(f"checked against the float64 oracle: max error {err:.2e} (allowed {allowed:.2e}) -> "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
