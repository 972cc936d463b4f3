"""A finished study's SWD computed again both ways, from each run's checkpoints/generator.pt and
the data, without training: pumpgan's (with the moment gap term) and the paper's (without: also
pumpgan's before eval.swd_moments). gan/run/quality.py says what the term is and why.

    uv run python benchmarks/swd_recompute.py outputs/sweeps/stability --csv swd_both.csv

Each run's evaluation is rebuilt as the run made it (gan.run.finish.Evaluation: its seed, its
eval.num_images real images and noise), so the recomputed value of the run's own kind
equals its summary.json quality.swd (the largest difference is printed). Then, over the finished
runs: Spearman's rank correlation of each SWD with the score, the best run by each among the
runs at the best score, and how the ranks of those runs move between the two.

With --images N [N ...], also pumpgan's SWD on the first N of each run's evaluation images
(eval.num_images_during=N) and Spearman's correlation of its ranking with the full one's, over
all finished runs and over those at the best score: is a cheaper evaluation enough for a pruner,
which compares runs by their order?
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import cast

import torch
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.score_vs_swd import ranks, spearman  # noqa: E402
from gan.config import Config, saved_as_now  # noqa: E402
from gan.data import load_images  # noqa: E402
from gan.nets.generator_file import load_generator  # noqa: E402
from gan.nets.sampling import generate  # noqa: E402
from gan.report.runs import Run, find_runs  # noqa: E402
from gan.run.finish import Evaluation  # noqa: E402
from gan.run.quality import swd  # noqa: E402

KINDS = {"moments": True, "paper": False}  # column -> swd(moments=...)


def recompute(
    run: Run, images: dict[str, torch.Tensor], fewer: list[int]
) -> dict[str | int, float]:
    """The run's final SWD of each kind, {"moments": ..., "paper": ...}, and pumpgan's on the
    first N of its evaluation images for each N in `fewer`, {N: ...}."""
    saved = saved_as_now(cast(DictConfig, OmegaConf.load(run.path / ".hydra" / "config.yaml")))
    cfg = cast(DictConfig, OmegaConf.merge(OmegaConf.structured(Config), saved))
    key = f"{OmegaConf.to_yaml(cfg.data)}{cfg.model.image_size}"
    if key not in images:  # the runs of a study share their data
        images[key] = load_images(cfg.data, cfg.model.image_size)
    evaluation = Evaluation(images[key], cfg)
    fake = generate(load_generator(run.path / "checkpoints" / "generator.pt"), evaluation.noise,
                    evaluation.batch_size)  # fmt: skip
    values: dict[str | int, float] = {
        kind: swd(fake, evaluation.real, seed=evaluation.seed, moments=moments)["swd"]
        for kind, moments in KINDS.items()
    }
    for n in fewer:  # the first n of the same draw (Evaluation(images, cfg, n))
        values[n] = swd(fake[:n], evaluation.real[:n], seed=evaluation.seed)["swd"]
    return values


def rank_moves(at_best: list[Run], values: dict[str, dict[str | int, float]]) -> list[str]:
    """Each run at the best score with its rank by the old SWD and by the new."""
    order = {k: ranks([values[r.name][k] for r in at_best]) for k in KINDS}
    rows = sorted(zip(at_best, order["moments"], order["paper"], strict=True), key=lambda x: x[1])
    return [f"  {r.name}: rank {new:.0f} (was {old:.0f})" for r, new, old in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--csv", type=Path, help="write run, status, score, both SWDs here")
    parser.add_argument("--images", type=int, nargs="*", default=[],
                        help="also the SWD on this many of the evaluation images")  # fmt: skip
    args = parser.parse_args(argv)

    runs = [
        r for r in find_runs([args.sweep_dir])
        if r.finished and r.score is not None
        and (r.path / "checkpoints" / "generator.pt").is_file()
    ]  # fmt: skip
    if not runs:
        print(f"{args.sweep_dir}: no finished run with a checkpoints/generator.pt", file=sys.stderr)
        return 1
    images: dict[str, torch.Tensor] = {}
    values: dict[str, dict[str | int, float]] = {}
    worst_gap = 0.0
    for r in sorted(runs, key=lambda r: r.name):
        values[r.name] = recompute(r, images, args.images)
        if r.swd is not None:
            kind = "moments" if r.swd_moments else "paper"
            worst_gap = max(worst_gap, abs(values[r.name][kind] - r.swd) / r.swd)
        print(f"{r.name}: score {r.score:.4f} SWD {values[r.name]['moments']:.2f}, "
              f"the paper's {values[r.name]['paper']:.2f}", flush=True)  # fmt: skip
    print(f"{len(runs)} finished runs; recomputed vs recorded SWD: {worst_gap:.2%} at most")

    scores = [cast(float, r.score) for r in runs]
    for kind in KINDS:
        rho = spearman(scores, [values[r.name][kind] for r in runs])
        print(f"Spearman, score vs SWD ({kind}): {rho:+.3f}")
    best_score = max(scores)
    at_best = [r for r in runs if r.score == best_score]
    for kind in KINDS:
        swds = [values[r.name][kind] for r in at_best]
        best = min(at_best, key=lambda r: values[r.name][kind])
        spread = f"min {min(swds):.2f} median {statistics.median(swds):.2f} max {max(swds):.2f}"
        print(f"{len(at_best)} runs at score {best_score:.4f}, SWD ({kind}): {spread}; "
              f"best {best.name}")  # fmt: skip
    if len(at_best) > 2:
        rho = spearman(*([values[r.name][k] for r in at_best] for k in KINDS))
        print(f"Spearman between the two SWDs over the runs at {best_score:.4f}: {rho:+.3f}")
        print("\n".join(rank_moves(at_best, values)))
    for n in args.images:
        groups = (("all finished runs", runs), (f"the runs at {best_score:.4f}", at_best))
        for label, group in groups:
            rho = spearman(*([values[r.name][k] for r in group] for k in (n, "moments")))
            print(f"Spearman, SWD on {n} images vs on all, {label} ({len(group)}): {rho:+.3f}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            fewer = [f"swd_{n}" for n in args.images]
            writer.writerow(["run", "status", "score", "swd", "swd_paper", *fewer, "recorded"])
            for r in runs:
                v = values[r.name]
                cells = [v["moments"], v["paper"], *(v[n] for n in args.images)]
                writer.writerow([r.name, r.status, r.score, *cells, r.swd])
    return 0


if __name__ == "__main__":
    sys.exit(main())
