"""Training throughput on the CPU: the PumpGAN article's loop, as written, against pumpgan.

In one run, in interleaved rounds (each round runs every width, the two loops one after the
other, their order alternating per round), it measures training images/s of

- baseline: the seed article's loop as written, reimplemented below (its Generator and
  Discriminator with a Sigmoid head and BCELoss, weights_init, ImageFolder + PIL augmentation
  in a DataLoader with 2 workers, fp32, three `.item()` reads per step, the display pass at
  batch 0 of each epoch and the save every 100 steps). It reads the built-in pumpkins written
  once as 128 px PNG files, so that Resize(64) does real work as on the article's photos;
- pumpgan: `gan.run.train.train()`, what `run.py` calls, composed with `model=seed` at the same
  width, plus `--pumpgan-overrides` (default `hardware.precision=bf16
  hardware.channels_last=true`, the fastest setting on a CPU with native bf16;
  `--pumpgan-overrides hardware.precision=fp32` measures fp32),

both on the same pumpkins at 64 px, batch 128. Both are timed after their first `--warmup`
steps (model construction, worker start-up and the first oneDNN primitives excluded); the
default 20 - 4 = 16 timed steps are one epoch of the 2,000 images, so the baseline pays its
per-epoch costs (worker restart, display pass) once, as in a long run. Per width it prints the
median images/s over rounds, the median of the per-round ratios, the achieved GFLOP/s
(FlopCounterMode FLOPs of one step x steps/s) as a fraction of the measured fp32 and bf16
channels-last peak of G's middle layer (ConvTranspose2d(16W, 8W, 4, 2, 1), forward + backward,
batch 128), and the peak RSS of each loop.

Each timed run has a fresh process of its own (`--child`), started by this one: neither loop
inherits the other's heap, oneDNN primitive caches or allocator settings (pumpgan's
`keep_freed_memory` is process-wide), and the peak RSS is that of the timed runs themselves.

    uv run python benchmarks/throughput.py            # widths 16 32 64, 3 rounds (see below)
    uv run python benchmarks/throughput.py --quick    # width 16, 1 round, 6 steps: about a minute
    uv run python benchmarks/throughput.py --sweep [--quick]

The default run takes about half an hour on 2 cores, most of it at width 64 (1.4 TFLOP per
step: some 10 s per baseline step); `--widths 16 32` or `--rounds 1` for less.

`--sweep` runs the quick study (`run.py -m sweep=quick`) with and without
`score.stop_on_collapse` and prints the steps trained, the wall times and the compute saved.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.datasets as dset
import torchvision.transforms as transforms
import torchvision.utils as vutils
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `gan` is not installed; it imports from the checkout

from gan.config import register  # noqa: E402
from gan.data import (  # noqa: E402
    load_images,
    pumpkins,  # noqa: E402
    real_batch,
)
from gan.nets.step import build_models, train_step  # noqa: E402
from gan.run import hardware  # noqa: E402
from gan.run.train import train  # noqa: E402

BATCH, IMAGE_SIZE, PNG_SIZE = 128, 64, 128
LOOPS = ("baseline", "pumpgan")
register()  # the schema that conf/config.yaml composes

# ---- (a) the seed article's loop, as written; CPU only, so ngpu and DataParallel are dropped
DIM_Z, NUM_CHANNELS, NUM_WORKERS = 64, 3, 2
DISC_LR, GEN_LR, BETA1, BETA2 = 1e-3, 2e-3, 0.5, 0.999
DISP_EVERY = SAVE_EVERY = 100
# the article's labels are the ints 1 and 0, which make torch.full an int64 tensor that
# torch's BCELoss rejects; floats are what it meant
REAL_LABEL, FAKE_LABEL = 1.0, 0.0


def _block(conv: nn.Conv2d | nn.ConvTranspose2d, act: nn.Module, bn: bool = True) -> nn.Module:
    return nn.Sequential(conv, *([nn.BatchNorm2d(conv.out_channels)] if bn else []), act)


class SeedGenerator(nn.Module):
    def __init__(self, dim_z: int, gen_features: int, num_channels: int) -> None:
        super().__init__()
        f = gen_features
        self.block0 = _block(nn.ConvTranspose2d(dim_z, f * 32, 4, 1, 0, bias=False), nn.ReLU(True))
        self.block1 = _block(nn.ConvTranspose2d(f * 32, f * 16, 4, 2, 1, bias=False), nn.ReLU(True))
        self.block2 = _block(nn.ConvTranspose2d(f * 16, f * 8, 4, 2, 1, bias=False), nn.ReLU(True))
        self.block3 = _block(nn.ConvTranspose2d(f * 8, f * 4, 4, 2, 1, bias=False), nn.ReLU(True))
        self.block5 = nn.Sequential(nn.ConvTranspose2d(f * 4, num_channels, 4, 2, 1, bias=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.block0(z))))
        return F.tanh(self.block5(x))


class SeedDiscriminator(nn.Module):
    def __init__(self, gen_features: int, num_channels: int) -> None:
        super().__init__()
        f, act = gen_features, lambda: nn.LeakyReLU(0.2, True)
        self.block0 = _block(nn.Conv2d(num_channels, f, 4, 2, 1, bias=False), act(), bn=False)
        self.block1 = _block(nn.Conv2d(f, f, 4, 2, 1, bias=False), act())
        self.block2 = _block(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False), act())
        self.block3 = _block(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False), act())
        self.block_n = _block(nn.Conv2d(f * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(), bn=False)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.block_n(self.block3(self.block2(self.block1(self.block0(imgs)))))


def weights_init(my_model: nn.Module) -> None:
    classname = my_model.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(my_model.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(my_model.weight.data, 1.0, 0.02)
        nn.init.constant_(my_model.bias.data, 0.0)


def get_dataloader(root_path: Path) -> torch.utils.data.DataLoader:
    transform = transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomAffine(
                degrees=5, translate=(0.05, 0.025), scale=(0.95, 1.05), shear=0.025
            ),
            transforms.Resize(IMAGE_SIZE),
            transforms.CenterCrop(IMAGE_SIZE),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )
    dataset = dset.ImageFolder(root=str(root_path), transform=transform)
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=NUM_WORKERS
    )


@dataclass
class SeedLoop:
    gen_net: nn.Module
    disc_net: nn.Module
    gen_optimizer: torch.optim.Optimizer
    disc_optimizer: torch.optim.Optimizer
    criterion: nn.Module = field(default_factory=nn.BCELoss)
    fixed_noise: torch.Tensor = field(default_factory=lambda: torch.randn(64, DIM_Z, 1, 1))
    img_list: list[np.ndarray] = field(default_factory=list)
    gen_losses: list[float] = field(default_factory=list)
    disc_losses: list[float] = field(default_factory=list)


def seed_loop(width: int) -> SeedLoop:
    random.seed(13)
    torch.manual_seed(13)
    gen_net = SeedGenerator(DIM_Z, width, NUM_CHANNELS)
    disc_net = SeedDiscriminator(width, NUM_CHANNELS)
    gen_net.apply(weights_init)
    disc_net.apply(weights_init)
    betas = (BETA1, BETA2)
    return SeedLoop(
        gen_net,
        disc_net,
        torch.optim.Adam(gen_net.parameters(), lr=GEN_LR, betas=betas),
        torch.optim.Adam(disc_net.parameters(), lr=DISC_LR, betas=betas),
    )


def seed_loop_step(
    s: SeedLoop, real_cpu: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float, float, float]:
    """The article's D and G updates for one batch, with its three host reads."""
    # (1) D step: real batch, then fake batch, one backward each
    s.disc_net.zero_grad()
    batch_size = real_cpu.size(0)
    label = torch.full((batch_size,), REAL_LABEL)
    output = s.disc_net(real_cpu).view(-1)  # (B,)
    disc_real_loss = s.criterion(output, label)
    disc_real_loss.backward()
    disc_x = output.mean().item()
    noise = torch.randn(batch_size, DIM_Z, 1, 1)
    fake = s.gen_net(noise)  # (B, 3, 64, 64)
    label.fill_(FAKE_LABEL)
    output = s.disc_net(fake.detach()).view(-1)
    disc_fake_loss = s.criterion(output, label)
    disc_fake_loss.backward()
    disc_gen_z1 = output.mean().item()
    disc_loss = disc_real_loss + disc_fake_loss
    s.disc_optimizer.step()
    # (2) G step: real labels through the updated D
    s.gen_net.zero_grad()
    label.fill_(REAL_LABEL)
    output = s.disc_net(fake).view(-1)
    gen_loss = s.criterion(output, label)
    gen_loss.backward()
    disc_gen_z2 = output.mean().item()
    s.gen_optimizer.step()
    return disc_loss, gen_loss, disc_x, disc_gen_z1, disc_gen_z2


