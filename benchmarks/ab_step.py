"""Two settings of pumpgan's training step, side by side in one process: which is faster?

This project's VMs run a whole process at one of two speeds (~10% apart at width 16), so two
settings timed in separate processes can differ by more than the change being measured. Here
both run in one process, their steps alternating, so they share its speed; the medians of the
step times after `--warmup` rounds are compared.

    uv run python benchmarks/ab_step.py --width 16 --b hardware.compile=true
    uv run python benchmarks/ab_step.py --width 32 --a hardware.fast_layers=false
    uv run python benchmarks/ab_step.py --width 32 --a-fast --b-fast gemm_grad   # one swap

Each setting is `model=seed` at `--width`, batch 128, 64 px, hardware=cpu with the precision
that hardware.precision=auto picks on this machine, plus its overrides; `--a-fast` / `--b-fast`
name gan/fast.py's swaps to apply (none when given empty) instead of those the config picks.
The step is throughput.py's `pumpgan_step` (what train() runs each step).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

# the benchmark's step, shared; importing it also puts the checkout (`gan`) on sys.path
from throughput import BATCH, machine, pumpgan_cfg, pumpgan_step

DEFAULT = ["hardware.precision=auto"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--a", nargs="*", default=[], help="overrides of setting A")
    parser.add_argument("--b", nargs="*", default=[], help="overrides of setting B")
    for name in ("a", "b"):
        parser.add_argument(
            f"--{name}-fast", nargs="*", help=f"gan/fast.py swaps of setting {name.upper()}"
        )
    parser.add_argument("--rounds", type=int, default=12, help="timed steps of each")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps of each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = (("A", args.a, args.a_fast), ("B", args.b, args.b_fast))
        steps = {
            name: pumpgan_step(
                pumpgan_cfg(args.width, 1, 1, 64, Path(tmp), [*DEFAULT, *over]), fast
            )
            for name, over, fast in settings
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
    for name, over, fast in settings:
        said = [*over, *([f"fast layers: {' '.join(fast) or 'none'}"] if fast is not None else [])]
        ms = median[name] * 1e3
        print(f"| {name} | {', '.join(said) or '(none)'} | {ms:.1f} | {BATCH / median[name]:.1f} |")
    print(f"\nB / A speed: {median['A'] / median['B']:.3f}x")


if __name__ == "__main__":
    main()
