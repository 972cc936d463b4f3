"""One DCGAN training run, top to bottom: `train(cfg, run_dir)` returns the stability score.

The loop keeps the PumpGAN article's order: D on a real batch, D on a fake batch (detached), D
step; then G against real labels through the updated D. Per step it records loss_d, loss_g,
d_real = mean D(x), d_fake = mean D(G(z)) before D's update, and d_fake_after = mean D(G(z))
during the G step. Those five numbers stay on the device and are read back every
`train.log_every` steps (`StepLog`), so the hot loop never waits for the host.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from omegaconf import DictConfig

from gan.config import validate
from gan.data import BatchSampler, load_images, real_batch
from gan.nets.models import num_params
from gan.nets.schedule import Schedule
from gan.nets.step import EMA, Objective, build_models, train_step
from gan.run import hardware, interrupts
from gan.run.best import Best
from gan.run.checkpoint import carry_over, load_checkpoint, restore, training_state
from gan.run.finish import (
    Evaluation,
    RunEnd,
    finish,
    flat_config,
    record_error,
    save_grid_of,
    start_summary,
)
from gan.run.folder import RunFolder
from gan.run.loggers import open_loggers
from gan.run.quality import SWD
from gan.run.score import ScoreTracker
from gan.run.steplog import StepLog, throughput

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig,
    run_dir: Path,
    progress_bar: bool | None = None,
    extra_summary: dict[str, Any] | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
) -> float:
    """Train one GAN into `run_dir` and return its score in [0, 1].

    progress_bar: a tqdm bar (True) or plain log lines (False); default: a bar on a TTY.
    on_eval: called with (step, SWD) at every `eval.every`; True stops the run there with status
    `pruned` (gan.study.pruning.TrialReporter asks a study's pruner)."""
    validate(cfg)
    folder = RunFolder(run_dir)
    folder.check_new()
    t, m = cfg.train, cfg.model
    hw = hardware.setup(cfg.hardware, m, t.batch_size)
    resume_state = load_checkpoint(Path(cfg.resume)) if cfg.resume else None
    seed_everything(cfg.seed)

    # ---- data (uint8 (N, 3, S, S), on the device once), nets, score, the grids' fixed noise
    images = load_images(cfg.data, m.image_size).to(hw.device)
    if t.batch_size > len(images):
        log.warning(
            "train.batch_size=%d is larger than the data set (%d images), so every batch holds "
            "some images twice or more; set train.batch_size to at most %d, or train on more "
            "images",
            *(t.batch_size, len(images), len(images)),
        )
    if cfg.score.min_diversity and not 0 < t.sample_every < t.steps:
        log.warning(
            "train.sample_every=%d makes no sample grid between step 0 and the end of this "
            "%d-step run, so score.min_diversity judges it on two grids: the untrained G's at "
            "step 0 and the final one (a run whose final grid is not varied collapses at step "
            "0). Set train.sample_every below train.steps for a finer verdict",
            *(t.sample_every, t.steps),
        )
    sampler = BatchSampler(len(images), t.batch_size, seed=cfg.seed)
    gen, disc, opt_g, opt_d = build_models(cfg.model, cfg.optim, hw.place)
    tracker = ScoreTracker(cfg.score.eps, cfg.score.patience, min_diversity=cfg.score.min_diversity)
    # drawn from a generator of its own so that it does not shift the training random stream
    noise_rng = torch.Generator().manual_seed(cfg.seed + 1)
    fixed_noise = torch.randn(t.num_samples, m.dim_z, 1, 1, generator=noise_rng)
    start_step, wall_before, carried_rows = 0, 0.0, []
    if resume_state is not None:  # a resumed run starts a new folder with the old one's history
        tracker, fixed_noise = restore(resume_state, gen, disc, opt_g, opt_d, sampler, cfg)
        start_step, wall_before = resume_state["step"], resume_state["wall_s"]
        carried_rows = carry_over(Path(cfg.resume), folder, start_step)
    fixed_noise = fixed_noise.to(hw.device)
    schedule = Schedule(cfg.optim)  # optim.schedule's values, from the first step trained on
    adam = schedule.apply(start_step, opt_g, opt_d)
    summary = start_summary(cfg, run_dir, hw, gen, disc, len(images), start_step, wall_before)
    study = ((extra_summary or {}).get("optuna") or {}).get("study")
    loggers = open_loggers(cfg, run_dir, study or "pumpgan", flat_config(cfg))
    folder.create({**summary, **(extra_summary or {})}, carried_rows, loggers)
    gen_step: torch.nn.Module = gen
    disc_step: torch.nn.Module = disc
    if cfg.hardware.compile:
        gen_step = cast(torch.nn.Module, torch.compile(gen))
        disc_step = cast(torch.nn.Module, torch.compile(disc))
    log.info(
        "Run folder %s: %s G %.2fM / D %.2fM parameters, %d images of %d px, %s%s",
        *(run_dir, m.arch, num_params(gen) / 1e6, num_params(disc) / 1e6, len(images)),
        *(m.image_size, hw.device, ", bf16 autocast" if hw.bf16 else ""),
    )

    reference = images[: t.num_samples].cpu()  # the real images grid diversity is relative to
    evaluation = Evaluation(images, cfg)  # the run's result, at its end
    during = (  # eval.every's: the same, or on fewer images
        Evaluation(images, cfg, cfg.eval.num_images_during)
        if cfg.eval.num_images_during
        else evaluation
    )
    show_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
    steps = StepLog(folder, tracker, t, hw.device, start_step, wall_before, show_bar)
    stop_on_collapse, objective = cfg.score.stop_on_collapse, Objective.of(cfg.optim, cfg.augment)
    ema = EMA(gen, t.ema) if t.ema else None
    if ema is not None and resume_state is not None:
        ema.model.load_state_dict(resume_state["gen_ema"])
    shown = ema.model if ema is not None else gen  # the G of the grids, the SWD and the export
    best = Best(folder.checkpoint_path.parent / "best.pt", cfg.model, bool(t.ema))
    if resume_state is not None:
        best.load_state_dict(resume_state.get("best"), shown)
    step, status = start_step, "running"
    evaluated: tuple[int, SWD] | None = None  # the latest evaluation during training
    pruned_at: int | None = None

    def save_samples() -> None:
        quality = save_grid_of(folder, shown, fixed_noise, reference, step)
        tracker.sample(step, quality["diversity"])

    def checkpoint() -> None:
        state = training_state(cfg, step, wall_before + steps.elapsed(), gen, disc, opt_g, opt_d)
        state.update(sampler=sampler.state_dict(), score=tracker.state_dict())
        state["best"] = best.state_dict()
        if ema is not None:
            state["gen_ema"] = ema.model.state_dict()
        folder.save_checkpoint({**state, "fixed_noise": fixed_noise.cpu()})

    # Ctrl-C and SIGTERM are only recorded here (interrupts.deferred): the loop stops at the
    # next step boundary, so the checkpoint holds whole steps and a resumed run goes on exactly
    # as an uninterrupted one; a second signal cannot cut the checkpoint or the end-of-run work
    # in half. The KeyboardInterrupt is raised after the wrap-up.
    with steps.redirect_logging(), interrupts.installed(), interrupts.deferred(False):
        try:
            if start_step == 0:
                save_samples()
            folder.loggers.scalars([(step, {f"optim/{k}": v for k, v in adam.items()})])
            stop = tracker.collapsed_at is not None and stop_on_collapse
            while step < t.steps and not stop and pruned_at is None and not interrupts.pending():
                # ---- a batch per D update: uint8 -> [-1, 1] -> augmented, all on the device
                reals, noises = [], []
                for _ in range(cfg.optim.n_critic):
                    idx = sampler.next().to(hw.device, non_blocking=True)
                    reals.append(real_batch(images[idx], cfg.augment, hw.memory_format))
                    noises.append(torch.randn(t.batch_size, m.dim_z, 1, 1, device=hw.device))
                if schedule.due(step):
                    adam = schedule.apply(step, opt_g, opt_d)
                    folder.loggers.scalars([(step, {f"optim/{k}": v for k, v in adam.items()})])
                with hw.autocast():
                    r1_due = objective.r1_due(step + 1)
                    stats = train_step(
                        gen_step, disc_step, opt_g, opt_d, reals, noises, objective, r1_due
                    )
                if ema is not None:
                    ema.update(gen)
                step += 1
                steps.record(stats)
                checkpoint_due = t.checkpoint_every and step % t.checkpoint_every == 0
                if steps.full() or step == t.steps or checkpoint_due:
                    steps.flush(step)
                    stop = tracker.collapsed_at is not None and (
                        stop_on_collapse or tracker.reason == "non-finite loss"
                    )
                if t.sample_every and step % t.sample_every == 0:
                    save_samples()
                if cfg.eval.every and step % cfg.eval.every == 0:
                    evaluated = (step, (evaluation if step == t.steps else during)(shown))
                    folder.append_eval(step, evaluated[1])
                    # the best G is chosen among evaluations of one count (`during`'s)
                    same = evaluated[1]["swd_images"] == during.num
                    best.offer(step, (evaluated[1] if same else during(shown))["swd"], shown)
                    # the last step's SWD is the run's result, not an intermediate value; a
                    # collapsed run is not asked about
                    if on_eval is not None and step < t.steps and not stop:
                        pruned_at = step if on_eval(step, evaluated[1]["swd"]) else None
                if checkpoint_due:
                    checkpoint()
            steps.flush(step)
            checkpoint()
            if interrupts.pending():
                status = "interrupted"
                log.warning(
                    "Interrupted at step %d: checkpoint saved; continue with resume=%s",
                    *(step, run_dir),
                )
            elif tracker.collapsed_at is not None:
                status = "collapsed"
            elif pruned_at is not None:
                status = "pruned"
                log.info("Pruned at step %d: the study's pruner stopped the trial", step)
            else:
                status = "completed"
        except BaseException as e:
            status = "failed"
            record_error(folder, e)
            raise
        finally:
            steps.close()
            wall_s = wall_before + steps.elapsed()
            images_per_s = throughput(step, t.batch_size, wall_s)
            ending = (status, step, wall_s, images_per_s, tracker, shown, fixed_noise, reference)
            finish(folder, cfg, RunEnd(*ending, evaluated=evaluated, best=best), evaluation)
    if interrupts.pending():  # handled: a later run in this process starts afresh
        interrupts.clear()
        raise KeyboardInterrupt(f"interrupted at step {step}")
    return tracker.score(t.steps)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
