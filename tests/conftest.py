"""Shared fixtures: configs composed with Hydra's compose API, shrunk to test size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import gan.config  # noqa: F401  (registers the schema)

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
