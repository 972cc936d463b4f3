"""A finished study's SWD computed again both ways, from each run's checkpoints/generator.pt and
the data, without training: normalised by the real set's statistics (pumpgan's SWD) and by each
set's own (the paper's, and pumpgan's before eval.swd_norm). gan/run/quality.py says why.

    uv run python benchmarks/swd_recompute.py outputs/sweeps/stability --csv swd_both.csv

Each run's evaluation is rebuilt as the run made it (gan.run.finish.Evaluation: its seed, its
eval.num_images real images and noise), so the recomputed value of the run's own normalisation
equals its summary.json quality.swd (the largest difference is printed). Then, over the finished
runs: Spearman's rank correlation of each SWD with the score, the best run by each among the
runs at the best score, and how the ranks of those runs move between the two.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import Any, cast

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
from gan.run.quality import NORMALISATIONS, swd  # noqa: E402


def recompute(run: Run, images: dict[str, torch.Tensor]) -> dict[str, float]:
    """The run's final SWD under each normalisation: {"real": ..., "own": ...}."""
    saved = saved_as_now(cast(DictConfig, OmegaConf.load(run.path / ".hydra" / "config.yaml")))
    cfg = cast(DictConfig, OmegaConf.merge(OmegaConf.structured(Config), saved))
    key = f"{OmegaConf.to_yaml(cfg.data)}{cfg.model.image_size}"
    if key not in images:  # the runs of a study share their data
        images[key] = load_images(cfg.data, cfg.model.image_size)
    evaluation = Evaluation(images[key], cfg)
    fake = generate(load_generator(run.path / "checkpoints" / "generator.pt"), evaluation.noise,
                    evaluation.batch_size)  # fmt: skip
    return {
        norm: swd(fake, evaluation.real, seed=evaluation.seed, normalise=norm)["swd"]
        for norm in NORMALISATIONS
    }


def rank_moves(at_best: list[Run], values: dict[str, dict[str, float]]) -> list[str]:
    """Each run at the best score with its rank by the old SWD and by the new."""
    order = {n: ranks([values[r.name][n] for r in at_best]) for n in NORMALISATIONS}
    rows = sorted(zip(at_best, order["real"], order["own"], strict=True), key=lambda x: x[1])
    return [f"  {r.name}: rank {new:.0f} (was {old:.0f})" for r, new, old in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--csv", type=Path, help="write run, status, score, both SWDs here")
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
    values: dict[str, dict[str, float]] = {}
    worst_gap = 0.0
    for r in sorted(runs, key=lambda r: r.name):
        values[r.name] = recompute(r, images)
        if r.swd is not None and r.swd_norm in values[r.name]:
            worst_gap = max(worst_gap, abs(values[r.name][r.swd_norm] - r.swd) / r.swd)
        print(f"{r.name}: score {r.score:.4f} SWD real {values[r.name]['real']:.2f} "
              f"own {values[r.name]['own']:.2f}", flush=True)  # fmt: skip
    print(f"{len(runs)} finished runs; recomputed vs recorded SWD: {worst_gap:.2%} at most")

    scores = [cast(float, r.score) for r in runs]
    for norm in NORMALISATIONS:
        rho = spearman(scores, [values[r.name][norm] for r in runs])
        print(f"Spearman, score vs SWD ({norm}): {rho:+.3f}")
    best_score = max(scores)
    at_best = [r for r in runs if r.score == best_score]
    summary: dict[str, Any] = {}
    for norm in NORMALISATIONS:
        swds = [values[r.name][norm] for r in at_best]
        best = min(at_best, key=lambda r: values[r.name][norm])
        summary[norm] = best
        print(f"{len(at_best)} runs at score {best_score:.4f}, SWD ({norm}): min {min(swds):.2f} "
              f"median {statistics.median(swds):.2f} max {max(swds):.2f}; best {best.name}")  # fmt: skip
    if len(at_best) > 2:
        rho = spearman(*([values[r.name][n] for r in at_best] for n in NORMALISATIONS))
        print(f"Spearman between the two SWDs over the runs at {best_score:.4f}: {rho:+.3f}")
        print("\n".join(rank_moves(at_best, values)))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["run", "status", "score", "swd_real", "swd_own", "recorded"])
            for r in runs:
                v = values[r.name]
                writer.writerow([r.name, r.status, r.score, v["real"], v["own"], r.swd])
    return 0


if __name__ == "__main__":
    sys.exit(main())
