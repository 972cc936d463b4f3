"""Config schemas: one dataclass per config group, registered with Hydra's ConfigStore.

The YAML files under `conf/` hold values; these dataclasses say which keys exist and their types,
so Hydra rejects an unknown key or a wrong type at composition, naming the key. `validate` then
checks the values that a type cannot express (a positive learning rate, a supported image size)
before any training starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from gan.errors import UserError  # noqa: F401  (imported from here by older code)


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
    # spectral normalisation of D's convs, and no BatchNorm in D (SN-GAN, Miyato et al. 2018)
    spectral_norm: bool = False


@dataclass
class OptimConfig:
    # Adam learning rate of the generator
    gen_lr: float = 2e-4
    # Adam learning rate of the discriminator
    disc_lr: float = 2e-4
    # Adam's first- and second-moment decay rates
    beta1: float = 0.5
    beta2: float = 0.999
    # adversarial loss (gan/nets/losses.py): "bce" (the non-saturating GAN loss of the DCGAN paper
    # and the article), "hinge", "lsgan" or "wgan-gp" (D without BatchNorm)
    loss: str = "bce"
    # D updates per G update (WGAN-GP's critic iterations: 5 in the paper), each on a new batch
    n_critic: int = 1
    # weight of WGAN-GP's gradient penalty (lambda, 10 in the paper)
    gp_weight: float = 10.0
    # R1 penalty on real images, gamma (0: off): D's loss += gamma / 2 * ||grad D(x)||^2
    r1_gamma: float = 0.0
    # lazy R1 (StyleGAN2): on every r1_every-th step only, scaled up by r1_every
    r1_every: int = 16
    # Adam's settings changed during the run, piecewise constant (gan/nets/schedule.py): a list
    # of {step: N, and any of gen_lr, disc_lr, beta1, beta2}, each holding from step N on
    schedule: list[dict[str, float]] = field(default_factory=list)


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
    # DiffAugment (gan/nets/diffaugment.py): comma-separated transforms of real AND generated
    # images, every time D sees them, e.g. "color,translation,cutout"; "" off
    diffaugment: str = ""


@dataclass
class HardwareConfig:
    # "auto" (cuda when available, else cpu), "cpu", or "cuda" / "cuda:N"
    device: str = "auto"
    # "fp32", "bf16" (autocast; the loss stays fp32), or "auto": bf16 and channels-last on CUDA;
    # on a CPU, whichever of fp32 and bf16 channels-last trains the model faster, timed at start
    precision: str = "auto"
    # store activations channels-last (NHWC); with precision=auto it is chosen with the precision
    channels_last: bool = False
    # wrap G and D in torch.compile
    compile: bool = False
    # on a CPU, gan/nets/fast.py's layers: some of the nets' layers swapped for subclasses that
    # compute the same thing faster (same weights and checkpoints); false: plain torch layers
    fast_layers: bool = True
    # on a CPU, flush denormal floats (below ~1.2e-38, slow on x86) to zero, in and out of every
    # op (torch.set_flush_denormal): a guard; the default run makes none (docs/performance.md)
    flush_denormal: bool = True
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
    steps: int = 4000
    batch_size: int = 64
    # per-step metrics are read back from the device and written every this many steps
    log_every: int = 25
    # a fixed-noise sample grid every this many steps (0: only the first and the final grid)
    sample_every: int = 250
    # checkpoints/last.pt every this many steps (and at the end, a collapse or Ctrl-C)
    checkpoint_every: int = 500
    # images in a sample grid (drawn from one fixed noise batch for the whole run)
    num_samples: int = 64
    # exponential moving average of G's weights with this decay (e.g. 0.999), which then makes
    # the sample grids, the SWD and checkpoints/generator.pt; 0: off
    ema: float = 0.0


@dataclass
class ScoreConfig:
    # a step is healthy when D(x) and D(G(z)) both lie in [eps, 1 - eps]
    eps: float = 0.03
    # consecutive unhealthy steps that make a collapse
    patience: int = 50
    # stop training at the collapse (saves the rest of the budget)
    stop_on_collapse: bool = True
    # 0: off (the score of docs/design.md). > 0: a run that the D means did not collapse, but whose
    # fixed-noise sample grids stay less varied than this (1.0 = as varied as the data) from
    # some sample point to the end, collapses there: catches one-image and nothing-learned
    # runs, which the D means cannot see (gan/run/score.py)
    min_diversity: float = 0.0


@dataclass
class EvalConfig:
    # generated images, and as many real ones (at most the data set), that the sliced Wasserstein
    # distance compares (gan/run/quality.py); 0: no SWD (benchmarks that time the training alone)
    num_images: int = 2048
    # SWD every this many steps during training, into eval.csv (0: only at the end of the run)
    every: int = 0
    # images of those evaluations during training, fewer for a cheaper one (a pruner compares
    # runs at one step on it); 0: num_images. The last step's, the run's result, uses num_images
    num_images_during: int = 0
    # add to each SWD level the gap between the sets' per-channel means and spreads (so that
    # contrast, brightness and colour count); false: the paper's SWD, blind to them
    swd_moments: bool = True


@dataclass
class TensorBoardLoggerConfig:
    # (no options: the events go to the run folder's tensorboard/)
    pass


@dataclass
class MlflowLoggerConfig:
    # the MLflow store: a database URL (sqlite:///FILE, postgresql://...), a tracking server
    # (http://HOST:5000) or a folder; conf/logger/mlflow.yaml sets $MLFLOW_TRACKING_URI, else
    # the local sqlite:///outputs/mlflow.db
    tracking_uri: str = "sqlite:///outputs/mlflow.db"
    # the experiment of the run's MLflow run; null: a study's name for its trials, else pumpgan
    experiment: str | None = None
    # where a new experiment keeps its artifacts; null: beside a sqlite store's database
    # (outputs/mlartifacts), else the server's default
    artifact_location: str | None = None


@dataclass
class LoggerConfig:
    # the `logger` config group (gan/run/loggers.py): each option sets its own node, and
    # `logger=[tensorboard,mlflow]` sets several; a node left null is a logger not used
    tensorboard: TensorBoardLoggerConfig | None = None
    mlflow: MlflowLoggerConfig | None = None


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # seed of the training run: weights, noise, batch order, augmentation
    seed: int = 0
    # path of a run folder to continue from its checkpoints/last.pt
    resume: str | None = None


def register() -> None:
    """Store the schema in Hydra's ConfigStore as `pumpgan_schema`, the first default of
    conf/config.yaml. Called by what composes configs (gan/cli.py, the tests, the benchmarks),
    so that importing the schemas (gan/nets/models.py does) does not import Hydra."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="pumpgan_schema", node=Config, replace=True)


