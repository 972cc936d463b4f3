"""The start and the end of a run's record: summary.json as a run starts (`start_summary`), the
grids and the SWD (`Evaluation`), and the wrap-up when it ends (`finish`: final grid, SWD,
the diversity rule, generator.pt, curves.png, the last summary)."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from gan.config import flatten
from gan.nets.generator_file import save_generator
from gan.nets.models import Discriminator, Generator, num_params
from gan.nets.sampling import generate, sample
from gan.run.best import Best
from gan.run.folder import RunFolder, hparams, now_iso, plot_curves, read_metrics
from gan.run.hardware import Hardware
from gan.run.quality import SWD, sample_quality, swd
from gan.run.score import ScoreTracker

log = logging.getLogger("gan.run.train")


def record_error(folder: RunFolder, e: BaseException) -> None:
    """The error that ended a run, in its summary (best effort: the disk may be full)."""
    try:
        folder.update_summary(error=f"{type(e).__name__}: {e}")
    except OSError as again:
        log.warning("Could not record the error in %s: %s", folder.summary_path, again)


def start_summary(
    cfg: DictConfig,
    run_dir: Path,
    hw: Hardware,
    gen: Generator,
    disc: Discriminator,
    num_images: int,
    start_step: int,
    wall_before: float,
) -> dict[str, Any]:
    """summary.json as a run starts (docs/design.md, "A run folder"): kept current."""
    return {
        "status": "running",
        "score": None,
        "collapsed_at": None,
        "reason": None,
        "steps": cfg.train.steps,
        "steps_done": start_step,
        "wall_s": wall_before,
        "images_per_s": None,
        "quality": None,
        "started_at": now_iso(),
        "run_dir": str(run_dir),
        "resumed_from": str(cfg.resume) if cfg.resume else None,
        **hw.summary(),
        "params": {"gen": num_params(gen), "disc": num_params(disc)},
        "data": {"name": cfg.data.name, "num_images": num_images},
        "versions": versions(),
    }


def save_grid_of(
    folder: RunFolder,
    gen: torch.nn.Module,
    fixed_noise: torch.Tensor,
    reference: torch.Tensor,
    step: int,
    name: str | None = None,
) -> dict[str, float]:
    """G's grid of the fixed noise into the run folder (with its diversity in TensorBoard);
    returns its `sample_quality` against the `reference` real images."""
    grid = sample(gen, fixed_noise)
    quality = sample_quality(grid, reference)
    folder.save_samples(grid, step, name, diversity=quality["diversity"])
    return quality


@dataclass
class RunEnd:
    """How a run's training ended, for `finish`: its status so far, the last step, the time and
    throughput over the whole run, its score tracker, the G whose images it shows (the EMA's,
    with train.ema), the fixed noise and the real images the grids' diversity is relative to,
    the latest evaluation during training (step, SWD), reused when it was at this step, and the
    best G of those evaluations (checkpoints/best.pt)."""

    status: str
    step: int
    wall_s: float
    images_per_s: float
    tracker: ScoreTracker
    gen: torch.nn.Module
    fixed_noise: torch.Tensor
    reference: torch.Tensor
    evaluated: tuple[int, SWD] | None = None
    best: Best | None = None


def finish(folder: RunFolder, cfg: DictConfig, end: RunEnd, evaluation: Evaluation) -> None:
    """Final grid, SWD (of a run that completed, collapsed or was pruned), the diversity rule,
    generator.pt, curves.png and the last summary; each part is tried on its own so a failure in
    one (or a second Ctrl-C) loses nothing else written."""
    quality = final_quality(folder, cfg, end, evaluation)
    status, tracker = end.status, end.tracker
    if quality is not None and status in ("completed", "collapsed"):
        # training is over: the last sample point, then the diversity rule (gan/run/score.py)
        tracker.sample(end.step, quality["diversity"])
        if tracker.end_of_training():
            status = "collapsed"
            log.warning("Collapse at step %d: %s", tracker.collapsed_at, tracker.reason)
    score = tracker.score(cfg.train.steps)
    save_outputs(folder, cfg, end, status, score)
    best = best_summary(end, evaluation, quality)
    folder.update_summary(
        status=status,
        score=score,
        collapsed_at=tracker.collapsed_at,
        reason=tracker.reason,
        pruned_at=end.step if status == "pruned" else None,
        steps_done=end.step,
        wall_s=round(end.wall_s, 3),
        images_per_s=round(end.images_per_s, 2),
        quality=quality,
        best=best,
        finished_at=now_iso(),
    )
    q = quality or {}
    numbers = {"score": score, "swd": q.get("swd"), "diversity": q.get("diversity")}
    metrics = {k: float(v) for k, v in numbers.items() if v is not None}
    metrics.update(steps_done=float(end.step), images_per_s=float(end.images_per_s))
    try:
        params = hparams(flat_config(cfg), folder.path)
    except Exception as e:  # noqa: BLE001 - the loggers' extra view must not fail a run
        log.warning("Could not read the run's settings for its loggers: %s", e)
        params = {}
    folder.end(params, metrics, status)
    log.info(
        "%s after %d/%d steps: score %.4f%s%s (%.1f s, %.0f img/s)",
        *(status, end.step, cfg.train.steps, score),
        f", {tracker.reason} at {tracker.collapsed_at}" if tracker.collapsed_at is not None else "",
        f", SWD {quality['swd']:.2f}" if quality and "swd" in quality else "",
        *(end.wall_s, end.images_per_s),
    )


def final_quality(
    folder: RunFolder, cfg: DictConfig, end: RunEnd, evaluation: Evaluation
) -> dict[str, Any] | None:
    """The final grid's sample quality, and the SWD of a run that ended (completed, collapsed
    or pruned); None when the final grid could not be made."""
    try:
        grid = save_grid_of(folder, end.gen, end.fixed_noise, end.reference, end.step, "final.png")
        quality: dict[str, Any] = dict(grid)
    except Exception as e:  # noqa: BLE001 - the run's status matters more than its last grid
        log.warning("Could not write the final sample grid: %s", e)
        return None
    if end.status in ("completed", "collapsed", "pruned") and cfg.eval.num_images:
        try:
            evaluated = end.evaluated
            reuse = (
                evaluated is not None
                and evaluated[0] == end.step
                and evaluated[1]["swd_images"] == evaluation.num
            )
            quality.update(evaluated[1] if evaluated is not None and reuse else evaluation(end.gen))
            folder.log_quality(end.step, quality)
        except Exception as e:  # noqa: BLE001
            log.warning("Could not compute the final SWD: %s", e)
    return quality


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as dotted keys, without Hydra's node."""
    task = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    return flatten(cast(dict[str, Any], OmegaConf.to_container(task, resolve=True)))