def measure_baseline(width: int, root: Path, steps: int, warmup: int, out_dir: Path) -> float:
    """Images/s of the article's loop over steps warmup+1..steps; its prints and saves go to
    `out_dir`."""
    s, dataloader = seed_loop(width), get_dataloader(root)
    iters, images, t_start, t0 = 0, 0, 0.0, time.time()
    with open(out_dir / "train.log", "w") as log:
        while iters < steps:  # the article's `for epoch in range(num_epochs)`
            for ii, data in enumerate(dataloader, 0):
                real_cpu = data[0]
                disc_loss, gen_loss, *means = seed_loop_step(s, real_cpu)
                # `ii` counts batches within an epoch: with fewer than 100 batches per epoch
                # (2,000 images), the display pass runs at the start of every epoch
                if ii % DISP_EVERY == 0:
                    noise = torch.randn(real_cpu.size(0), DIM_Z, 1, 1)
                    disc_gen_z3 = s.disc_net(s.gen_net(noise)).view(-1).mean().item()
                    values = [disc_loss.item(), gen_loss.item(), *means, disc_gen_z3]
                    print(iters, f"{time.time() - t0:.3f}", *(f"{v:.3e}" for v in values), file=log)
                s.disc_losses.append(disc_loss.item())
                s.gen_losses.append(gen_loss.item())
                if iters % SAVE_EVERY == 0:
                    save_progress(s, out_dir)
                iters += 1
                images += real_cpu.size(0)
                if iters == warmup:
                    t_start, images = time.perf_counter(), 0
                if iters == steps:
                    break
    return images / (time.perf_counter() - t_start)


