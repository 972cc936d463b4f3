"""Every command in the README's ```bash blocks, followed as a user would, at test size: run.py
commands compose and pass the config checks (their study's sweep folder is the one the README
names); gan.sample, gan.data and gan.compare run for real on a tiny run; the benchmarks' flags
are in their --help; the study database is where optuna-dashboard is pointed. A command form
this file does not know fails the test, so that the README cannot drift from the code."""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from gan.cli import resumed_config
from gan.config import check_keys, validate
from gan.run.train import train
from gan.study.storage import sqlite_url
from tests.conftest import CONF, ROOT, make_cfg

pytestmark = pytest.mark.slow  # the benchmarks' --help and run.py --cfg job in subprocesses

RUN_PLACEHOLDER = "outputs/DATE/TIME"
TOOLS = {"sync", "pytest", "ruff", "mypy"}  # `uv sync`, `uv run pytest`, ... : not pumpgan's


def readme_commands() -> list[str]:
    """The README's bash commands, one per entry (continued lines joined, comments dropped)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip()]


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A folder to follow the README in: a home with ~/pictures/jacks, and outputs/ holding a
    tiny run (for outputs/DATE/TIME) and the sweep folders the README compares."""
    where = tmp_path_factory.mktemp("readme")
    jacks = where / "home" / "pictures" / "jacks"
    jacks.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (40, 40), (200, 100 + 30 * i, 0)).save(jacks / f"{i}.png")
    run = where / "outputs" / "run"
    cfg = make_cfg("train.steps=10", "eval.num_images=32", "eval.every=5", cache_dir=cache_dir)
    train(cfg, run)
    hydra = run / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (hydra / "overrides.yaml").write_text("[]\n")
    for study in ("quick", "stability"):  # gan.compare takes any folder of run folders
        (where / "outputs" / "sweeps" / study).mkdir(parents=True)
        shutil.copytree(run, where / "outputs" / "sweeps" / study / "0")
    return where


def args_of(command: str, place: Path) -> list[str]:
    """The command's words after `uv run [python]`, with the README's placeholders made real."""
    words = shlex.split(command.replace("$HOME", str(place / "home")))
    words = [str(place / "home") + w[1:] if w.startswith("~/") else w for w in words]
    words = [w.replace(RUN_PLACEHOLDER, str(place / "outputs" / "run")) for w in words]
    assert words[0] == "uv", command
    if words[1] != "run":  # uv sync
        return words[1:]
    return words[3:] if words[2] == "python" else words[2:]


def composed(args: list[str]) -> DictConfig:
    """What `python run.py ARGS` composes (with its hydra config), checked as run.py checks it;
    with -m, each run of a comma-separated sweep (the last one's config is returned)."""
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    if len(overrides) < len(args):
        parsed = OverridesParser.create().parse_overrides(overrides)
        values = [
            [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
            if o.is_sweep_override()
            else [o.input_line]
            for o in parsed
        ]
        runs = [list(run) for run in itertools.product(*values)]
        return [composed_one(run) for run in runs][-1]
    return composed_one(overrides)


def composed_one(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_keys(job)
    if job.resume:
        job = resumed_config(job, overrides, dict(cfg.hydra.runtime.choices))
    validate(job)
    return cfg


def sweep_folder(name: str) -> str:
    """The folder a study writes to, by its name in the README's paths."""
    study = "sweep=quick" if name == "quick" else "hydra/sweeper=optuna"
    return str(composed([study]).hydra.sweep.dir)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_readme_command_works(command: str, place: Path, monkeypatch) -> None:
    monkeypatch.chdir(place)
    args = args_of(command, place)
    if args[0] in TOOLS:
        if "-m" in args:
            assert args[args.index("-m") + 1] == "not slow"
            assert '"slow: ' in (ROOT / "pyproject.toml").read_text()
        return
    if args[0] == "run.py" and "--config-dir" in args:
        # the file gan.compare --export wrote (the command before it in the README)
        export = [c for c in COMMANDS if "--export best.yaml" in c]
        assert export, "the README runs best.yaml without exporting it first"
        assert gan_compare(args_of(export[0], place)) == 0
        done = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *args[1:], "--cfg", "job"],
            cwd=place,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return
    if args[0] == "run.py":
        cfg = composed(args[1:])
        for word in args[1:]:  # a storage URL the README names is the sweeper's
            if word.startswith("hydra.sweeper.storage="):
                assert cfg.hydra.sweeper.storage == word.split("=", 1)[1]
        return
    if args[0] == "optuna-dashboard":
        (url,) = args[1:]
        name = url.split("/")[-2]
        assert url == sqlite_url(sweep_folder(name)).replace(str(place) + "/", "", 1)
        return
    if args[:2] == ["-m", "gan.sample"]:
        from gan.sample import main

        assert main(args[2:]) == 0
        return
    if args[:2] == ["-m", "gan.data"]:
        from gan.data.__main__ import main as preview

        preview(args[2:])
        return
    if args[:2] == ["-m", "gan.compare"]:
        for path in (a for a in args if a.startswith("outputs/sweeps/")):
            assert path == sweep_folder(path.split("/")[2])
        assert gan_compare(args) == 0
        return
    if args[0].startswith("benchmarks/"):
        helped = subprocess.run(
            [sys.executable, str(ROOT / args[0]), "--help"], capture_output=True, text=True
        )
        assert helped.returncode == 0, helped.stderr
        for flag in (a for a in args[1:] if a.startswith("--")):
            assert flag in helped.stdout, f"{args[0]} has no {flag}"
        return
    pytest.fail(f"the README command {command!r} is not checked here: add its kind")


def gan_compare(args: list[str]) -> int:
    from gan.report.compare import main

    return main(args[2:] if args[0] == "-m" else args)
