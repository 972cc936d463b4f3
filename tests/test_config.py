"""Every shipped config option composes and builds; bad keys, types and values fail clearly."""

import re
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig
from omegaconf.errors import ValidationError
from optuna.distributions import BaseDistribution, CategoricalDistribution

from gan.config import validate
from gan.data import augment, load_images
from gan.errors import UserError
from gan.nets.models import Discriminator, Generator
from gan.study.settings import changed_settings, search_space
from gan.study.storage import TARGET

from .conftest import CONF, run_cli

OPTIONS = sorted((p.parent.name, p.stem) for p in CONF.glob("*/*.yaml") if p.parent.name != "sweep")
SWEEPS = sorted(p.stem for p in (CONF.parent / "sweeps").glob("*.yaml"))


def build(cfg: DictConfig) -> None:
    """What a run builds from its config, at test size: G and D and one forward pass through
    both, both Adams with the optim values, an augmented batch of the data's own images."""
    torch.manual_seed(0)
    m = cfg.model
    gen, disc = Generator(m), Discriminator(m)
    fake = gen(torch.randn(2, m.dim_z, 1, 1))
    assert fake.shape == (2, 3, m.image_size, m.image_size)  # (B, 3, S, S) in [-1, 1]
    assert disc(fake).shape == (2,)  # one logit per image
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    torch.optim.Adam(gen.parameters(), lr=cfg.optim.gen_lr, betas=betas)
    torch.optim.Adam(disc.parameters(), lr=cfg.optim.disc_lr, betas=betas)
    real = load_images(cfg.data, m.image_size)[:4].float() / 127.5 - 1
    assert augment(real, cfg.augment).shape == real.shape


def test_every_group_has_its_promised_options():
    have = {}
    for group, option in OPTIONS:
        have.setdefault(group, set()).add(option)
    assert have["model"] >= {"tiny", "small", "medium", "seed"}
    assert have["optim"] >= {"seed", "dcgan", "ttur"}
    assert have["augment"] >= {"none", "seed"}
    assert have["hardware"] >= {"auto", "cpu", "cuda"}
    assert have["data"] >= {"pumpkins", "folder"}


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_option_composes_and_builds(tiny_cfg, group, option, tmp_path):
    extra = []
    if (group, option) == ("data", "folder"):
        from PIL import Image

        for i in range(4):
            Image.new("RGB", (40, 36), (60 * i, 100, 200)).save(tmp_path / f"{i}.png")
        extra = [f"data.root={tmp_path}"]
    cfg = tiny_cfg(f"{group}={option}", *extra)
    validate(cfg)
    if group != "hardware":  # device, precision and fast layers: tests/test_fast.py, test_train.py
        build(cfg)


def test_any_key_can_be_overridden(tiny_cfg):
    cfg = tiny_cfg(
        "optim.gen_lr=2e-3",
        "model.gen_features=12",
        "augment.degrees=10",
        "hardware.threads=1",
        "score.eps=0.1",
        "seed=7",
    )
    assert cfg.optim.gen_lr == 2e-3
    assert cfg.model.gen_features == 12
    assert cfg.seed == 7


def test_unknown_key_names_the_key(tiny_cfg):
    with pytest.raises(ConfigCompositionException, match="optim.gen_lrr"):
        tiny_cfg("optim.gen_lrr=1e-3")


def test_wrong_type_names_the_key(tiny_cfg):
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        tiny_cfg("train.steps=many")
    assert "train.steps" in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.gen_lr=0", "optim.gen_lr=0.0 is not allowed: use a number > 0"),
        ("optim.disc_lr=-1e-3", "optim.disc_lr=-0.001 is not allowed: use a number > 0"),
        ("score.eps=0.5", "score.eps=0.5 is not allowed: use a number in (0, 0.5)"),
        ("score.eps=0", "score.eps=0.0 is not allowed: use a number in (0, 0.5)"),
        ("model.image_size=48", "model.image_size=48 is not allowed: use one of 32, 64, 128"),
        ("model.arch=resnet", "model.arch='resnet' is not allowed: use one of dcgan, seed"),
        ("optim.beta1=1.0", "optim.beta1=1.0 is not allowed: use a number in [0, 1)"),
        ("hardware.precision=fp8", "hardware.precision='fp8' is not allowed"),
        (
            "data.on_corrupt=ignore",
            "data.on_corrupt='ignore' is not allowed: use one of error, skip",
        ),
    ],
)
def test_impossible_values_fail_before_training(tiny_cfg, override, message):
    with pytest.raises(UserError) as info:
        validate(tiny_cfg(override))
    assert message in str(info.value)


def test_folder_without_root(tiny_cfg):
    with pytest.raises(UserError, match=r"data.root=None is not allowed: set data.root=PATH"):
        validate(tiny_cfg("data=folder"))


