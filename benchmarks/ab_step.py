"""Two settings of pumpgan's training step, side by side in one process: which is faster?

This project's VMs run a whole process at one of two speeds (~10% apart at width 16), so two
settings timed in separate processes can differ by more than the change being measured. Here
both run in one process, their steps alternating, so they share its speed; the medians of the
step times after `--warmup` rounds are compared.

    uv run python benchmarks/ab_step.py --width 16 --b hardware.compile=true
    uv run python benchmarks/ab_step.py --width 32 --a hardware.precision=fp32 \\
        --b hardware.precision=bf16 hardware.channels_last=true

Each setting is `model=seed` at `--width`, batch 128, 64 px, hardware=cpu, bf16 channels-last,
plus its overrides; the step is throughput.py's `pumpgan_step` (what train() runs each step).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

# the benchmark's step, shared; importing it also puts the checkout (`gan`) on sys.path
from throughput import BATCH, machine, pumpgan_cfg, pumpgan_step

DEFAULT = ["hardware.precision=bf16", "hardware.channels_last=true"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--a", nargs="*", default=[], help="overrides of setting A")
    parser.add_argument("--b", nargs="*", default=[], help="overrides of setting B")
    parser.add_argument("--rounds", type=int, default=12, help="timed steps of each")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps of each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        steps = {
            name: pumpgan_step(pumpgan_cfg(args.width, 1, 1, 64, Path(tmp), [*DEFAULT, *over]))
            for name, over in (("A", args.a), ("B", args.b))
        }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.warmup + args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(machine())
    print(f"width {args.width} (model=seed), batch {BATCH}; steps alternate in one process\n")
    print("| setting | overrides | median ms / step | img/s |")
    print("|---|---|---:|---:|")
    for name, over in (("A", args.a), ("B", args.b)):
        ms = median[name] * 1e3
        print(f"| {name} | {' '.join(over) or '(none)'} | {ms:.1f} | {BATCH / median[name]:.1f} |")
    print(f"\nB / A speed: {median['A'] / median['B']:.3f}x")


if __name__ == "__main__":
    main()
