"""What a sweep writes down: `trials.csv` after every trial, its lines in sweep.log (each trial,
the best or the Pareto front so far, the end of the study), and `optimization_results.yaml`
with the best trial, the Pareto front or a confirm sweep's confirmed best (and `confirm.csv`)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from gan.files import atomic_write
from gan.run.folder import read_summary
from gan.study import confirm as confirming
from gan.study.ranking import best_trial, pareto_front, two_objectives
from gan.study.trials import COMMAND, DIVERSITY, SWD, count

log = logging.getLogger(__name__)

TRIALS_CSV = "trials.csv"
RESULTS_YAML = "optimization_results.yaml"
# trials.csv's columns before the Pareto front's (two objectives) and the parameters
COLUMNS = (
    "number",
    "state",
    "score",
    "status",
    "steps_done",
    "collapsed_at",
    "reason",
    "swd",
    "diversity",
    "wall_s",
    "run_dir",
    "command",
)


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """One row per trial, from the study itself (so the file always agrees with it) and the
    trial's run folder summary."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.distributions})
    multi = two_objectives(study)
    front = {t.number for t in study.best_trials} if multi else set()
    rows = [
        [*trial_row(t), *([t.number in front] if multi else []), *(t.params.get(n) for n in names)]
        for t in trials
    ]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*COLUMNS, *(["pareto_front"] if multi else []), *names])
            writer.writerows(rows)

    atomic_write(path, write)


def trial_row(t: FrozenTrial) -> list[Any]:
    """A trial's values in trials.csv's COLUMNS."""
    run_dir = t.user_attrs.get("run_dir", "")
    summary = read_summary(Path(run_dir)) if run_dir else {}
    wall = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else None
    )
    return [
        t.number,
        t.state.name,
        # a PRUNED trial's value in Optuna is its last intermediate value (-SWD)
        t.values[0] if t.state == TrialState.COMPLETE else None,
        summary.get("status"),
        summary.get("steps_done"),
        summary.get("collapsed_at"),
        summary.get("reason"),
        t.user_attrs.get(SWD),
        t.user_attrs.get(DIVERSITY),
        wall,
        run_dir,
        t.user_attrs.get(COMMAND),
    ]


def report_trial(study: optuna.Study, number: int, values: list[float]) -> None:
    """sweep.log's line for a complete trial: its values, and the best trial or the Pareto
    front so far."""
    if two_objectives(study):
        front = sorted(t.number for t in study.best_trials)
        log.info(
            "trial %d: score %.4f, SWD %.2f | Pareto front so far: trials %s",
            number,
            *values,
            front,
        )
        return
    best = best_trial(study)
    log.info(
        "trial %d: score %.4f | best so far: trial %d, score %.4f, %s",
        number,
        values[0],
        best.number,
        best.value,
        best.params,
    )


def report_pruned(number: int, summary: dict[str, Any]) -> None:
    """sweep.log's line for a pruned trial: where it stopped, and its SWD there."""
    quality = summary.get("quality")
    log.info(
        "trial %d: pruned at step %s (SWD %s)",
        number,
        summary.get("pruned_at"),
        quality.get(SWD) if isinstance(quality, dict) else None,
    )


def report_end(
    study: optuna.Study,
    storage: str,
    sweep_dir: Path,
    source: optuna.Study | None = None,
    seeds: int = 0,
    extra: dict[str, Any] | None = None,
) -> None:
    """sweep.log's last lines and optimization_results.yaml: the best trial, the Pareto front,
    or for a confirm sweep (`source`: the study it confirms, `seeds` per setting) the confirmed
    best, with confirm.csv; `extra` (a population's answer) is added to the file. Nothing but a
    warning when no trial completed."""
    done = count(study, TrialState.COMPLETE)
    if done == 0:
        log.warning("No trial completed; see the run folders under %s", sweep_dir)
        return
    counts = (done, count(study, TrialState.PRUNED), count(study, TrialState.FAIL))
    results: dict[str, Any] = {"study": study.study_name, "storage": storage}
    if source is not None:
        results.update(report_confirm(study, source, seeds, sweep_dir))
    elif two_objectives(study):
        results.update(report_front(study, counts))
    else:
        results.update(report_best(study, counts))
    results.update(extra or {})
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_YAML)


def report_front(study: optuna.Study, counts: tuple[int, int, int]) -> dict[str, Any]:
    """A two-objective study's end in sweep.log (`counts`: trials complete, pruned, failed);
    its Pareto front, for optimization_results.yaml."""
    front = pareto_front(study)
    log.info(
        "Study %r: %d trials complete, %d pruned, %d failed. Pareto front (score, SWD): %s",
        study.study_name,
        *counts,
        "; ".join(f"trial {t.number} {t.values[0]:.4f}, {t.values[1]:.2f}" for t in front),
    )
    return {
        "pareto_front": [
            {"trial": t.number, "score": t.values[0], "swd": t.values[1], "params": t.params}
            | {"command": t.user_attrs.get(COMMAND)}
            for t in front
        ]
    }


def report_best(study: optuna.Study, counts: tuple[int, int, int]) -> dict[str, Any]:
    """A study's end in sweep.log (`counts`: trials complete, pruned, failed); its best trial,
    for optimization_results.yaml."""
    best = best_trial(study)
    log.info(
        "Study %r: %d trials complete, %d pruned, %d failed. Best: trial %d, score %.4f, %s",
        study.study_name,
        *counts,
        best.number,
        best.value,
        best.params,
    )
    return {
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "best_command": best.user_attrs.get(COMMAND),
    }


def report_confirm(
    study: optuna.Study, source: optuna.Study, seeds: int, sweep_dir: Path
) -> dict[str, Any]:
    """confirm.csv and the confirm sweep's lines in sweep.log; the confirmed best, for
    optimization_results.yaml."""
    found = confirming.settings(study, source, seeds, read_summary)
    best = confirming.confirmed_best(found)
    confirming.write_csv(sweep_dir / confirming.CSV_NAME, found, best)
    for s in found:
        log.info("%s", confirming.describe(s))
    if best is None:
        log.info("No setting ran all its seeds without a collapse: none is confirmed")
        return {"confirmed_best": None}
    row = best.row(True)
    log.info(
        "Confirmed best: #%d, trial %d of study %r, %s",
        best.rank,
        best.source.number,
        source.study_name,
        best.source.params,
    )
    keys = ("rank", "trial", "score_mean", "score_sd", "swd_mean", "swd_sd", "command")
    return {"confirmed_best": {**{k: row[k] for k in keys}, "params": best.source.params}}
