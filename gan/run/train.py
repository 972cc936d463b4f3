"""One DCGAN training run, top to bottom: `train(cfg, run_dir)` returns the stability score.

The loop keeps the PumpGAN article's order: D on a real batch, D on a fake batch (detached), D
step; then G against real labels through the updated D. Per step it records loss_d, loss_g,
d_real = mean D(x), d_fake = mean D(G(z)) before D's update, and d_fake_after = mean D(G(z))
during the G step. Those five numbers stay on the device and are read back every
`train.log_every` steps (`StepLog`), so the hot loop never waits for the host.
"""

from __future__ import annotations

import copy
import csv
import logging
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gan.config import validate
from gan.data import BatchSampler, load_images, real_batch
from gan.errors import UserError
from gan.nets import diffaugment
from gan.nets.losses import LOSSES, gradient_penalty, r1_penalty
from gan.nets.models import Discriminator, Generator, init_weights, num_params
from gan.run import hardware, interrupts
from gan.run.folder import RunFolder, load_checkpoint, now_iso, plot_curves, read_metrics
from gan.run.hardware import Hardware
from gan.run.quality import SWD, sample_quality, swd
from gan.run.score import ScoreTracker
from gan.sample import save_generator

log = logging.getLogger(__name__)

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")


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
    gen, disc, opt_g, opt_d = build_models(cfg, hw)
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
    summary = start_summary(cfg, run_dir, hw, gen, disc, len(images), start_step, wall_before)
    folder.create({**summary, **(extra_summary or {})}, carried_rows)
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
    evaluation = Evaluation(images, cfg)
    show_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
    steps = StepLog(folder, tracker, cfg, hw.device, start_step, wall_before, show_bar)
    stop_on_collapse, objective = cfg.score.stop_on_collapse, Objective.of(cfg)
    ema = EMA(gen, t.ema) if t.ema else None
    if ema is not None and resume_state is not None:
        ema.model.load_state_dict(resume_state["gen_ema"])
    shown = ema.model if ema is not None else gen  # the G of the grids, the SWD and the export
    step, status = start_step, "running"
    evaluated: tuple[int, SWD] | None = None  # the latest evaluation during training
    pruned_at: int | None = None

    def save_samples() -> None:
        quality = save_grid_of(folder, shown, fixed_noise, reference, step)
        tracker.sample(step, quality["diversity"])

    def checkpoint() -> None:
        state = training_state(cfg, step, wall_before + steps.elapsed(), gen, disc, opt_g, opt_d)
        state.update(sampler=sampler.state_dict(), score=tracker.state_dict())
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
            stop = tracker.collapsed_at is not None and stop_on_collapse
            while step < t.steps and not stop and pruned_at is None and not interrupts.pending():
                # ---- a batch per D update: uint8 -> [-1, 1] -> augmented, all on the device
                reals, noises = [], []
                for _ in range(cfg.optim.n_critic):
                    idx = sampler.next().to(hw.device, non_blocking=True)
                    reals.append(real_batch(images[idx], cfg.augment, hw.memory_format))
                    noises.append(torch.randn(t.batch_size, m.dim_z, 1, 1, device=hw.device))
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
                    evaluated = (step, evaluation(shown))
                    folder.append_eval(step, evaluated[1])
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
            grids = (fixed_noise, reference)
            finish(
                *(folder, cfg, status, step, tracker, wall_s, images_per_s, shown, grids),
                evaluation,
                evaluated,
            )
    if interrupts.pending():  # handled: a later run in this process starts afresh
        interrupts.clear()
        raise KeyboardInterrupt(f"interrupted at step {step}")
    return tracker.score(t.steps)


def build_models(
    cfg: DictConfig, hw: Hardware
) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    """G and D with the DCGAN init, placed by `hw` (device, layout, fast layers); their Adams."""
    # WGAN-GP's critic has no BatchNorm: the penalty is per image (gan/models.py)
    gen = Generator(cfg.model)
    disc = Discriminator(cfg.model, batchnorm=cfg.optim.loss != "wgan-gp")
    for net in (gen, disc):
        init_weights(net)  # on the CPU: the same weights whatever the device
    hw.place(gen, disc)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.optim.gen_lr, betas=betas, fused=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.optim.disc_lr, betas=betas, fused=True)
    return gen, disc, opt_g, opt_d


