"""Where a run's numbers go besides the files of its run folder (the `logger` config group):

- `tensorboard` (the default): events in the run folder's tensorboard/ (scalars, the sample
  grids, the HParams row), for `tensorboard --logdir outputs/`.
- `mlflow`: one MLflow run per run folder in an experiment (a study's name for its trials, else
  `logger.mlflow.experiment`): every config value as a param, the training curves, the SWDs and
  the final numbers as metrics, summary.json, curves.png, the final grid and generator.pt (and
  best.pt) as artifacts, its status when it ends. The store is logger.mlflow.tracking_uri: by
  default $MLFLOW_TRACKING_URI, else the local sqlite:///outputs/mlflow.db
  (`mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db`).
- `csv` / `none`: nothing besides the run folder, whose metrics.csv, eval.csv and summary.json
  every run writes.

Several at once: `logger=[tensorboard,mlflow]`. A logger that cannot start (mlflow not installed,
a store that cannot be reached) refuses the run before it trains; one that fails later (a
tracking server that went away, a full disk) is reported once and left out for the rest of the
run: logging never stops training.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gan.errors import UserError

log = logging.getLogger("gan.run.train")


@dataclass
class Ending:
    """What the loggers get as a run ends: its settings (an HParams row: gan.run.folder.hparams),
    final numbers (score, swd, diversity, steps_done, images_per_s), output files and status."""

    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    files: list[Path]
    status: str


class Logger:
    """What a run tells a logger; each method does nothing unless a logger needs it."""

    name = "logger"

    def scalars(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Numbers at steps, (step, {tag: value}) each: train/loss_d, quality/swd, ..."""

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        """A sample grid (C, H, W uint8) at a step."""

    def end(self, run: Ending) -> None:
        """Once, as the run ends."""

    def close(self) -> None:
        """Flush and let go (also after a failure)."""


class TensorBoard(Logger):
    name = "tensorboard"

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def scalars(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        for step, values in points:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        self.writer.add_image(tag, grid, step)

    def end(self, run: Ending) -> None:
        """TensorBoard's HParams tab (tensorboard/hparams): the settings (the same keys for
        every run) against the final numbers, so that `tensorboard --logdir outputs/` compares
        runs and a study's trials."""
        numbers = {f"hparams/{k}": v for k, v in run.metrics.items()}
        params = dict(run.params) or {"run": self.run_dir.name}
        self.writer.add_hparams(params, numbers, run_name="hparams")
        self.writer.add_scalar("score", run.metrics["score"], int(run.metrics["steps_done"]))

    def close(self) -> None:
        self.writer.close()


# summary.json's status -> MLflow's run status (a collapsed or pruned run ended as it should)
MLFLOW_STATUS = {"failed": "FAILED", "interrupted": "KILLED"}
# a tracking server that does not answer: MLflow's own retries (7, backing off up to minutes)
# would hold training up for minutes per call; these fail it within about half a minute
HTTP_PATIENCE = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
PARAMS_PER_CALL, METRICS_PER_CALL = 100, 1000  # the most MLflow takes in one log_batch


class MLflow(Logger):
    name = "mlflow"

    def __init__(self, cfg: Any, run_dir: Path, experiment: str, params: Mapping[str, Any]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError(
                "logger=mlflow needs the mlflow package, which is not installed: `uv sync "
                "--extra mlflow` (or `pip install mlflow`), or choose another logger "
                "(logger=tensorboard, the default)."
            ) from None
        for name, value in HTTP_PATIENCE.items():  # unless the user set them
            os.environ.setdefault(name, value)
        self.client = MlflowClient(tracking_uri=cfg.tracking_uri)
        self.run_id = self.client.create_run(
            self.experiment_id(experiment, cfg.tracking_uri, cfg.artifact_location),
            run_name=f"{run_dir.parent.name}/{run_dir.name}",
            tags={"pumpgan.run_dir": str(run_dir.resolve())},
        ).info.run_id
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[i : i + PARAMS_PER_CALL])

    def experiment_id(self, name: str, tracking_uri: str, artifact_location: str | None) -> str:
        """The experiment's id, created on first use (by whichever trial of a study is first;
        another one creating it at the same moment is not an error)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        if artifact_location is None and tracking_uri.startswith("sqlite:///"):
            # artifacts beside a local store's database, not in the working folder
            database = Path(tracking_uri.removeprefix("sqlite:///"))
            artifact_location = (database.parent / "mlartifacts").resolve().as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=artifact_location))
        except Exception:  # noqa: BLE001 - created by another trial meanwhile
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def scalars(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, step) for step, values in points for k, v in values.items()
        ]
        for i in range(0, len(metrics), METRICS_PER_CALL):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + METRICS_PER_CALL])

    def end(self, run: Ending) -> None:
        step = int(run.metrics["steps_done"])
        self.scalars([(step, {f"final/{k}": v for k, v in run.metrics.items()})])
        self.client.set_tag(self.run_id, "pumpgan.status", run.status)
        for path in run.files:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(run.status, "FINISHED"))


class Loggers:
    """The run's loggers as one: each call goes to every logger, and a logger whose call fails
    is reported and dropped (the run goes on with the others and its own files)."""

    def __init__(self, loggers: list[Logger]) -> None:
        self.loggers = loggers

    def scalars(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        self._each("scalars", points)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        self._each("image", tag, grid, step)

    def end(self, run: Ending) -> None:
        self._each("end", run)

    def close(self) -> None:
        self._each("close")

    def _each(self, method: str, *args: Any) -> None:
        for logger in list(self.loggers):
            try:
                getattr(logger, method)(*args)
            except Exception as e:  # noqa: BLE001 - logging never stops training
                log.warning(
                    "The %s logger failed (%s: %s) and is left out for the rest of this run; "
                    "the run folder has everything it would have logged",
                    *(logger.name, type(e).__name__, e),
                )
                self.loggers.remove(logger)


def open_loggers(cfg: Any, run_dir: Path, experiment: str, params: Mapping[str, Any]) -> Loggers:
    """The loggers `cfg.logger` selects for the run in `run_dir`. A logger that cannot start is
    refused before the run starts (UserError): the user asked for it."""
    chosen: list[Logger] = []
    if cfg.logger.tensorboard is not None:
        chosen.append(TensorBoard(run_dir))
    if cfg.logger.mlflow is not None:
        mlflow_cfg = cfg.logger.mlflow
        name = mlflow_cfg.experiment or experiment
        try:
            chosen.append(MLflow(mlflow_cfg, run_dir, name, params))
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - a store that cannot be reached or made
            raise UserError(
                f"logger=mlflow: the tracking store logger.mlflow.tracking_uri="
                f"{mlflow_cfg.tracking_uri} cannot be used ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}). Start its server, fix the URI, "
                f"or choose another logger (logger=tensorboard)."
            ) from None
    return Loggers(chosen)
