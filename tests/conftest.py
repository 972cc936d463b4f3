"""Shared fixtures: configs composed with Hydra's compose API, shrunk to test size."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import gan.config
from gan.config import AugmentConfig

gan.config.register()
ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# a tiny, fast run: 32 px, a few channels, few images, metrics every 5 steps
TINY = [
    "model=tiny",
    "hardware=cpu",
    "data.num_images=64",
    "train.batch_size=16",
    "train.log_every=5",
    "train.sample_every=10",
    "train.checkpoint_every=10",
    "train.num_samples=16",
]


@pytest.fixture(scope="session")
def seed_augment() -> AugmentConfig:
    """The shipped `augment=seed` (the article's flip + RandomAffine) as an AugmentConfig."""
    return AugmentConfig(**OmegaConf.to_container(OmegaConf.load(CONF / "augment" / "seed.yaml")))


def make_cfg(*overrides: str, cache_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF)):
        return compose("config", overrides=[*TINY, f"data.cache_dir={cache_dir}", *overrides])


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the whole session, as sweep trials share one."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny_cfg(cache_dir: Path):
    def build(*overrides: str) -> DictConfig:
        return make_cfg(*overrides, cache_dir=cache_dir)

    return build


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python run.py ARGS` in a subprocess, as a user runs it."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, **popen: object) -> subprocess.Popen:
    """`python run.py ARGS` in the background, for tests that interrupt or kill it."""
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        **popen,
    )


def wait_for_steps(run_dir: Path, steps: int, timeout: float = 120) -> None:
    """Until the run in `run_dir` has read back at least `steps` steps (or `timeout` passes)."""
    summary = run_dir / "summary.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if summary.exists() and json.loads(summary.read_text())["steps_done"] >= steps:
            return
        time.sleep(0.1)
    raise AssertionError(f"{run_dir} did not read back {steps} steps within {timeout} s")


def composed(command: str) -> dict:
    """The config that `command` (`python run.py ARGS`, as pumpgan prints it) composes."""
    args = shlex.split(command)
    assert args[:2] == ["python", "run.py"], command
    with initialize_config_dir(config_dir=str(CONF)):
        return OmegaConf.to_container(compose("config", overrides=args[2:]))


def assert_commands_reproduce(sweep_dir: Path) -> int:
    """Every command a sweep wrote for a run composes to that run's own saved config: each
    trial's in trials.csv, sweep.log and gan.compare (its report card and CSV), and those of
    optimization_results.yaml and confirm.csv. Returns how many runs were checked."""
    from gan.run.command import run_command

    with open(sweep_dir / "trials.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["command"]]
    log = (sweep_dir / "sweep.log").read_text()
    for row in rows:
        run_dir = Path(row["run_dir"])
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
        assert composed(row["command"]) == saved, row["command"]
        assert run_command(run_dir) == row["command"]
        assert f"trial {row['number']}: {row['command']}\n" in log
    commands = {r["command"] for r in rows}
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    given = [results.get("best_command"), (results.get("confirmed_best") or {}).get("command")]
    given += [p["command"] for p in results.get("pareto_front", [])]
    if (sweep_dir / "confirm.csv").is_file():
        with open(sweep_dir / "confirm.csv", newline="") as f:
            given += [r["command"] for r in csv.DictReader(f)]
    assert all(c in commands for c in given if c), (given, commands)
    return len(rows)