IMAGE_SIZES = (32, 64, 128)
ARCHS = ("dcgan", "seed")
LOSSES = ("bce", "hinge", "lsgan", "wgan-gp")
PRECISIONS = ("auto", "fp32", "bf16")
DIFFAUGMENT = ("color", "translation", "cutout")  # gan/nets/diffaugment.py


Check = Callable[[str, str, Callable[[Any], bool], str], None]
POSITIVE_INT: tuple[Callable[[Any], bool], str] = ((lambda v: v >= 1), "use an integer >= 1")


def one_of(options: tuple[str, ...]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options), f"use one of {', '.join(options)}"


def validate(cfg: DictConfig | Config) -> None:
    """Check what a type cannot: raise UserError listing every bad key and what is allowed."""
    problems: list[str] = []

    def check(group: str, keys: str, ok: Callable[[Any], bool], allowed: str) -> None:
        node = getattr(cfg, group) if group else cfg
        for key in keys.split():
            value = getattr(node, key)
            if not ok(value):
                name = f"{group}.{key}" if group else key
                problems.append(f"{name}={value!r} is not allowed: {allowed}")

    check_nets(cfg, check)
    check_run(cfg, check)
    problems += schedule_problems(cfg.optim.schedule)
    if cfg.eval.every and not cfg.eval.num_images:
        problems.append("eval.every needs eval.num_images > 0: set eval.num_images=2048")
    if problems:
        raise UserError(
            "Invalid config: " + "; ".join(problems) + ". Fix it with KEY=VALUE on the command "
            "line (or in the YAML under conf/) and run again; nothing was trained or written."
        )