def save_progress(s: SeedLoop, out_dir: Path) -> None:
    """The article's every-`save_every` grid of fixed-noise samples, losses and weights."""
    with torch.no_grad():
        fake = s.gen_net(s.fixed_noise).detach().cpu()
    s.img_list.append(vutils.make_grid(fake, padding=2, normalize=True).numpy())
    np.save(out_dir / "gen_images.npy", s.img_list)
    np.save(out_dir / "gen_losses.npy", s.gen_losses)
    np.save(out_dir / "disc_losses.npy", s.disc_losses)
    torch.save(s.gen_net.state_dict(), out_dir / "generator.h5")
    torch.save(s.disc_net.state_dict(), out_dir / "discriminator.h5")


# ---- (b) pumpgan, through gan.run.train.train as run.py calls it
def pumpgan_cfg(
    width: int, steps: int, warmup: int, n_images: int, cache_dir: Path, overrides: list[str]
) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        fixed = (
            f"model=seed model.gen_features={width} model.disc_features={width} optim=seed "
            f"train.batch_size={BATCH} train.steps={steps} train.sample_every=0 "
            "train.checkpoint_every=0 score.stop_on_collapse=false hardware=cpu "
            f"data.num_images={n_images}"
        ).split()
        # the first read-back (every log_every steps) ends the warm-up; no SWD at the end (the
        # seed loop has none, and it would count in the peak RSS)
        fixed += [f"train.log_every={warmup}", f"data.cache_dir={cache_dir}", "eval.num_images=0"]
        return compose("config", overrides=[*fixed, *overrides])


def measure_pumpgan(cfg: DictConfig, run_dir: Path) -> tuple[float, str]:
    """Images/s from metrics.csv, from the end of the first read-back chunk to the last step,
    and the precision and layout the run used (from summary.json)."""
    train(cfg, run_dir, progress_bar=False)
    with open(run_dir / "metrics.csv", newline="") as f:
        time_s = {int(r["step"]): float(r["time_s"]) for r in csv.DictReader(f)}
    first, last = cfg.train.log_every, max(time_s)
    summary = json.loads((run_dir / "summary.json").read_text())
    used = summary["precision"] + (" channels-last" if summary.get("channels_last") else "")
    return (last - first) * cfg.train.batch_size / (time_s[last] - time_s[first]), used


