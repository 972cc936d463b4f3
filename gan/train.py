"""One DCGAN training run, top to bottom: `train(cfg, run_dir)` returns the stability score.

The loop keeps the PumpGAN article's order: D on a real batch, D on a fake batch (detached), D
step; then G against real labels through the updated D. Per step it records loss_d, loss_g,
d_real = mean D(x), d_fake = mean D(G(z)) before D's update, and d_fake_after = mean D(G(z))
during the G step. Those five numbers stay on the device and are read back every
`train.log_every` steps, so the hot loop never waits for the host.
"""

from __future__ import annotations

import csv
import ctypes
import functools
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gan import interrupts, kernels
from gan.config import HardwareConfig, ModelConfig, UserError, validate
from gan.data import BatchSampler, load_images, real_batch
from gan.models import Discriminator, Generator, init_weights, num_params
from gan.runfolder import RunFolder, load_checkpoint, now_iso, plot_curves, read_metrics
from gan.score import ScoreTracker

log = logging.getLogger(__name__)

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")


def train(
    cfg: DictConfig,
    run_dir: Path,
    progress_bar: bool | None = None,
    extra_summary: dict[str, Any] | None = None,
) -> float:
    """Train one GAN into `run_dir` and return its score in [0, 1].

    progress_bar: a tqdm bar (True) or plain log lines (False); default: a bar on a TTY."""
    validate(cfg)
    folder = RunFolder(run_dir)
    folder.check_new()
    t, m = cfg.train, cfg.model
    device, bf16, channels_last, timings = pick_hardware(cfg.hardware, m, t.batch_size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    resume_state = load_checkpoint(Path(cfg.resume)) if cfg.resume else None
    seed_everything(cfg.seed)

    # ---- data: uint8 (N, 3, S, S), moved to the device once
    images = load_images(cfg.data, m.image_size).to(device)
    sampler = BatchSampler(len(images), t.batch_size, seed=cfg.seed)

    # ---- models and optimisers
    use_kernels = cfg.hardware.cpu_kernels and cpu_kernels_apply(device, bf16, channels_last)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    gen, disc, opt_g, opt_d = build_models(cfg, device, memory_format, use_kernels)
    tracker = ScoreTracker(
        eps=cfg.score.eps, patience=cfg.score.patience, min_diversity=cfg.score.min_diversity
    )
    # the same noise for every sample grid of the run, from its own generator so that drawing
    # it does not shift the training random stream
    fixed_noise = torch.randn(
        t.num_samples, m.dim_z, 1, 1, generator=torch.Generator().manual_seed(cfg.seed + 1)
    )
    start_step, wall_before = 0, 0.0

    # ---- the run folder: a resumed run starts a new folder with the old one's history
    carried_rows: list[list[Any]] = []
    if resume_state is not None:
        start_step, wall_before = resume_state["step"], resume_state["wall_s"]
        gen.load_state_dict(resume_state["gen"])
        disc.load_state_dict(resume_state["disc"])
        opt_g.load_state_dict(resume_state["opt_g"])
        opt_d.load_state_dict(resume_state["opt_d"])
        sampler.load_state_dict(resume_state["sampler"])
        tracker = ScoreTracker.from_state_dict(resume_state["score"])
        tracker.min_diversity = cfg.score.min_diversity
        fixed_noise = resume_state["fixed_noise"]
        set_rng_state(resume_state["rng"])
        carried_rows = carry_over(Path(cfg.resume), folder, start_step)
    fixed_noise = fixed_noise.to(device)
    folder.create(
        {
            "status": "running",
            "score": None,
            "collapsed_at": None,
            "reason": None,
            "steps": t.steps,
            "steps_done": start_step,
            "wall_s": wall_before,
            "images_per_s": None,
            "quality": None,
            "started_at": now_iso(),
            "run_dir": str(run_dir),
            "resumed_from": str(cfg.resume) if cfg.resume else None,
            "device": str(device),
            "precision": "bf16" if bf16 else "fp32",
            "channels_last": channels_last,
            # seconds per step of each setting that hardware.precision=auto timed before choosing
            "precision_timings": timings,
            "threads": torch.get_num_threads(),
            # glibc malloc keeps freed memory for reuse (gan.train.keep_freed_memory)
            "keep_freed_memory": keep_freed_memory(),
            # pumpgan's own CPU kernels in use (gan/kernels.py; hardware.cpu_kernels)
            "cpu_kernels": use_kernels,
            "params": {"gen": num_params(gen), "disc": num_params(disc)},
            "data": {"name": cfg.data.name, "num_images": len(images)},
            "versions": versions(),
            **(extra_summary or {}),
        },
        carried_rows,
    )
    if cfg.hardware.compile:
        gen_step = cast(torch.nn.Module, torch.compile(gen))
        disc_step = cast(torch.nn.Module, torch.compile(disc))
    else:
        gen_step, disc_step = gen, disc
    log.info(
        "Run folder %s: %s G %.2fM / D %.2fM parameters, %d images of %d px, %s%s",
        run_dir,
        m.arch,
        num_params(gen) / 1e6,
        num_params(disc) / 1e6,
        len(images),
        m.image_size,
        device,
        ", bf16 autocast" if bf16 else "",
    )

    def state(step: int, wall_s: float) -> dict[str, Any]:
        return {
            "step": step,
            "wall_s": wall_s,
            "gen": gen.state_dict(),
            "disc": disc.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "sampler": sampler.state_dict(),
            "score": tracker.state_dict(),
            "fixed_noise": fixed_noise.cpu(),
            "rng": get_rng_state(),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    # labels, allocated once; the last batch of an epoch is always full (BatchSampler)
    ones = torch.ones(t.batch_size, device=device)
    zeros = torch.zeros(t.batch_size, device=device)
    stats = torch.zeros(t.log_every, len(STAT_NAMES), device=device)
    pending = 0  # steps whose stats sit in `stats`, not yet read back
    step = start_step
    t0 = time.perf_counter()
    last_flush_t = 0.0
    show_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
    bar = tqdm(
        total=t.steps,
        initial=start_step,
        disable=not show_bar,
        unit="step",
        # a terminal that reports no size (0 columns) gets 80, not an invisible bar
        ncols=shutil.get_terminal_size().columns,
        leave=True,
    )
    plain_every = max(t.log_every, t.steps // 20)

    def elapsed() -> float:
        return time.perf_counter() - t0

    def images_per_s() -> float:
        return (step - start_step) * t.batch_size / max(elapsed(), 1e-9)

    @interrupts.deferred()
    def flush() -> bool:
        """Read back the pending steps' stats (one host sync), write them, score them. A signal
        in here takes effect at its end: a chunk half written would be written again."""
        nonlocal pending, last_flush_t
        if pending == 0:
            return False
        now = elapsed()
        values = stats[:pending].float().cpu().tolist()
        first = step - pending + 1
        rows, collapsed = [], False
        for k, row in enumerate(values):
            # time_s is measured per chunk; steps inside a chunk are interpolated
            time_s = wall_before + last_flush_t + (now - last_flush_t) * (k + 1) / pending
            rows.append([first + k, round(time_s, 4), *row])
            collapsed |= tracker.update(first + k, row[2], row[3], row[:2])
        folder.append_metrics(rows)
        pending, last_flush_t = 0, now
        loss_d, loss_g, d_real, d_fake, _ = values[-1]
        bar.set_postfix_str(
            f"loss_d {loss_d:.3f} loss_g {loss_g:.3f} D(x) {d_real:.3f} "
            f"D(G(z)) {d_fake:.3f} {images_per_s():.0f} img/s",
            refresh=False,
        )
        bar.update(step - bar.n)
        if not show_bar and (step % plain_every < len(values) or step == t.steps):
            log.info(
                "step %d/%d  loss_d %.3f  loss_g %.3f  D(x) %.3f  D(G(z)) %.3f  %.0f img/s",
                step,
                t.steps,
                loss_d,
                loss_g,
                d_real,
                d_fake,
                images_per_s(),
            )
        folder.update_summary(
            steps_done=step,
            wall_s=round(wall_before + now, 3),
            images_per_s=round(images_per_s(), 2),
            collapsed_at=tracker.collapsed_at,
            reason=tracker.reason,
        )
        return collapsed

    def checkpoint() -> None:
        folder.save_checkpoint(state(step, wall_before + elapsed()))

    reference = images[: t.num_samples].cpu()  # real images the grids' diversity is relative to

    def save_samples() -> None:
        quality = save_grid_of(folder, gen, fixed_noise, reference, step)
        tracker.sample(step, quality["diversity"])

    status = "running"
    redirect = logging_redirect_tqdm() if show_bar else nullcontext()
    try:
        with redirect, interrupts.installed():
            if start_step == 0:
                save_samples()
            stop = tracker.collapsed_at is not None and cfg.score.stop_on_collapse
            while step < t.steps and not stop:
                interrupts.check()  # a Ctrl-C that some finalizer swallowed ends the run here
                # ---- a batch: uint8 -> [-1, 1] -> augmented, all on the device
                idx = sampler.next().to(device, non_blocking=True)
                real = real_batch(images[idx], cfg.augment, memory_format, use_kernels)
                noise = torch.randn(t.batch_size, m.dim_z, 1, 1, device=device)
                with autocast:
                    stats[pending] = train_step(
                        gen_step, disc_step, opt_g, opt_d, real, noise, ones, zeros
                    )
                step += 1
                pending += 1
                checkpoint_due = t.checkpoint_every and step % t.checkpoint_every == 0
                if pending == t.log_every or step == t.steps or checkpoint_due:
                    collapsed = flush()
                    stop = tracker.collapsed_at is not None and (
                        cfg.score.stop_on_collapse or tracker.reason == "non-finite loss"
                    )
                    if collapsed:
                        log.warning("Collapse at step %d: %s", tracker.collapsed_at, tracker.reason)
                if t.sample_every and step % t.sample_every == 0:
                    save_samples()
                if checkpoint_due:
                    checkpoint()
            flush()
            checkpoint()
        status = "completed" if tracker.collapsed_at is None else "collapsed"
    except KeyboardInterrupt:
        interrupts.clear()
        status = "interrupted"
        flush()
        checkpoint()
        log.warning(
            "Interrupted at step %d: checkpoint saved; continue with resume=%s", step, run_dir
        )
        raise
    except BaseException as e:
        status = "failed"
        folder.update_summary(error=f"{type(e).__name__}: {e}")
        raise
    finally:
        bar.close()
        finish(
            folder,
            cfg,
            status,
            step,
            tracker,
            wall_before + elapsed(),
            images_per_s(),
            gen,
            fixed_noise,
            reference,
        )
    return tracker.score(t.steps)


def build_models(
    cfg: DictConfig, device: torch.device, memory_format: torch.memory_format, cpu_kernels: bool
) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    """G and D with the DCGAN init on `device` in `memory_format`, and their Adams."""
    gen, disc = Generator(cfg.model, cpu_kernels), Discriminator(cfg.model, cpu_kernels)
    for net in (gen, disc):
        init_weights(net)  # on the CPU: the same weights whatever the device
        net.to(device).to(memory_format=memory_format)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.optim.gen_lr, betas=betas, fused=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.optim.disc_lr, betas=betas, fused=True)
    return gen, disc, opt_g, opt_d


def train_step(
    gen: torch.nn.Module,
    disc: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    noise: torch.Tensor,
    ones: torch.Tensor,
    zeros: torch.Tensor,
) -> torch.Tensor:
    """One D update and one G update; returns (loss_d, loss_g, d_real, d_fake, d_fake_after)
    as a tensor on the device (no host sync)."""
    # (1) D step: maximise log D(x) + log(1 - D(G(z)))
    opt_d.zero_grad(set_to_none=True)
    logit_real = disc(real)  # (B,) fp32 logits, even under autocast
    fake = gen(noise)  # (B, 3, S, S)
    logit_fake = disc(fake.detach())
    loss_d = F.binary_cross_entropy_with_logits(
        logit_real, ones
    ) + F.binary_cross_entropy_with_logits(logit_fake, zeros)
    loss_d.backward()
    opt_d.step()

    # (2) G step: maximise log D(G(z)) (the non-saturating loss), through the updated D;
    # D's weights need no gradient here
    opt_g.zero_grad(set_to_none=True)
    disc.requires_grad_(False)
    logit_after = disc(fake)
    loss_g = F.binary_cross_entropy_with_logits(logit_after, ones)
    loss_g.backward()
    disc.requires_grad_(True)
    opt_g.step()

    with torch.no_grad():
        return torch.stack(
            [
                loss_d,
                loss_g,
                torch.sigmoid(logit_real).mean(),
                torch.sigmoid(logit_fake).mean(),
                torch.sigmoid(logit_after).mean(),
            ]
        )


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
    fixed_noise: torch.Tensor,
    reference: torch.Tensor,
) -> None:
    """Final grid, curves and summary; each part is tried on its own so a failure in one (or
    a second Ctrl-C) loses nothing else that was written."""
    quality = None
    try:
        quality = save_grid_of(folder, gen, fixed_noise, reference, step, "final.png")
    except Exception as e:  # noqa: BLE001 - the run's status matters more than its last grid
        log.warning("Could not write the final sample grid: %s", e)
    if quality is not None and status in ("completed", "collapsed"):
        # training is over: the last sample point, then the diversity rule (gan/score.py)
        tracker.sample(step, quality["diversity"])
        if tracker.end_of_training():
            status = "collapsed"
            log.warning("Collapse at step %d: %s", tracker.collapsed_at, tracker.reason)
    collapsed_at, score = tracker.collapsed_at, tracker.score(cfg.train.steps)
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
        steps_done=step,
        wall_s=round(wall_s, 3),
        images_per_s=round(images_per_s, 2),
        quality=quality,
        finished_at=now_iso(),
    )
    folder.close(score, step)
    log.info(
        "%s after %d/%d steps: score %.4f%s (%.1f s, %.0f img/s)",
        status,
        step,
        cfg.train.steps,
        score,
        f", {tracker.reason} at {collapsed_at}" if collapsed_at is not None else "",
        wall_s,
        images_per_s,
    )