def check_nets(cfg: DictConfig | Config, check: Check) -> None:
    """The model, the optimizer and the augmentation."""
    check("model", "arch", *one_of(ARCHS))
    check(
        "model",
        "image_size",
        lambda v: v in IMAGE_SIZES,
        "use one of 32, 64, 128 (each adds or removes a stride-2 block)",
    )
    check("model", "gen_features disc_features dim_z", *POSITIVE_INT)
    check("optim", "gen_lr disc_lr", lambda v: math.isfinite(v) and v > 0, "use a number > 0")
    check("optim", "beta1 beta2", lambda v: 0 <= v < 1, "use a number in [0, 1)")
    check("optim", "loss", *one_of(LOSSES))
    check("optim", "n_critic r1_every", *POSITIVE_INT)
    check(
        "optim",
        "gp_weight r1_gamma",
        lambda v: math.isfinite(v) and v >= 0,
        "use a number >= 0 (0: off)",
    )
    check(
        "augment",
        "diffaugment",
        lambda v: all(p.strip() in DIFFAUGMENT for p in v.split(",") if p.strip()),
        f"use a comma-separated list of {', '.join(DIFFAUGMENT)}, or '' (off)",
    )
    check("train", "ema", lambda v: 0 <= v < 1, "use a decay in [0, 1), e.g. 0.999 (0: off)")
    check("augment", "hflip affine_p", lambda v: 0 <= v <= 1, "use a probability in [0, 1]")
    check("augment", "degrees", lambda v: 0 <= v <= 180, "use degrees in [0, 180]")
    check("augment", "shear", lambda v: 0 <= v < 90, "use degrees in [0, 90)")
    check("augment", "translate_x translate_y", lambda v: 0 <= v <= 1, "use a fraction in [0, 1]")
    scale_max = cfg.augment.scale_max
    check(
        "augment",
        "scale_min",
        lambda v: 0 < v <= scale_max,
        f"use 0 < scale_min <= scale_max (= {scale_max})",
    )


# the optim keys optim.schedule may change: what an Adam's param groups hold
SCHEDULE_KEYS = ("gen_lr", "disc_lr", "beta1", "beta2")

# what a resumed run takes from its checkpoint, not from its config: changing them on resume
# would not change what trains (gan.cli refuses it; model.* has its own refusal there), and a
# population's members cannot search them (gan.study.pbt.unsearchable)
RESUME_KEEPS = (
    "seed", "data", "train.batch_size", "train.num_samples", "train.ema", "optim.loss",
    "eval.swd_moments",  # eval.csv's rows compare with each other
)  # fmt: skip
RESUME_FREE = ("data.cache_dir",)  # where the data is cached, not what it is


def schedule_problems(schedule: Any) -> list[str]:
    """What is wrong with an optim.schedule, in words (empty when nothing is)."""
    found: list[str] = []
    steps = []
    for i, entry in enumerate(schedule):
        step = entry.get("step")
        if not isinstance(step, int | float) or step < 0 or step != int(step):
            found.append(f"optim.schedule entry {i} needs a `step`, an integer >= 0")
        else:
            steps.append(int(step))
        others = sorted(set(entry) - {"step", *SCHEDULE_KEYS})
        if others:
            found.append(
                f"optim.schedule entry {i} sets {', '.join(others)}: a schedule changes only "
                f"{', '.join(SCHEDULE_KEYS)}"
            )
        for key in SCHEDULE_KEYS:
            lr = key.endswith("_lr")
            if key in entry and not (entry[key] > 0 if lr else 0 <= entry[key] < 1):
                allowed = "a number > 0" if lr else "a number in [0, 1)"
                found.append(f"optim.schedule entry {i} {key}={entry[key]}: use {allowed}")
    if steps != sorted(set(steps)):
        found.append("optim.schedule's steps must increase from entry to entry")
    return found


