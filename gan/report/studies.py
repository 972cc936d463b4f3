"""The Optuna studies behind the runs: `Study` (a study with its search-space bounds and, for a
confirm study, confirm.csv's rows), finding a trial's study file, loading every study below the
compared folders, and the warning when the best runs sit on the edge of the search space."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from gan.report.runs import Run, sort_runs, walk, warn
from gan.report.values import is_number
from gan.study.pbt import PBT
from gan.study.storage import DB_NAME

SQLITE = "sqlite:///"  # the storage URL of a study file, any name (hydra.sweeper.storage)


@dataclass
class Study:
    name: str
    db: Path
    study: optuna.Study
    bounds: dict[str, tuple[float, float, bool]]  # numeric parameters: low, high, log
    confirm: list[dict[str, Any]]  # confirm.csv's rows, for a confirm study (gan.study.confirm)


def study_db(run: Run) -> Path | None:
    """The SQLite file of a trial's study: in a sweep folder above it, or at its storage URL."""
    for folder in list(run.path.resolve().parents)[:3]:
        if (folder / DB_NAME).is_file():
            return folder / DB_NAME
    url = str((run.study or {}).get("storage") or "")
    path = Path(url.removeprefix(SQLITE))
    return path.resolve() if url.startswith(SQLITE) and path.is_file() else None


def is_confirm(study: optuna.Study) -> bool:
    """A confirm study (gan.study.confirm): its trials rerun another study's settings."""
    from gan.study.confirm import CONFIRMS  # imports torch (gan.files): not for --help

    return any(CONFIRMS in t.user_attrs for t in study.get_trials(deepcopy=False))


def load_studies(paths: list[Path], runs: list[Run]) -> dict[tuple[str, str], Study]:
    """Every study in the optuna.db files below `paths` or above the runs, by (db, name)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dbs = {db.resolve() for p in paths for db in walk(p)[1]}
    dbs |= {db for db in map(study_db, (r for r in runs if r.study)) if db}
    studies = {}
    for db in sorted(dbs):
        # not gan.study.storage.sqlite_url: a storage URL may name a file other than optuna.db
        storage = f"{SQLITE}{db}"
        try:
            names = optuna.get_all_study_names(storage)
            loaded = [optuna.load_study(study_name=n, storage=storage) for n in names]
        except Exception as e:  # noqa: BLE001 - a broken study should not stop the report
            warn(f"cannot open the Optuna studies in {db} ({type(e).__name__}: {e})")
            continue
        for study in loaded:
            rows = confirm_rows(study, db) if is_confirm(study) else []
            studies[(str(db), study.study_name)] = Study(
                study.study_name, db, study, bounds(study), rows
            )
    return studies


def bounds(study: optuna.Study) -> dict[str, tuple[float, float, bool]]:
    """The numeric parameters' search space: low, high and whether it is sampled on a log scale."""
    return {
        name: (float(d.low), float(d.high), d.log)
        for t in study.trials
        for name, d in t.distributions.items()
        if isinstance(d, FloatDistribution | IntDistribution)
    }


def confirm_rows(study: optuna.Study, db: Path) -> list[dict[str, Any]]:
    """confirm.csv beside a confirm study's file; [] with a warning when it cannot be read."""
    from gan.study import confirm  # imports torch (gan.files): not for --help

    try:
        return confirm.read_csv(db.parent / confirm.CSV_NAME)
    except OSError as e:
        warn(f"confirm study {study.study_name} in {db}: no {confirm.CSV_NAME} ({e})")
        return []


def edge_warnings(
    runs: list[Run], keys: list[str], studies: dict[tuple[str, str], Study]
) -> list[str]:
    """Numeric keys for which one of the best runs (top 25%, 1 to 3 runs) lies within 5% of an
    edge of the search space: the study's bounds for a trial, else the range of values tried
    (when at least 3 distinct values were tried). Runs that collapsed at step 0 (score 0) never
    trained healthily and point nowhere: among them there is no best."""
    groups: dict[tuple[str, str] | None, list[Run]] = {}
    for r in sort_runs([r for r in runs if r.score]):
        db = study_db(r) if r.study else None
        group = (str(db), str(r.study.get("study"))) if db and r.study else None
        groups.setdefault(group, []).append(r)
    out = []
    for group, members in groups.items():
        study = studies.get(group) if group else None
        top = members[: max(1, min(3, len(members) // 4))]
        for key in keys:
            tried = {r.config[key] for r in members if is_number(r.config.get(key))}
            if study and key in study.bounds:
                lo, hi, log = study.bounds[key]
                where = f"study {study.name}'s search space [{lo:g}, {hi:g}]"
            elif len(tried) >= 3 and not (study and PBT in study.study.user_attrs):
                # (a population sets train.steps and the like per segment: no range of its own)
                lo, hi = min(tried), max(tried)
                log = lo > 0 and hi / lo > 20
                whose = f"study {study.name}'s trials" if study else "these runs"
                where = f"the values {whose} tried [{lo:g}, {hi:g}]"
            else:
                continue
            best = [r.config[key] for r in top if is_number(r.config.get(key))]
            for edge, values in near_edges(best, lo, hi, log).items():
                way = "downwards" if edge == "lower" else "upwards"
                out.append(
                    f"{key}: the best run(s) ({', '.join(f'{v:g}' for v in values)}) sit at the "
                    f"{edge} edge of {where}; the optimum may lie beyond it: widen the range {way}."
                )
    return out


def near_edges(values: list[float], lo: float, hi: float, log: bool) -> dict[str, list[float]]:
    """Those of `values` within 5% of the range (of its logarithm for a log range) of each end."""
    f = math.log10 if log and lo > 0 else float
    if hi <= lo:
        return {}
    values = [v for v in values if v > 0 or f is float]
    margin = 0.05 * (f(hi) - f(lo))
    hits = {
        "lower": [v for v in values if f(v) - f(lo) <= margin],
        "upper": [v for v in values if f(hi) - f(v) <= margin],
    }
    return {edge: vs for edge, vs in hits.items() if vs}