def best_summary(
    end: RunEnd, evaluation: Evaluation, quality: dict[str, Any] | None
) -> dict[str, Any] | None:
    """summary.json's `best` (gan/run/best.py), None without evaluations during training."""
    if end.best is None or end.status == "failed":
        return None
    try:
        last = quality if quality is not None and "swd" in quality else None
        return end.best.summary(evaluation, end.gen, end.step, cast(SWD | None, last))
    except Exception as e:  # noqa: BLE001 - the run's status matters more
        log.warning("Could not measure the best G's SWD: %s", e)
        return None


def save_outputs(
    folder: RunFolder, cfg: DictConfig, end: RunEnd, status: str, score: float
) -> None:
    """checkpoints/generator.pt (G alone, for gan.sample and programs without pumpgan's training
    code) of a run that did not fail, and curves.png."""
    if status != "failed":
        try:
            path = folder.checkpoint_path.parent / "generator.pt"
            save_generator(path, cfg.model, end.gen, end.step, ema=bool(cfg.train.ema))
        except Exception as e:  # noqa: BLE001
            log.warning("Could not write checkpoints/generator.pt: %s", e)
    try:
        name = f"{folder.path.parent.name}/{folder.path.name}"
        plot_curves(
            folder.path / "curves.png",
            read_metrics(folder.metrics_path),
            cfg.score.eps,
            end.tracker.collapsed_at,
            title=f"{name}: {status}, score {score:.4f}",
            loss=cfg.optim.loss,
        )
    except Exception as e:  # noqa: BLE001
        log.warning("Could not plot curves.png: %s", e)


class Evaluation:
    """The sliced Wasserstein distance (gan/run/quality.py) between `eval.num_images` of G's images
    and as many of the data's: the same real images and the same noise at every evaluation of a
    run, drawn from a generator of their own (the training random stream is left alone)."""

    def __init__(self, images: torch.Tensor, cfg: DictConfig, num: int = 0) -> None:
        """num: fewer images than eval.num_images (0: as many), the first of the same draw."""
        full = min(cfg.eval.num_images, len(images))
        self.num = min(num or full, full)
        rng = torch.Generator().manual_seed(cfg.seed + 2)
        self.real = images.cpu()[torch.randperm(len(images), generator=rng)[: self.num]]
        self.noise = torch.randn(full, cfg.model.dim_z, 1, 1, generator=rng)[: self.num]
        self.batch_size, self.seed = cfg.train.batch_size, cfg.seed
        self.moments = bool(cfg.eval.swd_moments)

    def __call__(self, gen: torch.nn.Module) -> SWD:
        # in batches of the training size: G's BatchNorm normalises by batch statistics
        # (batches of nearly equal sizes: one of a single image would fail in BatchNorm)
        fake = generate(gen, self.noise, self.batch_size)
        return swd(fake, self.real, seed=self.seed, moments=self.moments)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    packages = ("torch", "numpy", "hydra-core", "optuna")
    return {"python": platform.python_version(), **{p: version(p) for p in packages}}