# ---- FLOPs, the conv peak, peak RSS
def baseline_step(width: int) -> Callable[[], object]:
    s, real = seed_loop(width), torch.rand(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    return lambda: seed_loop_step(s, real)


def pumpgan_step(cfg: DictConfig, fast_layers: list[str] | None = None) -> Callable[[], object]:
    """What train() runs each step: the batch's scaling and augmentation, then train_step, on
    the hardware `gan.run.hardware.setup` picks for `cfg` (with `fast_layers`, if given, instead
    of the swaps it picks), the nets built by train()'s `build_models` (gan/nets/step.py)."""
    hw = hardware.setup(cfg.hardware, cfg.model, BATCH)
    if fast_layers is not None:
        hw.fast_layers = fast_layers
    gen, disc, opt_g, opt_d = build_models(cfg.model, cfg.optim, hw.place)
    if cfg.hardware.compile:  # as train() does
        gen, disc = torch.compile(gen), torch.compile(disc)
    images = torch.randint(0, 256, (BATCH, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    images = images.to(hw.device)  # as train() holds the data set: on the device once

    def step() -> torch.Tensor:
        real = real_batch(images, cfg.augment, hw.memory_format)
        noise = torch.randn(BATCH, cfg.model.dim_z, 1, 1, device=hw.device)
        with hw.autocast():
            return train_step(gen, disc, opt_g, opt_d, real, noise, cfg.optim.loss)

    return step


def flops_per_step(step: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def conv_peak(width: int, bf16: bool, reps: int = 5) -> float:
    """GFLOP/s of G's middle layer, forward + backward at batch 128: the best of `reps` runs
    after two untimed ones."""
    layer = nn.ConvTranspose2d(16 * width, 8 * width, 4, 2, 1, bias=False)
    x = torch.randn(BATCH, 16 * width, 8, 8)
    if bf16:
        layer = layer.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        x = x.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
    x.requires_grad_(True)
    grad = torch.randn_like(layer(x))

    def run() -> None:
        layer(x).backward(grad)

    flops = flops_per_step(run)
    for _ in range(2):
        run()
    return flops / best_time(run, reps) / 1e9


def best_time(fn: Callable[[], object], reps: int) -> float:
    """The shortest of `reps` timed calls of fn, in seconds."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def child(args: argparse.Namespace) -> None:
    """Measure one loop in this fresh process; print its images/s, the setting it ran and this
    process's peak RSS in MiB as JSON. VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts
    from its parent's peak at the fork."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.child == "baseline":
            images = args.data_dir / "images"
            ips = measure_baseline(args.width, images, args.steps, args.warmup, Path(tmp))
            used = "fp32"
        else:
            cache, overrides = args.data_dir / "cache", args.pumpgan_overrides
            cfg = pumpgan_cfg(args.width, args.steps, args.warmup, args.images, cache, overrides)
            ips, used = measure_pumpgan(cfg, Path(tmp) / "run")
    status = Path("/proc/self/status").read_text()
    rss = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps({"images_per_s": ips, "used": used, "peak_rss_mib": rss}))


def measure(loop: str, width: int, args: argparse.Namespace, data: Path) -> dict:
    """One timed run of `loop` in a fresh process (`--child`): neither loop inherits the other's
    heap, allocator settings (pumpgan's keep_freed_memory is process-wide) or oneDNN caches."""
    command = [
        *(sys.executable, __file__, "--child", loop, "--width", str(width)),
        *("--steps", str(args.steps), "--warmup", str(args.warmup)),
        *("--images", str(args.images), "--data-dir", str(data)),
        *("--pumpgan-overrides", *args.pumpgan_overrides),
    ]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"{shlex.join(command)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


# ---- the report
def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
    cpu = names[0].split(":", 1)[1].strip() if names else platform.processor()
    return (
        f"{datetime.now().astimezone().isoformat(timespec='minutes')}, {cpu}, "
        f"{torch.get_num_threads()} torch threads of {len(names) or '?'} cores, "
        f"torch {torch.__version__}, Python {platform.python_version()}\n"
        f"command: uv run python benchmarks/{Path(sys.argv[0]).name} {shlex.join(sys.argv[1:])}"
    )


def write_pngs(n: int, folder: Path) -> None:
    """The built-in pumpkins as PNG files, in a class subfolder as ImageFolder wants."""
    folder.mkdir(parents=True)
    for i, img in enumerate(pumpkins.generate(n, PNG_SIZE, seed=0)):
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:05d}.png")


def table_row(width: int, runs: dict[str, list[dict]], cfg: DictConfig) -> str:
    """One width's figures: images/s, FLOPs and their fraction of the conv peaks, peak RSS."""
    ips = {loop: [r["images_per_s"] for r in runs[loop]] for loop in LOOPS}
    med = {loop: statistics.median(ips[loop]) for loop in LOOPS}
    ratio = statistics.median(p / b for b, p in zip(ips["baseline"], ips["pumpgan"], strict=True))
    flops = {"baseline": flops_per_step(baseline_step(width))}
    flops["pumpgan"] = flops_per_step(pumpgan_step(cfg))
    # the bf16 peak only where the CPU computes bf16 natively (emulated it is meaningless and slow)
    fp32 = conv_peak(width, bf16=False)
    bf16 = conv_peak(width, bf16=True) if hardware.cpu_has_bf16() else None
    achieved = []
    for loop in LOOPS:
        gflops = med[loop] * flops[loop] / BATCH / 1e9
        of_bf16 = f"{gflops / bf16:.0%}" if bf16 else "-"
        achieved.append(f"{gflops:.1f} ({gflops / fp32:.0%} / {of_bf16})")
    rss = {loop: max(r["peak_rss_mib"] for r in runs[loop]) for loop in LOOPS}
    return (
        f"| {width} | {med['baseline']:.1f} | {med['pumpgan']:.1f} | {ratio:.2f} | "
        f"{flops['baseline'] / 1e9:.1f} / {flops['pumpgan'] / 1e9:.1f} | {' | '.join(achieved)} | "
        f"{fp32:.0f} / {f'{bf16:.0f}' if bf16 else '-'} | "
        f"{rss['baseline']:.0f} / {rss['pumpgan']:.0f} "
        f"({rss['pumpgan'] / rss['baseline']:.2f}) |"
    )


def benchmark(args: argparse.Namespace) -> None:
    runs: dict[int, dict[str, list[dict]]] = {w: {loop: [] for loop in LOOPS} for w in args.widths}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_pngs(args.images, data / "images" / "jacks")
        cfgs = {
            w: pumpgan_cfg(
                w, args.steps, args.warmup, args.images, data / "cache", args.pumpgan_overrides
            )
            for w in args.widths
        }
        load_images(cfgs[args.widths[0]].data, IMAGE_SIZE)  # pumpgan's cache, built once
        for r in range(args.rounds):
            for w in args.widths:
                for loop in LOOPS if r % 2 == 0 else LOOPS[::-1]:
                    run = measure(loop, w, args, data)
                    runs[w][loop].append(run)
                    print(
                        f"round {r + 1}, width {w}, {loop}: {run['images_per_s']:.1f} img/s, "
                        f"peak RSS {run['peak_rss_mib']:.0f} MiB",
                        file=sys.stderr,
                    )
        rows = [table_row(w, runs[w], cfgs[w]) for w in args.widths]
    used = runs[args.widths[-1]]["pumpgan"][-1]["used"]  # precision and layout, from summary.json
    print(machine())
    print(
        f"batch {BATCH}, {IMAGE_SIZE} px, {args.images} built-in pumpkins, {args.steps} steps "
        f"of which the first {args.warmup} are not timed, {args.rounds} round(s), each run in "
        f"its own process; pumpgan: model=seed hardware=cpu {' '.join(args.pumpgan_overrides)} "
        f"(ran {used})\n"
    )
    print(
        "| width | baseline img/s | pumpgan img/s | pumpgan/baseline | GFLOP/step base / pump "
        "| baseline GFLOP/s (of fp32 / bf16 peak) | pumpgan GFLOP/s (of fp32 / bf16 peak) "
        "| conv peak GFLOP/s fp32 / bf16 | peak RSS MiB base / pump (ratio) |"
    )
    print("|---:" * 9 + "|")
    print("\n".join(rows))
    print(
        "\nimg/s: median over rounds; ratio: median of the per-round ratios. GFLOP/s: "
        "FlopCounterMode FLOPs of one step x steps/s. conv peak: ConvTranspose2d(16W, 8W, 4, 2, "
        "1) forward + backward at batch 128, fp32, and bf16 channels-last. RSS: the highest peak "
        "(VmHWM) of the timed runs' processes; the baseline's 2 DataLoader workers come on top."
    )


# ---- --sweep: compute saved by stopping collapsed trials
def run_study(
    sweep_dir: Path, cache: Path, trials: int, steps: int, *extra: str
) -> tuple[int, float]:
    """Steps trained over all trials of one quick study, and its wall time in seconds."""
    command = [sys.executable, str(ROOT / "run.py"), "-m", "sweep=quick"]
    command += [f"hydra.sweep.dir={sweep_dir}", f"data.cache_dir={cache}", *extra]
    # no SWD at the end of each trial: what is counted here is the training stop_on_collapse saves
    command += [f"hydra.sweeper.n_trials={trials}", f"train.steps={steps}", "eval.num_images=0"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    summaries = sorted(sweep_dir.glob("*/summary.json"))
    return sum(json.loads(p.read_text())["steps_done"] for p in summaries), wall


def sweep(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        with initialize_config_dir(config_dir=str(ROOT / "conf")):
            cfg = compose("config", overrides=["model=tiny", f"data.cache_dir={cache}"])
        load_images(cfg.data, cfg.model.image_size)  # the data cache, outside the timings
        on = run_study(Path(tmp) / "on", cache, args.trials, args.steps)
        off = run_study(
            Path(tmp) / "off", cache, args.trials, args.steps, "score.stop_on_collapse=false"
        )
    print(machine())
    print(
        f"quick study (sweep=quick: tiny model, 32 px, batch 64), {args.trials} trials of up to "
        f"{args.steps} steps\n"
    )
    print("| score.stop_on_collapse | steps trained | wall time s |")
    print("|---|---:|---:|")
    print(f"| true | {on[0]} | {on[1]:.1f} |")
    print(f"| false | {off[0]} | {off[1]:.1f} |")
    print(
        f"\ncompute saved by stopping at the collapse: {1 - on[0] / off[0]:.1%} of the steps; "
        f"wall time {on[1] / off[1] - 1:+.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--widths", type=int, nargs="+", help="default: 16 32 64 (quick: 16)")
    parser.add_argument("--rounds", type=int, help="default: 3 (quick: 1)")
    parser.add_argument("--steps", type=int, help="per run; default: 20 (quick: 6), --sweep 600")
    parser.add_argument("--warmup", type=int, help="untimed first steps; default: 4 (quick: 2)")
    parser.add_argument("--images", type=int, help="built-in pumpkins; default: 2000 (quick: 512)")
    parser.add_argument(
        "--pumpgan-overrides",
        nargs="*",
        default=["hardware.precision=auto"],
        help="on top of hardware=cpu; default: the precision a run picks on this machine",
    )
    parser.add_argument("--sweep", action="store_true", help="the stop-on-collapse study instead")
    parser.add_argument("--trials", type=int, help="--sweep trials; default: 10 (quick: 3)")
    parser.add_argument("--child", choices=LOOPS, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    if args.child:
        child(args)
    elif args.sweep:
        args.trials = args.trials or (3 if quick else 10)
        args.steps = args.steps or (60 if quick else 600)
        sweep(args)
    else:
        args.widths = args.widths or ([16] if quick else [16, 32, 64])
        args.rounds = args.rounds or (1 if quick else 3)
        args.steps = args.steps or (6 if quick else 20)
        args.warmup = args.warmup or (2 if quick else 4)
        args.images = args.images or (512 if quick else 2000)
        if not 0 < args.warmup < args.steps:
            parser.error("need 0 < --warmup < --steps")
        benchmark(args)


if __name__ == "__main__":
    main()
