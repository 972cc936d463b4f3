"""Where a study lives and which study a run belongs to: the study's name and storage URL
(`hydra.sweeper.storage`, or `optuna.db` in the sweep folder), the study a job of pumpgan's
sweeper reports to, and opening a study that several sweep processes may create at once."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, cast

import optuna
import sqlalchemy.exc
from hydra.types import RunMode

# the targets study files name: the sweeper's module, or gan/sweep.py that re-exports it (older
# study files)
TARGET = "gan.study.sweeper.StudySweeper"
TARGETS = (TARGET, "gan.sweep.StudySweeper")
DB_NAME = "optuna.db"  # a study's SQLite file in its sweep folder


def sqlite_url(folder: Path | str) -> str:
    """The storage URL of the SQLite study file in a sweep folder."""
    return f"sqlite:///{Path(folder).resolve() / DB_NAME}"


def study_name(sweeper_cfg: Any) -> str:
    return sweeper_cfg.get("study_name") or "pumpgan"


def storage_url(sweeper_cfg: Any, sweep_dir: str) -> str:
    """`hydra.sweeper.storage`, or a SQLite file in the sweep folder."""
    return sweeper_cfg.get("storage") or sqlite_url(sweep_dir)


def trial_of_job(hydra_cfg: Any) -> dict[str, Any] | None:
    """For a job launched by StudySweeper: its study, storage and trial number (= job number)."""
    if hydra_cfg.mode != RunMode.MULTIRUN or hydra_cfg.sweeper.get("_target_") not in TARGETS:
        return None
    return {
        "study": study_name(hydra_cfg.sweeper),
        "storage": storage_url(hydra_cfg.sweeper, hydra_cfg.sweep.dir),
        "trial": int(hydra_cfg.job.num),
    }


def open_study(
    name: str,
    storage: str,
    sampler: optuna.samplers.BaseSampler,
    directions: list[str],
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study, created if it is new. Sweep processes that start together on a new database
    race to create its tables and the study; the losers try again. The pruner is the one the
    runs rebuild (gan/study/pruning.py); the sampler sees it too (TPE samples a HyperbandPruner's
    brackets apart)."""
    create = functools.partial(
        optuna.create_study,
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=cast(list[Any], directions),
        load_if_exists=True,
    )
    for wait in (0.5, 1.0, 2.0, 4.0):
        try:
            return create()
        except sqlalchemy.exc.SQLAlchemyError:
            time.sleep(wait)
    return create()
