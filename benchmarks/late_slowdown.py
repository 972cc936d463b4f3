"""Does a long run slow down as it trains? Images/s late in a run against early in it, with and
without flushing denormal floats to zero (hardware.flush_denormal), in each precision.

For each precision and flush setting it runs `python run.py` (the default run unless overrides
say otherwise) in a fresh process, one after the other, and reads the run's metrics.csv: images/s
over steps 200-600 (early, after oneDNN's warm-up) and over the last 400 steps (late), and their
ratio (late / early: 1.0 = no slowdown). A folder of an earlier call is read, not run again.

    uv run python benchmarks/late_slowdown.py                       # bf16 and fp32, flush on/off
    uv run python benchmarks/late_slowdown.py --precisions bf16 --flush on -- train.steps=2000

Each run takes minutes (the default run: 4,000 steps); run it alone on the machine. Separate
runs share a noisy machine's speed only by luck, so `--ab RUN` measures the flush in one
process instead: it loads RUN's checkpoints/last.pt (late in its training), then trains on from
it in alternating blocks of `--block` steps with denormals kept and flushed, and prints the
median images/s of each.

    uv run python benchmarks/late_slowdown.py --ab outputs/bench/late_slowdown/bf16-flush_off
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


def ab(run_dir: Path, block: int, rounds: int) -> None:
    """Training on from `run_dir`'s last checkpoint in blocks alternating flush off and on."""
    import statistics
    import time

    import torch

    from gan.config import Config, saved_as_now
    from gan.data import load_images, real_batch
    from gan.nets.step import Objective, build_models, train_step
    from gan.run import hardware
    from gan.run.checkpoint import read_checkpoint

    saved = saved_as_now(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))  # type: ignore[arg-type]
    cfg = OmegaConf.merge(OmegaConf.structured(Config), saved)
    hw = hardware.setup(cfg.hardware, cfg.model, cfg.train.batch_size)
    gen, disc, opt_g, opt_d = build_models(cfg.model, cfg.optim, hw.place)
    state = read_checkpoint(run_dir / "checkpoints" / "last.pt", "checkpoint")
    for module, key in ((gen, "gen"), (disc, "disc"), (opt_g, "opt_g"), (opt_d, "opt_d")):
        module.load_state_dict(state[key])
    images = load_images(cfg.data, cfg.model.image_size)
    objective, batch = Objective.of(cfg.optim, cfg.augment), cfg.train.batch_size
    rates: dict[bool, list[float]] = {False: [], True: []}
    for i in range(rounds + 1):  # the first round warms oneDNN up and is not counted
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            start = time.perf_counter()
            for _ in range(block):
                real = real_batch(images[torch.randint(0, len(images), (batch,))], cfg.augment,
                                  hw.memory_format)  # fmt: skip
                with hw.autocast():
                    train_step(gen, disc, opt_g, opt_d, [real], [torch.randn(batch, cfg.model.dim_z,
                               1, 1)], objective).sum().item()  # fmt: skip
            if i:
                rates[flush].append(block * batch / (time.perf_counter() - start))
    torch.set_flush_denormal(False)
    kept, flushed = (statistics.median(rates[f]) for f in (False, True))
    print(f"\n{run_dir}: from step {state['step']:,}, {rounds} rounds of {block} steps each, "
          f"{'bf16' if hw.bf16 else 'fp32'}\n| denormals | median img/s |\n|---|---:|\n"
          f"| kept | {kept:,.0f} |\n| flushed | {flushed:,.0f} |\nflushed / kept: "
          f"{flushed / kept:.2f}x")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", nargs="+", choices=sorted(PRECISION),
                        default=["bf16", "fp32"])  # fmt: skip
    parser.add_argument("--flush", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "late_slowdown")
    parser.add_argument("--ab", type=Path, help="in-process A/B from this run's last.pt")
    parser.add_argument("--block", type=int, default=25, help="steps per --ab block")
    parser.add_argument("--rounds", type=int, default=4, help="timed --ab rounds")
    parser.add_argument("overrides", nargs="*", help="more KEY=VALUE for every run")
    args = parser.parse_args()

    print(machine())
    if args.ab:
        ab(args.ab, args.block, args.rounds)
        return 0
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
