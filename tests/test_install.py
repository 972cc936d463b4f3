"""`pip install .` as a user does it: the wheel, installed into a fresh virtual environment,
runs a run, a study and gan.sample from a folder that is not the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with pumpgan's wheel in it; returns its bin/ folder. The wheel is built by
    `uv build` and installed without its dependencies, which the venv reads from this test's
    environment (a .pth line), so that no torch is downloaded: what is tested is what the wheel
    itself holds."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (CI installs it): it builds the wheel")
    tmp = tmp_path_factory.mktemp("install")
    built = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("pumpgan-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = [uv, "pip", "install", "--python", str(python), "--no-deps", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies only: this environment's editable pumpgan is a .pth of its own, which a
    # path added this way does not process, so `gan` can only come from the wheel
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_runs_a_run_a_study_and_sample_outside_the_checkout(
    installed: Path, tmp_path: Path, cache_dir: Path
) -> None:
    python = installed / "python"
    where = run_in(tmp_path, str(python), "-c", "import gan; print(gan.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), where.stdout

    tiny = [*TINY, f"data.cache_dir={cache_dir}", "train.steps=10", "eval.num_images=32"]
    helped = run_in(tmp_path, str(installed / "pumpgan"), "--help")
    assert helped.returncode == 0, helped.stderr
    assert "model: medium, seed, small, tiny" in helped.stdout

    ran = run_in(tmp_path, str(installed / "pumpgan"), *tiny, "hydra.run.dir=outputs/one")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "outputs" / "one" / "summary.json").read_text())
    assert summary["status"] == "completed"

    study = run_in(
        tmp_path,
        str(installed / "pumpgan"),
        "-m",
        "sweep=quick",
        *tiny,
        "hydra.sweeper.n_trials=2",
        "hydra.sweep.dir=outputs/sweeps/quick",
    )
    assert study.returncode == 0, study.stderr
    sweep = tmp_path / "outputs" / "sweeps" / "quick"
    assert (sweep / "optimization_results.yaml").is_file()
    # the commands a wheel install prints are the console script's, not the checkout's run.py
    assert "best_command: pumpgan " in (sweep / "optimization_results.yaml").read_text()

    sampled = run_in(
        tmp_path, str(python), "-m", "gan.sample", "outputs/one", "--n", "4", "--out", "g.png"
    )
    assert sampled.returncode == 0, sampled.stderr
    assert (tmp_path / "g.png").is_file()
    assert sys.prefix != str(installed.parent)
