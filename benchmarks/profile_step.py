"""Where a training step's time goes, and how far it is from this machine's ceiling.

For one width of `model=seed` (batch 128, 64 px, as in throughput.py) it measures

- the machine: the best GFLOP/s of a square fp32 and bf16 GEMM (2048 x 2048, what oneDNN's
  convolutions are built on) and the copy bandwidth of a 256 MiB tensor;
- the seed article's loop, as written, in images/s (throughput.py's reimplementation, its
  DataLoader included), and its step profiled the same way as pumpgan's (below);
- pumpgan's step (throughput.py's `pumpgan_step`: augment + train_step, bf16 channels-last by
  default): torch.profiler self CPU time over `--steps` steps, grouped by category, with the
  FLOPs of the convolutions and matrix products (FlopCounterMode) and their GFLOP/s against
  the GEMM peak, and the slowest ops;

then the bounds: pumpgan's images/s, and its ratio to the seed loop, if every convolution and
matrix product ran at the bf16 GEMM peak (a) with the other ops as measured, (b) with the other
ops taking no time at all. Nothing that keeps the FLOPs can beat (b). The seed loop is
measured and profiled first: pumpgan's step turns on its process-wide allocator setting
(gan.train.keep_freed_memory), which the seed loop as written does not have.

    uv run python benchmarks/profile_step.py --width 32
    uv run python benchmarks/profile_step.py --width 16 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from throughput import (  # the benchmark's loops, shared (run as benchmarks/profile_step.py)
    BATCH,
    IMAGE_SIZE,
    baseline_step,
    machine,
    measure_baseline,
    pumpgan_cfg,
    pumpgan_step,
    write_pngs,
)
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

# self-CPU-time categories by aten op name: the first category with a matching prefix wins
CATEGORIES = {
    "convolutions + matmuls": (
        "aten::mkldnn_convolution",
        "aten::convolution_backward",
        "aten::_convolution",
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::matmul",
    ),
    "BatchNorm": ("aten::native_batch_norm", "aten::_batch_norm", "aten::batch_norm"),
    "activations": (
        "aten::relu",
        "aten::threshold",
        "aten::leaky_relu",
        "aten::tanh",
        "aten::sigmoid",
    ),
    "casts + copies": ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::cat"),
    "optimizer": ("aten::_fused_adam", "aten::_foreach", "aten::zero_"),
    "loss": ("aten::binary_cross_entropy",),
    "augment + noise": ("aten::grid_sampler", "aten::affine_grid", "aten::randn", "aten::flip"),
}
FLOP_OPS = "convolutions + matmuls"


def category(op: str) -> str:
    for name, prefixes in CATEGORIES.items():
        if op.startswith(prefixes):
            return name
    return "other (elementwise, views, autograd)"


def gemm_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    return 2 * n**3 / best_time(lambda: a @ b, reps) / 1e9


def copy_bandwidth(mib: int = 256, reps: int = 5) -> float:
    """GB/s of a large copy, counting the bytes read and written."""
    src = torch.empty(mib * 2**18, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * src.nbytes / best_time(lambda: dst.copy_(src), reps) / 1e9


def best_time(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def profile_step(step: Callable[[], object], steps: int) -> tuple[float, dict[str, float], list]:
    """Median step time (s), self CPU seconds per step by category, and the per-op averages."""
    for _ in range(2):
        step()  # oneDNN primitives, allocator
    times = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    by_category: dict[str, float] = defaultdict(float)
    events = prof.key_averages()
    for e in events:
        by_category[category(e.key)] += e.self_cpu_time_total / 1e6 / steps
    return statistics.median(times), dict(by_category), list(events)


def flop_ops_flops(step: Callable[[], object]) -> int:
    """FLOPs of one step's convolutions and matrix products (all FlopCounterMode counts)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def report(name: str, step_s: float, by_category: dict[str, float], flops: int, peak: float):
    total = sum(by_category.values())
    print(f"\n{name}: {step_s * 1e3:.0f} ms a step (median), {BATCH / step_s:.1f} img/s")
    print("| category | ms / step | share | GFLOP/s (of the GEMM peak) |")
    print("|---|---:|---:|---:|")
    for cat, sec in sorted(by_category.items(), key=lambda kv: -kv[1]):
        rate = ""
        if cat == FLOP_OPS:
            rate = f"{flops / sec / 1e9:.0f} ({flops / sec / 1e9 / peak:.0%})"
        print(f"| {cat} | {sec * 1e3:.1f} | {sec / total:.1%} | {rate} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 untimed)")
    parser.add_argument("--top", type=int, default=12, help="slowest ops to list")
    parser.add_argument(
        "--pumpgan-overrides",
        nargs="*",
        default=["hardware.precision=bf16", "hardware.channels_last=true"],
    )
    args = parser.parse_args()

    peak = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    bandwidth = copy_bandwidth()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_pngs(1000, data / "images" / "jacks")
        seed_ips = measure_baseline(args.width, data / "images", 12, 3, data)
        cfg = pumpgan_cfg(args.width, 10, 2, 512, data / "cache", args.pumpgan_overrides)
    bf16 = cfg.hardware.precision == "bf16"
    pump_peak = peak["bf16" if bf16 else "fp32"]

    seed = baseline_step(args.width)
    seed_s, seed_cat, _ = profile_step(seed, args.steps)
    pump = pumpgan_step(cfg)
    pump_s, pump_cat, events = profile_step(pump, args.steps)
    seed_flops, pump_flops = flop_ops_flops(seed), flop_ops_flops(pump)

    print(machine())
    print(
        f"width {args.width} (model=seed), batch {BATCH}, {IMAGE_SIZE} px; pumpgan: "
        f"{' '.join(args.pumpgan_overrides)}; {args.steps} profiled steps each\n"
        f"machine: GEMM 2048^3 fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} "
        f"GFLOP/s; copy {bandwidth:.1f} GB/s (read + write)\n"
        f"seed loop as written (DataLoader included): {seed_ips:.1f} img/s; "
        f"GFLOP per step: seed {seed_flops / 1e9:.1f}, pumpgan {pump_flops / 1e9:.1f}"
    )
    report("seed loop's step (compute only, fp32)", seed_s, seed_cat, seed_flops, peak["fp32"])
    report("pumpgan's step", pump_s, pump_cat, pump_flops, pump_peak)

    print(f"\nslowest ops of pumpgan's step (self CPU time per step, top {args.top}):")
    print("| op | ms / step | calls / step |")
    print("|---|---:|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        per_step = e.self_cpu_time_total / 1e3 / args.steps
        print(f"| {e.key} | {per_step:.1f} | {e.count / args.steps:g} |")

    measured = sum(pump_cat.values())  # self times add up to about the step's wall time
    flop_s = pump_cat.get(FLOP_OPS, 0.0)
    at_peak = pump_flops / (pump_peak * 1e9)
    bounds = {
        "as measured": pump_s,
        "(a) FLOP ops at the GEMM peak, the rest as measured": at_peak + measured - flop_s,
        "(b) FLOP ops at the GEMM peak, the rest free": at_peak,
    }
    print("\npumpgan's images/s and ratio to the seed loop as written:")
    print("| | s / step | img/s | ratio |")
    print("|---|---:|---:|---:|")
    for label, sec in bounds.items():
        print(f"| {label} | {sec:.3f} | {BATCH / sec:.1f} | {BATCH / sec / seed_ips:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
