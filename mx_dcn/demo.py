"""A short demonstration: one DCNv2 call on the best backend available here, its selection report,
what an Atlas A2 NPU would do with the same call, and the result checked against the float64 oracle.

    python -m mx_dcn.demo          (also: mx-dcn demo)
"""
from __future__ import annotations

import argparse
import time

import torch

import mx_dcn
from mx_dcn.testing.cases import within_tolerance
from mx_dcn.testing.oracle import oracle_forward


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mx_dcn.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
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

    out = mx_dcn.modulated_deform_conv2d(*call)  # warm-up
    start = time.perf_counter()
    out = mx_dcn.modulated_deform_conv2d(*call)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    torch.nn.functional.conv2d(x, weight, bias, padding=1)
    dense = time.perf_counter() - start
    print(f"ran on '{report.chosen}': output {tuple(out.shape)} in {elapsed * 1e3:.2f} ms "
          f"(dense conv2d of the same shape: {dense * 1e3:.2f} ms)")

    want = torch.from_numpy(oracle_forward(x, offset, mask, weight, bias, 1, 1, 1, 1, 1))
    ok, err, allowed = within_tolerance(out, want, torch.float32)
    print(f"checked against the float64 oracle: max error {err:.2e} (allowed {allowed:.2e}) -> "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