def sample_quality(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Cheap truth-tellers the D means cannot give. diversity: mean pairwise distance between
    the fixed-noise samples over that between as many real images (near 0: mode collapse;
    about 1: as varied as the data). colour_gap: distance between the mean colours, in [0, 1]
    units of the RGB range."""

    def mean_pairwise(x: torch.Tensor) -> float:
        flat = F.avg_pool2d(x, x.shape[-1] // 16).flatten(1) if x.shape[-1] > 16 else x.flatten(1)
        return torch.pdist(flat).mean().item()

    real = real.float().div(127.5).sub(1)
    diversity = mean_pairwise(fake) / max(mean_pairwise(real), 1e-9)
    colour_gap = (fake.mean((0, 2, 3)) - real.mean((0, 2, 3))).norm().item() / 2
    return {"diversity": round(diversity, 4), "colour_gap": round(colour_gap, 4)}


def pick_hardware(
    cfg: HardwareConfig, model: ModelConfig, batch_size: int
) -> tuple[torch.device, bool, bool, dict[str, float]]:
    """The device, bf16 autocast or not, channels-last or not, and the timings behind an
    automatic choice (seconds per step, empty when nothing was timed)."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    keep_freed_memory()
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"hardware.device={cfg.device!r} but torch sees no CUDA GPU. Use "
                f"hardware=cpu (or hardware=auto to pick what is there)."
            )
        torch.backends.cudnn.benchmark = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.precision != "auto":
        return device, cfg.precision == "bf16", cfg.channels_last, {}
    if device.type == "cuda":
        return device, True, True, {}
    bf16, channels_last, timings = fastest_cpu_setting(model, batch_size, cfg.cpu_kernels)
    return device, bf16, channels_last, timings


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next step instead of returning it to the
    kernel; True if it now does (once per process, for the whole process).

    A training step frees and re-allocates the same large activation buffers every time. By
    default glibc serves big requests with fresh mmap pages and trims the heap, so each step
    page-faults and zero-fills tens to hundreds of MB again: measured at width 32 of the seed
    nets, 5-10% of the step (a bf16 BatchNorm forward on 128x128x32x32 took 12.9 ms with fresh
    pages, 3.7 ms with reused ones). Here mmap is off for allocations (glibc still falls back to
    it when the heap cannot grow) and the heap is trimmed only beyond 2 GiB free, so RSS stays
    at its peak: 5-12% higher than without at widths 16-32, flat once the first steps have run
    (240 steps at width 16: 988 -> 1003 MiB). Left alone when the environment already tunes the
    allocator (GLIBC_TUNABLES, MALLOC_*, LD_PRELOAD) or the C library is not glibc."""
    tuned = any(k == "GLIBC_TUNABLES" or k.startswith("MALLOC_") for k in os.environ)
    if tuned or os.environ.get("LD_PRELOAD") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's C library
    m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
    return bool(mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 2**31 - 1))


def cpu_kernels_apply(device: torch.device, bf16: bool, channels_last: bool) -> bool:
    """Whether gan/kernels.c's kernels serve this run: CPU bf16 channels-last training, with
    the kernels built on this machine."""
    return device.type == "cpu" and bf16 and channels_last and kernels.kernel() is not None


def fastest_cpu_setting(
    m: ModelConfig, batch_size: int, cpu_kernels: bool = True
) -> tuple[bool, bool, dict[str, float]]:
    """fp32 or bf16 channels-last, whichever trains this model faster on this CPU: a few steps of
    throwaway nets on random data (a second or two), outside the run's random stream
    (`cpu_kernels`: hardware.cpu_kernels, used by the bf16 nets). bf16 only
    where the CPU computes it natively (AVX512-BF16 or AMX); see tests/test_train.py for why it
    is safe (same scores and D means as fp32)."""
    if not cpu_has_bf16():
        return False, False, {}
    timings = {}
    with torch.random.fork_rng(devices=[]):
        for name, bf16, memory_format in (
            ("fp32", False, torch.preserve_format),
            ("bf16_channels_last", True, torch.channels_last),
        ):
            gen, disc = Generator(m, cpu_kernels), Discriminator(m, cpu_kernels)
            gen.to(memory_format=memory_format)
            disc.to(memory_format=memory_format)
            opt_g = torch.optim.Adam(gen.parameters(), fused=True)
            opt_d = torch.optim.Adam(disc.parameters(), fused=True)
            real = torch.rand(batch_size, 3, m.image_size, m.image_size) * 2 - 1
            real = real.contiguous(memory_format=memory_format)
            noise = torch.randn(batch_size, m.dim_z, 1, 1)
            ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
            per_step = []
            for _ in range(5):  # the first two warm oneDNN up and are not counted
                start = time.perf_counter()
                with autocast:
                    train_step(gen, disc, opt_g, opt_d, real, noise, ones, zeros).sum().item()
                per_step.append(time.perf_counter() - start)
            timings[name] = round(statistics.median(per_step[2:]), 5)
    bf16 = timings["bf16_channels_last"] < timings["fp32"]
    return bf16, bf16, timings


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


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
    """A resumed run's history: metrics rows and sample grids up to the checkpoint's step."""
    rows = []
    if (source / "metrics.csv").is_file():
        with open(source / "metrics.csv", newline="") as f:
            rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= step]
    folder.samples_dir.mkdir(parents=True, exist_ok=True)
    for png in sorted((source / "samples").glob("step_*.png")):
        if int(png.stem.removeprefix("step_")) <= step:
            shutil.copy2(png, folder.samples_dir / png.name)
    return rows


def versions() -> dict[str, str]:
    from importlib.metadata import version

    packages = ("torch", "numpy", "hydra-core", "optuna")
    return {"python": platform.python_version(), **{p: version(p) for p in packages}}
