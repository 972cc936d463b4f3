"""Does glibc's malloc keeping freed memory (gan.run.hardware.keep_freed_memory) still pay?

The setting is process-wide, so ab_step.py cannot alternate it within one process. Here each
timed run is a fresh process that builds throughput.py's `pumpgan_step` (model=seed at
`--width`, batch 128, 64 px, the precision a run picks on this machine) and reports the median
of `--steps` steps after two untimed ones; runs with the setting (pumpgan's default) and without
it (GLIBC_TUNABLES set, which makes pumpgan leave the allocator alone) alternate, `--pairs`
of each, and the medians of their medians are compared.

    uv run python benchmarks/allocator.py --width 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gan.run.hardware import keep_freed_memory

from throughput import BATCH, machine, pumpgan_cfg, pumpgan_step


def child(width: int, steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        step = pumpgan_step(pumpgan_cfg(width, 1, 1, 64, Path(tmp), ["hardware.precision=auto"]))
    times = []
    for i in range(2 + steps):
        start = time.perf_counter()
        step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    print(json.dumps({"kept": keep_freed_memory(), "median": statistics.median(times)}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per process")
    parser.add_argument("--pairs", type=int, default=3, help="processes of each setting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.width, args.steps)
    medians: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.pairs):
        for tuned in (False, True) if i % 2 == 0 else (True, False):
            env = {
                **os.environ,
                **({"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"} if tuned else {}),
            }
            command = [sys.executable, __file__, "--child", "--width", str(args.width)]
            out = subprocess.run(
                [*command, "--steps", str(args.steps)], env=env, capture_output=True, text=True
            )
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            run = json.loads(out.stdout.splitlines()[-1])
            medians[run["kept"]].append(run["median"])
    kept, default = (statistics.median(medians[k]) for k in (True, False))
    print(machine())
    print(f"width {args.width} (model=seed), batch {BATCH}; {args.pairs} processes each\n")
    print("| malloc | median ms / step | per process |")
    print("|---|---:|---|")
    for name, key in (("glibc default", False), ("keep freed memory", True)):
        each = ", ".join(f"{t * 1e3:.0f}" for t in medians[key])
        print(f"| {name} | {statistics.median(medians[key]) * 1e3:.1f} | {each} |")
    print(f"\nkeep / default speed: {default / kept:.3f}x")


if __name__ == "__main__":
    main()
