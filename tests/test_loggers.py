"""The `logger` config group against real stores: TensorBoard's event files, a local MLflow
store (SQLite) holding a run's params, curves, final numbers and files, and a study's trials as
runs of one experiment; logger=csv leaves the run folder's own files only."""

import csv
import json
import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gan.config import unknown_keys
from gan.run.loggers import Logger, Loggers
from gan.run.train import train
from tests.conftest import CONF, TINY, run_cli


def mlflow_args(store: Path) -> list[str]:
    return ["logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri=sqlite:///{store}"]


def test_a_run_logs_to_tensorboard_and_mlflow_at_once(tiny_cfg, tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    run = tmp_path / "run"
    train(tiny_cfg("train.steps=20", "eval.every=10", *mlflow_args(store)), run)
    assert (run / "tensorboard").is_dir()
    client = MlflowClient(f"sqlite:///{store}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "pumpgan"]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED" and logged.data.tags["pumpgan.status"] == "completed"
    assert logged.data.params["optim.gen_lr"] == "0.0002"
    assert logged.data.params["model.gen_features"] == "8"
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    history = client.get_metric_history(logged.info.run_id, "train/loss_d")
    assert [m.step for m in history] == [int(r["step"]) for r in rows]
    assert [m.value for m in history] == pytest.approx([float(r["loss_d"]) for r in rows])
    summary = json.loads((run / "summary.json").read_text())
    assert logged.data.metrics["final/score"] == summary["score"]
    assert logged.data.metrics["final/swd"] == pytest.approx(summary["quality"]["swd"])
    swds = client.get_metric_history(logged.info.run_id, "quality/swd")
    assert [m.step for m in swds] == [10, 20, 20]  # the evaluations, then the final SWD
    files = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert files == {"summary.json", "curves.png", "final.png", "generator.pt", "best.pt"}
    # artifacts beside the local store's database
    assert Path(experiment.artifact_location.removeprefix("file://")).parent == tmp_path


def test_logger_csv_leaves_the_run_folder_only(tiny_cfg, tmp_path: Path) -> None:
    train(tiny_cfg("train.steps=5", "logger=csv"), tmp_path / "run")
    assert not (tmp_path / "run" / "tensorboard").exists()
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    "choice", [f"logger={p.stem}" for p in sorted((CONF / "logger").glob("*.yaml"))]
)
def test_every_logger_option_passes_the_key_check(tiny_cfg, choice: str) -> None:
    """What run.py checks before a run: a logger that is not chosen leaves its node null."""
    assert unknown_keys(tiny_cfg(choice)) == []
    assert unknown_keys(tiny_cfg("logger=[tensorboard,mlflow]", "+logger.wandb=1")) == [
        "logger.wandb"
    ]


class Broken(Logger):
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def scalars(self, points) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


def test_a_logger_that_fails_is_reported_once_and_left_out(caplog) -> None:
    broken, fine = Broken(), Logger()
    loggers = Loggers([broken, fine])
    with caplog.at_level(logging.WARNING):
        loggers.scalars([(1, {"train/loss_d": 1.0})])
        loggers.scalars([(2, {"train/loss_d": 1.0})])
    assert broken.calls == 1 and loggers.loggers == [fine]
    assert caplog.text.count("The broken logger failed") == 1


@pytest.mark.slow
def test_a_studys_trials_are_runs_of_one_mlflow_experiment(tmp_path: Path, cache_dir) -> None:
    store = tmp_path / "mlflow.db"
    done = run_cli(
        "-m",
        "sweep=quick",
        *TINY,
        f"data.cache_dir={cache_dir}",
        "train.steps=10",
        "eval.num_images=32",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *mlflow_args(store),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(f"sqlite:///{store}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "quick"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["sweep/0", "sweep/1"]
    assert {r.info.status for r in runs} == {"FINISHED"}