def test_cli_bad_value_exits_2_with_one_paragraph(tmp_path: Path):
    result = run_cli("model.image_size=48", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    out = result.stdout + result.stderr
    assert "model.image_size=48 is not allowed: use one of 32, 64, 128" in out
    assert "Traceback" not in out
    assert not (tmp_path / "run" / "summary.json").exists()


def test_cli_unknown_key_exits_2_naming_it(tmp_path: Path):
    result = run_cli("optim.gen_lrr=1e-3", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert "Key 'gen_lrr' not in 'OptimConfig'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["+optim.lr=0.1"], "Unknown config key(s): optim.lr."),
        (["+foo=1"], "Unknown config key(s): foo."),
        (["++optim.lr=0.1"], "Unknown config key(s): optim.lr."),
        (["+score.epsilon=0.2"], "Unknown config key(s): score.epsilon."),
        (["foo.bar=1"], "Could not override 'foo.bar': Key 'foo' not in 'Config'."),
        (["train.steps=abc"], "train.steps=abc: Value 'abc' of type 'str' could not be converted"),
        (["train.steps=1e3"], "train.steps=1e3: Value '1000.0' of type 'float' could not be"),
        (["data=nope"], "Could not find 'data/nope': Available options in 'data': folder"),
        (["optim.gen_lr=-1"], "optim.gen_lr=-1.0 is not allowed: use a number > 0"),
        (["data=folder", "data.root=EMPTY"], "holds no images"),
        (["resume=NOWHERE"], "is not a run folder"),
        (["-m", "sweep=pareto", "+hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner"],
         "Optuna's pruners work on one objective only"),
    ],
)  # fmt: skip
@pytest.mark.slow
def test_a_refused_command_is_one_paragraph_exit_2_and_leaves_nothing(tmp_path, args, said):
    """Whatever is wrong on the command line, unknown keys added with + or ++ too: one
    paragraph on stderr naming it, exit 2, and no run folder (nothing under outputs/)."""
    (tmp_path / "empty").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "empty")) for a in args]
    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    result = run_cli(*args, "hydra.sweep.dir=outputs/sweep", cwd=tmp_path)
    out = result.stdout + result.stderr  # a run's log goes to stdout, Hydra's errors to stderr
    assert result.returncode == 2, out[-2000:]
    assert "Traceback" not in out
    error = [line for line in out.splitlines() if "Error" in line or "ERROR" in line]
    assert len(error) == 1 and said in error[0], out
    assert list((tmp_path / "outputs").rglob("*")) == []


def compose_study(name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(
            "config",
            overrides=["hydra/sweeper=optuna", f"sweep={name}", *overrides],
            return_hydra_config=True,
        )


def corner(space: dict[str, BaseDistribution], end: int) -> list[str]:
    """The overrides of a trial at one end of a search space: each parameter's first (end=0) or
    last (end=-1) choice, its lower or upper bound."""
    overrides = []
    for name, d in space.items():
        value = d.choices[end] if isinstance(d, CategoricalDistribution) else (d.low, d.high)[end]
        overrides.append(f"{name}={value}")
    return overrides


@pytest.mark.parametrize("name", SWEEPS)
def test_every_study_composes_and_its_trials_build(name, cache_dir):
    cfg = compose_study(name)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == TARGET
    # pareto: the score and the SWD
    assert sweeper.direction in ("maximize", ["maximize", "minimize"])
    assert sweeper.n_trials >= 1
    # the study's own values win over conf/config.yaml's: a stable sweep folder to resume in
    assert cfg.hydra.sweep.dir == f"outputs/sweeps/{sweeper.study_name}"
    if name == "quick":
        assert cfg.train.steps == 600 and cfg.model.gen_features == 8
    if name == "confirm":  # its settings are the stability study's (tests/test_studies.py)
        assert sweeper.params is None and sweeper.confirm.study_name == "stability"
        assert cfg.train.steps == compose_study("stability").train.steps
        return
    space, _ = search_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert space, "a study must search something"
    # the trials at both ends of the search space, as the sweeper launches them, at test size
    for end in (0, -1):
        test_size = ["hardware=cpu", "data.num_images=64", f"data.cache_dir={cache_dir}"]
        trial = compose_study(name, *test_size, *corner(space, end))
        validate(trial)
        build(trial)


def leading_comment(path: Path) -> str:
    """The comment a YAML file opens with (after Hydra's `# @package` line), without the #s."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("#").strip())
    return " ".join(lines)


@pytest.mark.parametrize("name", SWEEPS)
def test_studies_say_what_they_answer(name):
    """Each study opens with its question and its scientific, nuisance and fixed hyperparameters
    (Google's tuning playbook), and every key it searches is named as scientific or nuisance."""
    head = leading_comment(CONF.parent / "sweeps" / f"{name}.yaml")
    # "Nuisance: ...", or with a remark: "Nuisance (tuned so that ...): ..."
    parts = re.split(r"\b(Question|Scientific|Nuisance|Fixed)(?: \([^)]*\))?: ", head)
    said = dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=True))
    assert list(said) == ["Question", "Scientific", "Nuisance", "Fixed"], head
    assert "?" in said["Question"], said["Question"]
    assert all(said.values()), said
    searched = compose_study(name).hydra.sweeper.params or {}  # confirm: the study's keys
    for key in searched:
        named = f"{said['Scientific']} {said['Nuisance']}"
        assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", named), (key, named)


def test_a_study_record_without_a_later_key_stands_for_the_value_it_ran_with():
    """A study recorded before a key existed ran with its default, or for a key in ADDED_KEYS
    with the value it names (eval.swd_moments: false, the SWD before its moment gap term):
    continuing it with that value is allowed, with another refused."""
    recorded = {"train.steps": 10}
    now = {"train.steps": 10, "eval.num_images_during": 0}
    assert changed_settings({}, recorded, {}, {**now, "eval.swd_moments": False}) == []
    assert changed_settings({}, recorded, {}, {**now, "eval.swd_moments": True}) == [
        "eval.swd_moments: false -> true"
    ]
    assert changed_settings({}, recorded, {}, {**now, "eval.num_images_during": 512})[0] == (
        "eval.num_images_during: 0 -> 512"
    )
