"""Where a training step's time goes, and how far it is from this machine's ceiling.

For one width of `model=seed` (batch 128, 64 px, as in throughput.py) it measures

- the machine: the best GFLOP/s of a square fp32 and bf16 GEMM (2048 x 2048, what oneDNN's
  convolutions are built on) and the copy bandwidth of a 256 MiB tensor;
- the seed article's loop, as written, in images/s (throughput.py's reimplementation, its
  DataLoader included), and its step profiled the same way as pumpgan's (below);
- pumpgan's step (throughput.py's `pumpgan_step`: augment + train_step, in the precision a run
  picks on this machine): torch.profiler self CPU time over `--steps` steps, grouped by
  category, with the FLOPs of the convolutions and matrix products (FlopCounterMode) and their
  GFLOP/s against the GEMM peak, and the slowest ops;

- every convolution pass of pumpgan's G and D (forward, input gradient, weight gradient) timed
  alone at its shape in the step, in the step's precision and layout, against a plain GEMM of
  the same shape and FLOPs;

then the bounds: pumpgan's images/s, and its ratio to the seed loop, (c) if every convolution
pass ran at the speed of its GEMM where that is faster, the other ops as measured; if every
convolution and matrix product ran at the bf16 GEMM peak (a) with the other ops as measured,
(b) with the other ops taking no time at all. Nothing that keeps the FLOPs can beat (b). The
seed loop is
measured and profiled first: pumpgan's step turns on its process-wide allocator setting
(gan.run.hardware.keep_freed_memory), which the seed loop as written does not have.

    uv run python benchmarks/profile_step.py --width 32
    uv run python benchmarks/profile_step.py --width 16 --steps 5
    uv run python benchmarks/profile_step.py --quick --width 4 --steps 1   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from torch.profiler import ProfilerActivity, profile

# the benchmark's loops, shared; importing it also puts the checkout (`gan`) on sys.path
from throughput import (
    BATCH,
    IMAGE_SIZE,
    baseline_step,
    best_time,
    flops_per_step,
    machine,
    measure_baseline,
    pumpgan_cfg,
    pumpgan_step,
    write_pngs,
)

# isort: split
from gan.nets.step import build_models  # noqa: E402
from gan.run import hardware  # noqa: E402  (after throughput: sys.path

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
    "BatchNorm": (
        "aten::native_batch_norm",
        "aten::_batch_norm",
        "aten::batch_norm",
    ),
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
    return 2 * n**3 / gemm_time(n, n, n, dtype, reps) / 1e9


def copy_bandwidth(mib: int = 256, reps: int = 5) -> float:
    """GB/s of a large copy, counting the bytes read and written."""
    src = torch.empty(mib * 2**18, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * src.nbytes / best_time(lambda: dst.copy_(src), reps) / 1e9


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


@dataclass
class Pass:
    """One pass of one layer, timed alone: forward, input gradient or weight gradient."""

    layer: str
    kind: str
    per_step: int  # how often a training step runs it
    seconds: float
    flops: int
    gemm: tuple[int, int, int]  # (m, k, n) of the matrix product with the same FLOPs


def layer_passes(cfg: DictConfig, reps: int) -> list[Pass]:
    """Every conv layer of pumpgan's G and D at its input shape in a step, its forward, input
    gradient and weight gradient timed alone (best of `reps`) in the step's precision and
    layout, with the module's own forward (gan/fast.py's swapped layers included)."""
    hw = hardware.setup(cfg.hardware, cfg.model, BATCH)
    gen, disc, _, _ = build_models(cfg.model, cfg.optim, hw.place)
    shapes: dict[nn.Module, torch.Size] = {}

    def record(module: nn.Module, x: torch.Tensor) -> None:
        shapes.setdefault(module, x.shape)

    hooks = [
        m.register_forward_hook(lambda mod, args, out: record(mod, args[0]))
        for net in (gen, disc)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    with torch.no_grad(), hw.autocast():
        disc(gen(torch.randn(BATCH, cfg.model.dim_z, 1, 1)).float())
    for h in hooks:
        h.remove()
    passes = []
    for net_name, net in (("G", gen), ("D", disc)):
        convs = [m for m in net.modules() if m in shapes]
        for i, m in enumerate(convs):
            passes += time_layer(f"{net_name}{i}", m, shapes[m], hw.bf16, hw.memory_format, reps)
    return passes


def time_layer(
    name: str, m: nn.Module, shape: torch.Size, bf16: bool, fmt: torch.memory_format, reps: int
) -> list[Pass]:
    """Layer `name` ("G0", "D3", ...): its passes, timed alone."""
    assert isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    c_in, c_out, k = m.in_channels, m.out_channels, m.kernel_size[0] ** 2
    x = torch.randn(shape, dtype=torch.bfloat16 if bf16 else torch.float32)
    x = x.contiguous(memory_format=fmt)
    x_req = x.detach().requires_grad_(True)

    def graph(for_input: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's output with only the input or only the weight requiring grad, as in a
        step (D's weights are frozen in G's step; images need no gradient in D's), and a
        gradient for it."""
        m.weight.requires_grad_(not for_input)
        with autocast:
            out = m(x_req if for_input else x)
        m.weight.requires_grad_(True)
        return out, torch.randn_like(out)

    (out_x, grad_x), (out_w, grad_w) = graph(True), graph(False)
    if isinstance(m, nn.ConvTranspose2d):  # (B*H*W, C_in) x (C_in, C_out*k*k)
        pixels, dims = shape[0] * shape[2] * shape[3], (c_in, c_out * k)
    else:  # (B*Ho*Wo, C_in*k*k) x (C_in*k*k, C_out)
        pixels, dims = out_x.shape[0] * out_x.shape[2] * out_x.shape[3], (c_in * k, c_out)
    # per step: G's layers once, D's on the real batch, the fake one and in G's step (which
    # takes no weight gradient); the first layer's input gradient only where its input is G's
    in_d, first = name.startswith("D"), name.endswith("0")
    runs = {
        "forward": (lambda: m(x), 3 if in_d else 1, (pixels, *dims)),
        "input grad": (
            lambda: torch.autograd.grad(out_x, x_req, grad_x, retain_graph=True),
            (0 if not in_d else 1) if first else (3 if in_d else 1),
            (pixels, dims[1], dims[0]),
        ),
        "weight grad": (
            lambda: torch.autograd.grad(out_w, m.weight, grad_w, retain_graph=True),
            2 if in_d else 1,
            (dims[0], pixels, dims[1]),
        ),
    }
    passes = []
    label = f"{name} {type(m).__name__}({c_in}, {c_out}) {shape[-1]}px"
    for kind, (fn, per_step, gemm) in runs.items():
        if per_step:
            with autocast:
                fn()
                flops, seconds = flops_per_step(fn), best_time(fn, reps)
            passes.append(Pass(label, kind, per_step, seconds, flops, gemm))
    return passes