def record_error(folder: RunFolder, e: BaseException) -> None:
    """The error that ended a run, in its summary (best effort: the disk may be full)."""
    try:
        folder.update_summary(error=f"{type(e).__name__}: {e}")
    except OSError as again:
        log.warning("Could not record the error in %s: %s", folder.summary_path, again)


@dataclass(frozen=True)
class Objective:
    """What a training step optimises, from the config: the loss (gan/losses.py), WGAN-GP's
    penalty weight, R1 and DiffAugment."""

    loss: str = "bce"
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    r1_every: int = 16
    diffaugment: tuple[str, ...] = ()

    @classmethod
    def of(cls, cfg: DictConfig) -> Objective:
        o = cfg.optim
        policy = tuple(diffaugment.parse(cfg.augment.diffaugment))
        return cls(o.loss, o.gp_weight, o.r1_gamma, o.r1_every, policy)

    def r1_due(self, step: int) -> bool:
        """Lazy R1: on steps 1, 1 + r1_every, ... (the step about to run, counted from 1)."""
        return self.r1_gamma > 0 and (step - 1) % self.r1_every == 0


def train_step(
    gen: torch.nn.Module,
    disc: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor | Sequence[torch.Tensor],
    noise: torch.Tensor | Sequence[torch.Tensor],
    objective: Objective | str = "bce",
    r1_due: bool = False,
) -> torch.Tensor:
    """D updates (one per batch of `real` and `noise`: optim.n_critic), then one G update;
    returns (loss_d, loss_g, d_real, d_fake, d_fake_after) of the last D update and the G
    update, as a tensor on the device (no host sync); d_* are batch means of sigmoid(D)."""
    obj = Objective(objective) if isinstance(objective, str) else objective
    disc_loss, gen_loss = LOSSES[obj.loss]
    reals = [real] if isinstance(real, torch.Tensor) else list(real)
    noises = [noise] if isinstance(noise, torch.Tensor) else list(noise)

    def seen(x: torch.Tensor) -> torch.Tensor:  # what D sees: DiffAugment'ed, if on
        return diffaugment.diff_augment(x, obj.diffaugment) if obj.diffaugment else x

    # (1) D: on real images and on G's (detached), e.g. maximise log D(x) + log(1 - D(G(z)))
    for k, (x, z) in enumerate(zip(reals, noises, strict=True)):
        opt_d.zero_grad(set_to_none=True)
        r1 = r1_due and k == 0
        if r1:
            x = x.detach().requires_grad_(True)
        out_real = disc(seen(x))  # (B,) fp32, even under autocast
        fake = gen(z)  # (B, 3, S, S)
        out_fake = disc(seen(fake.detach()))
        loss_d = disc_loss(out_real, out_fake)
        if obj.loss == "wgan-gp":
            loss_d = loss_d + obj.gp_weight * gradient_penalty(disc, x, fake)
        if r1:
            loss_d = loss_d + obj.r1_gamma / 2 * obj.r1_every * r1_penalty(out_real, x)
        loss_d.backward()
        opt_d.step()

    # (2) G step: through the updated D, on the last D update's images; e.g. maximise
    # log D(G(z)); D's weights need no gradient here
    opt_g.zero_grad(set_to_none=True)
    disc.requires_grad_(False)
    out_after = disc(seen(fake))
    loss_g = gen_loss(out_after)
    loss_g.backward()
    disc.requires_grad_(True)
    opt_g.step()

    with torch.no_grad():
        means = [torch.sigmoid(o).mean() for o in (out_real, out_fake, out_after)]
        return torch.stack([loss_d.detach(), loss_g.detach(), *means])


