"""Does a long run slow down as it trains? Images/s late in a run against early in it, with and
without flushing denormal floats to zero (hardware.flush_denormal), in each precision.

For each precision and flush setting it runs `python run.py` (the default run unless overrides
say otherwise) in a fresh process, one after the other, and reads the run's metrics.csv: images/s
over steps 200-600 (early, after oneDNN's warm-up) and over the last 400 steps (late), and their
ratio (late / early: 1.0 = no slowdown). A folder of an earlier call is read, not run again.

    uv run python benchmarks/late_slowdown.py                       # bf16 and fp32, flush on/off
    uv run python benchmarks/late_slowdown.py --precisions bf16 --flush on -- train.steps=2000

Each run takes minutes (the default run: 4,000 steps); run it alone on the machine.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from throughput import machine  # also puts the checkout on sys.path

ROOT = Path(__file__).resolve().parents[1]
PRECISION = {"bf16": ["hardware.precision=bf16", "hardware.channels_last=true"],
             "fp32": ["hardware.precision=fp32", "hardware.channels_last=false"]}  # fmt: skip


def rate(rows: list[dict[str, str]], first: int, last: int, batch: int) -> float:
    """Images/s over steps (first, last]."""
    by_step = {int(r["step"]): float(r["time_s"]) for r in rows}
    return (last - first) * batch / (by_step[last] - by_step[first])


def run(folder: Path, overrides: list[str]) -> tuple[float, float, int]:
    """(early images/s, late images/s, steps) of the run in `folder`, trained first if absent."""
    if not (folder / "summary.json").is_file():
        command = [sys.executable, "run.py", *overrides, f"hydra.run.dir={folder}"]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    batch = int(OmegaConf.load(folder / ".hydra" / "config.yaml").train.batch_size)
    steps = int(rows[-1]["step"])
    return rate(rows, 200, 600, batch), rate(rows, steps - 400, steps, batch), steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", nargs="+", choices=sorted(PRECISION),
                        default=["bf16", "fp32"])  # fmt: skip
    parser.add_argument("--flush", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "late_slowdown")
    parser.add_argument("overrides", nargs="*", help="more KEY=VALUE for every run")
    args = parser.parse_args()

    print(machine())
    print("\n| precision | flush denormals | steps | img/s, steps 200-600 | img/s, last 400 | "
          "late / early |\n|---|---|---:|---:|---:|---:|")  # fmt: skip
    for precision in args.precisions:
        for flush in args.flush:
            folder = args.out / f"{precision}-flush_{flush}"
            flag = f"hardware.flush_denormal={'true' if flush == 'on' else 'false'}"
            early, late, steps = run(folder, [*PRECISION[precision], flag, *args.overrides])
            print(f"| {precision} | {flush} | {steps:,} | {early:,.0f} | {late:,.0f} | "
                  f"{late / early:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