def check_run(cfg: DictConfig | Config, check: Check) -> None:
    """Where the run computes, its data, its budget, the score and the evaluation."""
    check(
        "hardware",
        "device",
        lambda v: v in ("auto", "cpu", "cuda") or v.startswith("cuda:"),
        "use auto, cpu, cuda or cuda:N",
    )
    check("hardware", "precision", *one_of(PRECISIONS))
    check("hardware", "threads", lambda v: v >= 0, "use 0 (torch's default) or more")
    check("data", "name", *one_of(("pumpkins", "folder")))
    if cfg.data.name == "folder":
        check("data", "root", bool, "set data.root=PATH to your image folder")
    check("data", "num_images", *POSITIVE_INT)
    check("data", "on_corrupt", *one_of(("error", "skip")))
    check(
        "data",
        "background",
        lambda v: len(v) == 3 and all(0 <= c <= 255 for c in v),
        "use three integers in [0, 255], e.g. [0,0,0]",
    )
    check("train", "steps batch_size log_every num_samples", *POSITIVE_INT)
    check(
        "train", "sample_every checkpoint_every", lambda v: v >= 0, "use 0 (off) or an integer >= 1"
    )
    check("score", "eps", lambda v: 0 < v < 0.5, "use a number in (0, 0.5)")
    check("score", "patience", *POSITIVE_INT)
    check(
        "score",
        "min_diversity",
        lambda v: math.isfinite(v) and v >= 0,
        "use 0 (off) or a sample diversity > 0, e.g. 0.2",
    )
    check("eval", "num_images", lambda v: v == 0 or v >= 2, "use 0 (no SWD) or an integer >= 2")
    check("eval", "num_images_during", lambda v: v == 0 or v >= 2, "use 0 (num_images) or >= 2")
    check("eval", "every", lambda v: v >= 0, "use 0 (only at the end) or an integer >= 1")


def unknown_keys(cfg: DictConfig) -> list[str]:
    """Dotted keys of a composed config (without `hydra`) that the schema does not have: what
    `+key=value` or `++key=value` added, which no part of pumpgan would read."""
    # every logger's node filled in: their keys are known whether or not a logger is chosen
    loggers = LoggerConfig(tensorboard=TensorBoardLoggerConfig(), mlflow=MlflowLoggerConfig())
    schema = OmegaConf.structured(Config(logger=loggers))
    known = set(flatten(cast(dict[str, Any], OmegaConf.to_container(schema))))
    # and the nodes above them, which a logger not chosen leaves null (logger.mlflow: null)
    known |= {k.rsplit(".", i)[0] for k in list(known) for i in range(1, k.count(".") + 1)}
    task = {str(k): v for k, v in cast(dict, OmegaConf.to_container(cfg)).items() if k != "hydra"}
    return [k for k in flatten(task) if k not in known]


def check_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not have, however they were written (`+k=v`, `++k=v`)."""
    if unknown := unknown_keys(cfg):
        raise UserError(
            f"Unknown config key(s): {', '.join(unknown)}. pumpgan reads only the keys of its "
            "schema (`python run.py --help` lists them with their defaults), so the value would "
            "be ignored: check the spelling and drop the + or ++ in front of it; nothing was "
            "trained or written."
        )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: {"optim": {"gen_lr": 1}} -> {"optim.gen_lr": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# keys that older pumpgan versions wrote into a run's .hydra/config.yaml and that no longer exist
# (a resumed run drops them from its saved config)
REMOVED_KEYS = ("hardware.cpu_kernels", "eval.swd_norm")
# keys added since, whose value in the runs and studies made before them was not today's default:
# the value a saved config or a study's recorded settings without the key stands for
ADDED_KEYS = {"eval.swd_moments": False}


def implied_values() -> dict[str, Any]:
    """What a saved config or a study's recorded settings without a key stands for, by dotted key:
    the schema's default (a key added later had it before it existed), or ADDED_KEYS' value."""
    schema = OmegaConf.to_container(OmegaConf.structured(Config))
    return {**flatten(cast(dict[str, Any], schema)), **ADDED_KEYS}


def saved_as_now(saved: DictConfig) -> DictConfig:
    """An old run's saved config in this schema's keys: without the REMOVED_KEYS, with each of the
    ADDED_KEYS it lacks set to the value it ran with (in place)."""
    for dotted in REMOVED_KEYS:
        group, key = dotted.split(".")
        if group in saved and key in saved[group]:
            del saved[group][key]
    for dotted, value in ADDED_KEYS.items():
        if OmegaConf.select(saved, dotted) is None:
            OmegaConf.update(saved, dotted, value, force_add=True)
    return saved
