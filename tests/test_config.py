"""Every shipped config option composes and builds; bad keys, types and values fail clearly."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from gan.config import UserError, validate
from gan.models import Discriminator, Generator

from .conftest import CONF, run_cli

OPTIONS = sorted((p.parent.name, p.stem) for p in CONF.glob("*/*.yaml") if p.parent.name != "sweep")
SWEEPS = sorted(p.stem for p in (CONF.parent / "sweeps").glob("*.yaml"))


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
    extra = [f"data.root={tmp_path}"] if (group, option) == ("data", "folder") else []
    cfg = tiny_cfg(f"{group}={option}", *extra)
    validate(cfg)
    if group == "model":
        z_dim, size = cfg.model.dim_z, cfg.model.image_size
        gen, disc = Generator(cfg.model), Discriminator(cfg.model)
        assert disc(gen(__import__("torch").randn(2, z_dim, 1, 1))).shape == (2,)
        assert size in (32, 64, 128)


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


def test_cli_unknown_key_exits_nonzero_naming_it(tmp_path: Path):
    result = run_cli("optim.gen_lrr=1e-3", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert "Key 'gen_lrr' not in 'OptimConfig'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", SWEEPS)
def test_every_study_composes_with_a_valid_search_space(name):
    from hydra import compose, initialize_config_dir

    from gan.sweep import TARGET, search_space

    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(
            "config", overrides=["hydra/sweeper=optuna", f"sweep={name}"], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == TARGET
    assert sweeper.direction == "maximize"
    assert sweeper.n_trials >= 1
    # the study's own values win over conf/config.yaml's: a stable sweep folder to resume in
    assert cfg.hydra.sweep.dir == f"outputs/sweeps/{sweeper.study_name}"
    if name == "quick":
        assert cfg.train.steps == 600 and cfg.model.gen_features == 8
    space, _ = search_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert space, "a study must search something"


def test_studies_say_what_they_answer():
    for name in SWEEPS:
        head = (CONF.parent / "sweeps" / f"{name}.yaml").read_text().split("defaults:")[0]
        assert "Question" in head or "study" in head, name