def gemm_time(m: int, k: int, n: int, dtype: torch.dtype, reps: int) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    return best_time(lambda: a @ b, reps)


def report_layers(passes: list[Pass], dtype: torch.dtype, reps: int) -> tuple[float, float]:
    """The per-pass table; returns a step's conv seconds as timed alone, and at the speed of
    plain GEMMs of the same shapes."""
    print(
        "\npumpgan's conv layers, each pass timed alone (best of a few), against a plain GEMM "
        "of the same shape and FLOPs (what im2col / col2im lowering would multiply):"
    )
    print("| layer | pass | per step | ms | GFLOP/s | GEMM (m, k, n) | GEMM GFLOP/s |")
    print("|---|---|---:|---:|---:|---|---:|")
    total = total_gemm = 0.0
    for p in passes:
        g = gemm_time(*p.gemm, dtype, reps)
        total += p.per_step * p.seconds
        total_gemm += p.per_step * min(g, p.seconds)
        print(
            f"| {p.layer} | {p.kind} | {p.per_step} | {p.seconds * 1e3:.1f} | "
            f"{p.flops / p.seconds / 1e9:.0f} | {p.gemm} | {p.flops / g / 1e9:.0f} |"
        )
    print(
        f"| all, per step | | | {total * 1e3:.0f} | | at the GEMMs' speed where faster | "
        f"{total_gemm * 1e3:.0f} ms |"
    )
    return total, total_gemm


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
    parser.add_argument("--quick", action="store_true", help="a smoke run (what a test runs)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 untimed)")
    parser.add_argument("--top", type=int, default=12, help="slowest ops to list")
    parser.add_argument(
        "--pumpgan-overrides",
        nargs="*",
        default=["hardware.precision=auto"],
        help="on top of hardware=cpu; default: the precision a run picks on this machine",
    )
    args = parser.parse_args()

    # bf16 only where the CPU computes it natively: emulated, a 2048^3 GEMM takes many seconds
    native_bf16 = hardware.cpu_has_bf16()
    peak = {"fp32": gemm_peak(torch.float32)}
    peak["bf16"] = gemm_peak(torch.bfloat16) if native_bf16 else float("nan")
    bandwidth = copy_bandwidth()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        images, steps, warmup = (256, 4, 1) if args.quick else (1000, 12, 3)
        write_pngs(images, data / "images" / "jacks")
        seed_ips = measure_baseline(args.width, data / "images", steps, warmup, data)
        cfg = pumpgan_cfg(args.width, 10, 2, 512, data / "cache", args.pumpgan_overrides)
    pump = pumpgan_step(cfg)
    bf16 = hardware.setup(cfg.hardware, cfg.model, BATCH).bf16
    pump_peak = peak["bf16" if bf16 else "fp32"]

    seed = baseline_step(args.width)
    seed_s, seed_cat, _ = profile_step(seed, args.steps)
    pump_s, pump_cat, events = profile_step(pump, args.steps)
    seed_flops, pump_flops = flops_per_step(seed), flops_per_step(pump)

    bf16_peak = f"{peak['bf16']:.0f} GFLOP/s" if native_bf16 else "not native (not measured)"
    print(machine())
    print(
        f"width {args.width} (model=seed), batch {BATCH}, {IMAGE_SIZE} px; pumpgan: "
        f"{' '.join(args.pumpgan_overrides)}; {args.steps} profiled steps each\n"
        f"machine: GEMM 2048^3 fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {bf16_peak}; "
        f"copy {bandwidth:.1f} GB/s (read + write)\n"
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

    dtype = torch.bfloat16 if bf16 else torch.float32
    reps = 1 if args.quick else 3
    alone, at_gemm = report_layers(layer_passes(cfg, reps), dtype, reps)

    measured = sum(pump_cat.values())  # self times add up to about the step's wall time
    flop_s = pump_cat.get(FLOP_OPS, 0.0)
    at_peak = pump_flops / (pump_peak * 1e9)
    bounds = {
        "as measured": pump_s,
        "(c) each conv pass at its own GEMM shape's speed, the rest as measured": measured
        - flop_s * (1 - at_gemm / alone),
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
