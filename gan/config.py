"""Config schemas: one dataclass per config group, registered with Hydra's ConfigStore.

The YAML files under `conf/` hold values; these dataclasses say which keys exist and their types,
so Hydra rejects an unknown key or a wrong type at composition, naming the key. `validate` then
checks the values that a type cannot express (a positive learning rate, a supported image size)
before any training starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig


class UserError(Exception):
    """Bad input from the user (config, data folder, resume path): shown as one paragraph, no
    traceback, and nothing already written is lost."""


@dataclass
class ModelConfig:
    # "dcgan": Radford et al.'s layout (G halves its width each block, D doubles it);
    # "seed": the PumpGAN article's exact pair (G from 32x width, D widths 1, 1, 2, 4 x width)
    arch: str = "dcgan"
    # base width of the generator: channels of its last hidden block (dcgan) or the unit (seed)
    gen_features: int = 32
    # base width of the discriminator: channels of its first block
    disc_features: int = 32
    # length of the latent noise vector z
    dim_z: int = 100
    # side of the square images in pixels: 32, 64 or 128 (each adds or removes a stride-2 block)
    image_size: int = 32


@dataclass
class OptimConfig:
    # Adam learning rate of the generator
    gen_lr: float = 2e-4
    # Adam learning rate of the discriminator
    disc_lr: float = 2e-4
    # Adam's first- and second-moment decay rates
    beta1: float = 0.5
    beta2: float = 0.999
    # adversarial loss: "bce" (the non-saturating GAN loss of the DCGAN paper and the article)
    loss: str = "bce"


@dataclass
class AugmentConfig:
    # probability of a horizontal flip per image
    hflip: float = 0.0
    # probability that an image gets the random affine transform below
    affine_p: float = 0.0
    # maximum rotation, degrees (uniform in [-degrees, degrees])
    degrees: float = 0.0
    # maximum shift as a fraction of the width and of the height
    translate_x: float = 0.0
    translate_y: float = 0.0
    # zoom factor range
    scale_min: float = 1.0
    scale_max: float = 1.0
    # maximum shear along x, degrees
    shear: float = 0.0


@dataclass
class HardwareConfig:
    # "auto" (cuda when available, else cpu), "cpu", or "cuda" / "cuda:N"
    device: str = "auto"
    # "auto" (fp32 for now), "fp32", or "bf16" (autocast; the loss stays fp32)
    precision: str = "auto"
    # store activations channels-last (NHWC), faster for convolutions on most backends
    channels_last: bool = False
    # wrap G and D in torch.compile
    compile: bool = False
    # CPU threads for torch; 0 keeps torch's default (one per core)
    threads: int = 0


@dataclass
class DataConfig:
    # "pumpkins" (built in, generated on first use) or "folder" (your images under `root`)
    name: str = "pumpkins"
    # folder of images for name=folder, searched recursively (png, jpg, jpeg, webp, bmp)
    root: str | None = None
    # how many built-in pumpkins to generate (ignored for folder)
    num_images: int = 2000
    # seed of the built-in generator: the data set, not the training run
    data_seed: int = 0
    # where decoded images are cached as uint8 arrays
    cache_dir: str = "~/.cache/pumpgan"
    # what to do with a file that cannot be decoded: "error" or "skip" (and report the count)
    on_corrupt: str = "error"
    # RGB colour that transparent pixels are composited onto, 0-255
    background: list[int] = field(default_factory=lambda: [0, 0, 0])


@dataclass
class TrainConfig:
    # number of optimisation steps (one D update and one G update each)
    steps: int = 2000
    batch_size: int = 64
    # per-step metrics are read back from the device and written every this many steps
    log_every: int = 25
    # a fixed-noise sample grid every this many steps (0: only the first and the final grid)
    sample_every: int = 250
    # checkpoints/last.pt every this many steps (and at the end, a collapse or Ctrl-C)
    checkpoint_every: int = 500
    # images in a sample grid (drawn from one fixed noise batch for the whole run)
    num_samples: int = 64


@dataclass
class ScoreConfig:
    # a step is healthy when D(x) and D(G(z)) both lie in [eps, 1 - eps]
    eps: float = 0.05
    # consecutive unhealthy steps that make a collapse
    patience: int = 50
    # stop training at the collapse (saves the rest of the budget)
    stop_on_collapse: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    # seed of the training run: weights, noise, batch order, augmentation
    seed: int = 0
    # path of a run folder to continue from its checkpoints/last.pt
    resume: str | None = None


def register() -> None:
    ConfigStore.instance().store(name="pumpgan_schema", node=Config)


register()

IMAGE_SIZES = (32, 64, 128)
ARCHS = ("dcgan", "seed")
LOSSES = ("bce",)
PRECISIONS = ("auto", "fp32", "bf16")


def validate(cfg: DictConfig | Config) -> None:
    """Check the values a type cannot: raise UserError listing every bad key with what is allowed."""
    problems: list[str] = []

    def check(ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            problems.append(f"{key}={value!r} is not allowed: {allowed}")

    def positive(key: str, value: float) -> None:
        check(math.isfinite(value) and value > 0, key, value, "use a number > 0")

    m, o, a, h, d, t, s = (
        cfg.model, cfg.optim, cfg.augment, cfg.hardware, cfg.data, cfg.train, cfg.score
    )
    check(m.arch in ARCHS, "model.arch", m.arch, f"use one of {', '.join(ARCHS)}")
    check(
        m.image_size in IMAGE_SIZES, "model.image_size", m.image_size,
        "use one of 32, 64, 128 (each adds or removes a stride-2 block)",
    )
    for key in ("gen_features", "disc_features", "dim_z"):
        check(m[key] >= 1, f"model.{key}", m[key], "use an integer >= 1")
    positive("optim.gen_lr", o.gen_lr)
    positive("optim.disc_lr", o.disc_lr)
    for key in ("beta1", "beta2"):
        check(0 <= o[key] < 1, f"optim.{key}", o[key], "use a number in [0, 1)")
    check(o.loss in LOSSES, "optim.loss", o.loss, f"use one of {', '.join(LOSSES)}")
    for key in ("hflip", "affine_p"):
        check(0 <= a[key] <= 1, f"augment.{key}", a[key], "use a probability in [0, 1]")
    check(0 <= a.degrees <= 180, "augment.degrees", a.degrees, "use degrees in [0, 180]")
    check(0 <= a.shear < 90, "augment.shear", a.shear, "use degrees in [0, 90)")
    for key in ("translate_x", "translate_y"):
        check(0 <= a[key] <= 1, f"augment.{key}", a[key], "use a fraction in [0, 1]")
    check(
        0 < a.scale_min <= a.scale_max, "augment.scale_min", a.scale_min,
        f"use 0 < scale_min <= scale_max (= {a.scale_max})",
    )
    device_ok = h.device in ("auto", "cpu", "cuda") or h.device.startswith("cuda:")
    check(device_ok, "hardware.device", h.device, "use auto, cpu, cuda or cuda:N")
    check(
        h.precision in PRECISIONS, "hardware.precision", h.precision,
        f"use one of {', '.join(PRECISIONS)}",
    )
    check(h.threads >= 0, "hardware.threads", h.threads, "use 0 (torch's default) or more")
    check(d.name in ("pumpkins", "folder"), "data.name", d.name, "use pumpkins or folder")
    if d.name == "folder":
        check(bool(d.root), "data.root", d.root, "set data.root=PATH to your image folder")
    check(d.num_images >= 1, "data.num_images", d.num_images, "use an integer >= 1")
    check(
        d.on_corrupt in ("error", "skip"), "data.on_corrupt", d.on_corrupt, "use error or skip"
    )
    check(
        len(d.background) == 3 and all(0 <= c <= 255 for c in d.background),
        "data.background", list(d.background), "use three integers in [0, 255], e.g. [0,0,0]",
    )
    for key in ("steps", "batch_size", "log_every", "num_samples"):
        check(t[key] >= 1, f"train.{key}", t[key], "use an integer >= 1")
    for key in ("sample_every", "checkpoint_every"):
        check(t[key] >= 0, f"train.{key}", t[key], "use 0 (off) or an integer >= 1")
    check(0 < s.eps < 0.5, "score.eps", s.eps, "use a number in (0, 0.5)")
    check(s.patience >= 1, "score.patience", s.patience, "use an integer >= 1")
    if problems:
        raise UserError(
            "Invalid config: " + "; ".join(problems) + ". Fix the value in the override on the "
            "command line (or in conf/), e.g. `python run.py model.image_size=64`."
        )