class EMA:
    """An exponential moving average of G's weights (`train.ema`): after each G update,
    average = decay * average + (1 - decay) * weights; buffers (BatchNorm's statistics, which
    sampling does not use: it normalises by the batch) are copied."""

    def __init__(self, gen: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(gen).requires_grad_(False)

    @torch.no_grad()
    def update(self, gen: torch.nn.Module) -> None:
        average: list[torch.Tensor] = list(self.model.parameters())
        current: list[torch.Tensor] = list(gen.parameters())
        torch._foreach_lerp_(average, current, 1 - self.decay)
        for mine, theirs in zip(self.model.buffers(), gen.buffers(), strict=True):
            mine.copy_(theirs)


class StepLog:
    """The per-step stats of a run: kept on the device, read back every `train.log_every` steps
    (one host sync), then written to metrics.csv, scored, shown (a progress bar or log lines)
    and put in summary.json."""

    def __init__(
        self,
        folder: RunFolder,
        tracker: ScoreTracker,
        cfg: DictConfig,
        device: torch.device,
        start_step: int,
        wall_before: float,
        show_bar: bool,
    ) -> None:
        self.folder, self.tracker, self.train_cfg = folder, tracker, cfg.train
        self.start_step, self.wall_before, self.show_bar = start_step, wall_before, show_bar
        self.stats = torch.zeros(cfg.train.log_every, len(STAT_NAMES), device=device)
        self.pending = 0  # steps whose stats sit in `stats`, not yet read back
        self.t0, self.last_flush_t = time.perf_counter(), 0.0
        self.plain_every = max(cfg.train.log_every, cfg.train.steps // 20)
        self.bar = tqdm(
            total=cfg.train.steps,
            initial=start_step,
            disable=not show_bar,
            unit="step",
            # a terminal that reports no size (0 columns) gets 80, not an invisible bar
            ncols=shutil.get_terminal_size().columns,
            leave=True,
        )

    def redirect_logging(self) -> Any:
        """Log lines printed above the bar instead of through it."""
        return logging_redirect_tqdm() if self.show_bar else nullcontext()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def rate(self, step: int) -> float:
        """Images per second since this process started training: the progress line's."""
        return (step - self.start_step) * self.train_cfg.batch_size / max(self.elapsed(), 1e-9)

    def record(self, stats: torch.Tensor) -> None:
        self.stats[self.pending] = stats
        self.pending += 1

    def full(self) -> bool:
        return self.pending == len(self.stats)

    @interrupts.deferred()
    def flush(self, step: int) -> None:
        """Read back the pending steps' stats, write them, score them. A signal in here takes
        effect at its end: a chunk half written would be written again."""
        if self.pending == 0:
            return
        now, pending = self.elapsed(), self.pending
        values = self.stats[:pending].float().cpu().tolist()
        first, rows, collapsed = step - pending + 1, [], False
        for k, row in enumerate(values):
            # time_s is measured per chunk; steps inside a chunk are interpolated
            span = now - self.last_flush_t
            time_s = self.wall_before + self.last_flush_t + span * (k + 1) / pending
            rows.append([first + k, round(time_s, 4), *row])
            collapsed |= self.tracker.update(first + k, row[2], row[3], row[:2])
        self.folder.append_metrics(rows)
        self.pending, self.last_flush_t = 0, now
        if collapsed:
            log.warning("Collapse at step %d: %s", self.tracker.collapsed_at, self.tracker.reason)
        self.show(step, values[-1], len(values))
        wall_s = self.wall_before + now
        self.folder.update_summary(
            steps_done=step,
            wall_s=round(wall_s, 3),
            images_per_s=round(throughput(step, self.train_cfg.batch_size, wall_s), 2),
            collapsed_at=self.tracker.collapsed_at,
            reason=self.tracker.reason,
        )

    def show(self, step: int, last: list[float], chunk: int) -> None:
        loss_d, loss_g, d_real, d_fake, _ = last
        line = (
            f"loss_d {loss_d:.3f}  loss_g {loss_g:.3f}  D(x) {d_real:.3f}  D(G(z)) {d_fake:.3f}  "
            f"{self.rate(step):.0f} img/s"
        )
        self.bar.set_postfix_str(line, refresh=False)
        self.bar.update(step - self.bar.n)
        total = self.train_cfg.steps
        if not self.show_bar and (step % self.plain_every < chunk or step == total):
            log.info("step %d/%d  %s", step, total, line)

    def close(self) -> None:
        self.bar.close()


def throughput(steps_done: int, batch_size: int, wall_s: float) -> float:
    """summary.json's images_per_s: steps_done x batch_size / wall_s, both counted over the
    whole run, the runs it resumed included (a resume keeps the batch size)."""
    return steps_done * batch_size / max(wall_s, 1e-9)


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
    """summary.json as a run starts (DESIGN.md section 4): kept current while it runs."""
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


def training_state(
    cfg: DictConfig,
    step: int,
    wall_s: float,
    gen: Generator,
    disc: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
) -> dict[str, Any]:
    """What checkpoints/last.pt holds besides the sampler's, the score's and the noise's state."""
    return {
        "step": step,
        "wall_s": wall_s,
        "gen": gen.state_dict(),
        "disc": disc.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "rng": get_rng_state(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def restore(
    state: dict[str, Any],
    gen: Generator,
    disc: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    sampler: BatchSampler,
    cfg: DictConfig,
) -> tuple[ScoreTracker, torch.Tensor]:
    """Load a checkpoint into the run's objects; returns its score tracker and fixed noise."""
    try:
        gen.load_state_dict(state["gen"])
        disc.load_state_dict(state["disc"])
    except RuntimeError as e:
        raise UserError(
            f"resume={cfg.resume!r}: the checkpoint's nets do not fit this run's model "
            f"({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}). A "
            f"resumed run keeps the model of the run it continues: drop model overrides."
        ) from None
    opt_g.load_state_dict(state["opt_g"])
    opt_d.load_state_dict(state["opt_d"])
    # the optimizers' states keep the learning rates and betas they were saved with: the run's
    # config may change them on resume, and what it shows is what trains
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    for opt, lr in ((opt_g, cfg.optim.gen_lr), (opt_d, cfg.optim.disc_lr)):
        for group in opt.param_groups:
            group.update(lr=lr, betas=betas)
    sampler.load_state_dict(state["sampler"])
    tracker = ScoreTracker.from_state_dict(state["score"])
    s = cfg.score  # the same for the score's settings (its streak so far is the checkpoint's)
    tracker.eps, tracker.patience, tracker.min_diversity = s.eps, s.patience, s.min_diversity
    set_rng_state(state["rng"])
    return tracker, state["fixed_noise"]


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


@torch.no_grad()
def sample(gen: torch.nn.Module, noise: torch.Tensor) -> torch.Tensor:
    """G(noise) on the CPU, in training mode as the DCGAN example does, leaving BatchNorm's
    running statistics untouched so that sampling never changes the training state."""
    saved = [b.clone() for b in gen.buffers()]
    images = gen(noise).float().cpu()
    for b, s in zip(gen.buffers(), saved, strict=True):
        b.copy_(s)
    return images


def finish(
    folder: RunFolder,
    cfg: DictConfig,
    status: str,
    step: int,
    tracker: ScoreTracker,
    wall_s: float,
    images_per_s: float,
    gen: torch.nn.Module,
    grids: tuple[torch.Tensor, torch.Tensor],
    evaluation: Evaluation,
    evaluated: tuple[int, SWD] | None = None,
) -> None:
    """Final grid, SWD (of a run that completed, collapsed or was pruned), curves and summary;
    each part is tried on its own so a failure in one (or a second Ctrl-C) loses nothing else
    written. grids: the fixed noise and the real images the grids' diversity is relative to.
    evaluated: the latest evaluation during training, reused when it was at this step."""
    quality: dict[str, Any] | None = None
    try:
        quality = dict(save_grid_of(folder, gen, *grids, step, "final.png"))
    except Exception as e:  # noqa: BLE001 - the run's status matters more than its last grid
        log.warning("Could not write the final sample grid: %s", e)
    ended = status in ("completed", "collapsed", "pruned")
    if quality is not None and ended and cfg.eval.num_images:
        try:
            at_step = evaluated is not None and evaluated[0] == step
            quality.update(evaluated[1] if evaluated is not None and at_step else evaluation(gen))
            folder.log_quality(step, quality)
        except Exception as e:  # noqa: BLE001
            log.warning("Could not compute the final SWD: %s", e)
    if quality is not None and status in ("completed", "collapsed"):
        # training is over: the last sample point, then the diversity rule (gan/score.py)
        tracker.sample(step, quality["diversity"])
        if tracker.end_of_training():
            status = "collapsed"
            log.warning("Collapse at step %d: %s", tracker.collapsed_at, tracker.reason)
    collapsed_at, score = tracker.collapsed_at, tracker.score(cfg.train.steps)
    if status != "failed":
        try:  # G alone, for gan.sample and for programs without pumpgan's training code
            path = folder.checkpoint_path.parent / "generator.pt"
            save_generator(path, cfg.model, gen, step, ema=bool(cfg.train.ema))
        except Exception as e:  # noqa: BLE001
            log.warning("Could not write checkpoints/generator.pt: %s", e)
    try:
        name = f"{folder.path.parent.name}/{folder.path.name}"
        plot_curves(
            folder.path / "curves.png",
            read_metrics(folder.metrics_path),
            cfg.score.eps,
            collapsed_at,
            title=f"{name}: {status}, score {score:.4f}",
        )
    except Exception as e:  # noqa: BLE001
        log.warning("Could not plot curves.png: %s", e)
    folder.update_summary(
        status=status,
        score=score,
        collapsed_at=collapsed_at,
        reason=tracker.reason,
        pruned_at=step if status == "pruned" else None,
        steps_done=step,
        wall_s=round(wall_s, 3),
        images_per_s=round(images_per_s, 2),
        quality=quality,
        finished_at=now_iso(),
    )
    try:
        q = quality or {}
        metrics = {"score": score, "swd": q.get("swd"), "diversity": q.get("diversity")}
        folder.log_hparams({**metrics, "steps_done": float(step)})
    except Exception as e:  # noqa: BLE001 - TensorBoard's extra view must not fail a run
        log.warning("Could not log the run's hparams to TensorBoard: %s", e)
    folder.close(score, step)
    log.info(
        "%s after %d/%d steps: score %.4f%s%s (%.1f s, %.0f img/s)",
        *(status, step, cfg.train.steps, score),
        f", {tracker.reason} at {collapsed_at}" if collapsed_at is not None else "",
        f", SWD {quality['swd']:.2f}" if quality and "swd" in quality else "",
        *(wall_s, images_per_s),
    )


class Evaluation:
    """The sliced Wasserstein distance (gan/quality.py) between `eval.num_images` of G's images
    and as many of the data's: the same real images and the same noise at every evaluation of a
    run, drawn from a generator of their own (the training random stream is left alone)."""

    def __init__(self, images: torch.Tensor, cfg: DictConfig) -> None:
        n = min(cfg.eval.num_images, len(images))
        rng = torch.Generator().manual_seed(cfg.seed + 2)
        self.real = images.cpu()[torch.randperm(len(images), generator=rng)[:n]]
        self.noise = torch.randn(n, cfg.model.dim_z, 1, 1, generator=rng)
        self.batch_size, self.seed = cfg.train.batch_size, cfg.seed

    def __call__(self, gen: torch.nn.Module) -> SWD:
        device = next(gen.parameters()).device
        # in batches of the training size: G's BatchNorm normalises by batch statistics
        # (batches of nearly equal sizes: one of a single image would fail in BatchNorm)
        chunks = self.noise.tensor_split(-(-len(self.noise) // self.batch_size))
        batches = [sample(gen, z.to(device)) for z in chunks]
        return swd(torch.cat(batches), self.real, seed=self.seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def carry_over(source: Path, folder: RunFolder, step: int) -> list[list[Any]]:
    """A resumed run's history up to the checkpoint's step: its metrics rows (returned), its
    evaluations (eval.csv) and sample grids (copied)."""
    rows = []
    if (source / "metrics.csv").is_file():
        with open(source / "metrics.csv", newline="") as f:
            rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= step]
    folder.samples_dir.mkdir(parents=True, exist_ok=True)
    if (source / "eval.csv").is_file():
        with open(source / "eval.csv", newline="") as f:
            header, *evals = list(csv.reader(f))
        with open(folder.eval_path, "w", newline="") as f:
            csv.writer(f).writerows([header, *(r for r in evals if r and int(r[0]) <= step)])
    for png in sorted((source / "samples").glob("step_*.png")):
        if int(png.stem.removeprefix("step_")) <= step:
            shutil.copy2(png, folder.samples_dir / png.name)
    return rows


def versions() -> dict[str, str]:
    from importlib.metadata import version

    packages = ("torch", "numpy", "hydra-core", "optuna")
    return {"python": platform.python_version(), **{p: version(p) for p in packages}}
