"""A study's trials as the sweeper keeps them: asking for one (with its sweep process, heartbeat
and run folder), telling its result, failing it (one way, `fail_trial`: never launched, cut
short, or failed), queueing a cut-short trial again, finding the trials a killed sweep left
RUNNING, and which trials count toward n_trials; with the names of the user attrs it records."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from gan.run.folder import RunFolder, owner, read_summary
from gan.run.score import STALE_AFTER_S
from gan.study.ranking import two_objectives
from gan.study.sampler import TrialSampler

log = logging.getLogger(__name__)

OWNER = "pumpgan_owner"  # user attr: host:pid of the sweep process that ran the trial
HEARTBEAT = "pumpgan_heartbeat"  # user attr: unix time, renewed while the trial runs
# user attrs: the run's sliced Wasserstein distance to the data (summary.json quality.swd),
# which breaks ties between equal scores (gan.run.score.rank_key), and its final grid's diversity
SWD, DIVERSITY = "swd", "diversity"
COLLAPSED_AT = "collapsed_at"  # user attr: the run's collapse step (None: it never collapsed)
COMMAND = "command"  # user attr: the command that reproduces the trial's run (gan/reproduce.py)
# user attr of a trial that was created but never launched (why): it counts toward nothing
NOT_RUN = "not_run"
# user attrs that record how a trial ran, not what it is for: a trial queued again gets its own
RUN_ATTRS = (OWNER, HEARTBEAT, "run_dir", NOT_RUN, "stale", "interrupted", SWD, DIVERSITY, COMMAND)


def start_trial(
    study: optuna.Study, sampler: TrialSampler, space: dict[str, BaseDistribution], sweep_dir: Path
) -> optuna.Trial:
    """Ask the study for a trial (`sampler` is the study's) and record its sweep process,
    heartbeat and run folder. A trial that fails on the way is failed at once (`abandon`) and the
    error raised: left RUNNING with no sweep process recorded, it would wait STALE_AFTER_S."""
    sampler.number = None
    try:
        trial = study.ask(space)
        trial.set_user_attr(OWNER, owner())
        trial.set_user_attr(HEARTBEAT, time.time())
        trial.set_user_attr("run_dir", str(sweep_dir / str(trial.number)))
    except BaseException as e:
        if sampler.number is not None:  # the trial study.ask created (its sampler's first call)
            abandon(study, sampler.number, f"{type(e).__name__}: {e}")
        raise
    return trial


def record_run(trial: optuna.Trial, summary: dict[str, Any]) -> None:
    """The run's SWD, diversity and collapse step (its summary.json) as user attrs of its trial."""
    quality = summary.get("quality")
    for attr in (SWD, DIVERSITY):
        if isinstance(quality, dict) and attr in quality:
            trial.set_user_attr(attr, quality[attr])
    if "collapsed_at" in summary:  # a collapse, also one at the last step (score 1.0)
        trial.set_user_attr(COLLAPSED_AT, summary["collapsed_at"])


def objectives(study: optuna.Study, score: float, quality: Any) -> list[float]:
    """A run's values for its study: [score], or [score, SWD] in a two-objective study (a run
    without an SWD gets NaN there, and fails)."""
    if not two_objectives(study):
        return [score]
    value = quality.get(SWD) if isinstance(quality, dict) else None
    return [score, float(value) if isinstance(value, int | float) else math.nan]


def stored(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial `number` as the storage holds it now, read alone (study.trials deep-copies every
    trial of the study, on each heartbeat of each running trial)."""
    # Optuna's private storage API (as set_trial_attr): Study has no trial-by-number lookup
    storage = study._storage
    return storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    )


def tell(
    study: optuna.Study,
    number: int,
    values: list[float] | None,
    state: TrialState = TrialState.COMPLETE,
) -> None:
    """Record a trial's values (None: failed, unless `state` is PRUNED)."""
    trial = stored(study, number)
    if trial.state.is_finished():
        log.warning(
            "trial %d ended (%s), but another sweep process had already marked it failed "
            "(no heartbeat for %.0f s); the result stays in its run folder only",
            number,
            values if values is not None else state.name,
            STALE_AFTER_S,
        )
        return
    if values is not None:
        _tell(study, number, values)
    elif state == TrialState.PRUNED:
        _tell(study, number, state=TrialState.PRUNED)
    else:
        fail_trial(study, trial)


def fail_trial(
    study: optuna.Study, trial: FrozenTrial, reason: str | None = None, why: Any = True
) -> None:
    """Mark a RUNNING trial FAIL: the one way a sweep fails a trial. With a `reason`, first set
    as a user attr to `why` (NOT_RUN, "stale", "interrupted"), the trial counts toward nothing
    (`counts`)."""
    if reason is not None:
        set_trial_attr(study, trial, reason, why)
    _tell(study, trial.number, state=TrialState.FAIL)


def _tell(
    study: optuna.Study,
    number: int,
    values: list[float] | None = None,
    state: TrialState | None = None,
) -> None:
    """Study.tell. A sampler that has tried every point calls Study.stop() (the brute-force
    sampler; the grid sampler's is skipped, gan.study.sampler.GridTrialSampler), which raises
    outside Study.optimize after the trial's state is stored; the sweep stops by its n_trials
    anyway."""
    try:
        study.tell(number, values, state=state)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def set_trial_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Set a user attr of a trial known by its FrozenTrial (another sweep process's, or one this
    sweep holds by number only)."""
    # Optuna's private storage API: Optuna 5 sets a trial's user attrs only through its
    # optuna.Trial (Trial.set_user_attr; Study has no set_trial_user_attr), and has no public way
    # to get the Trial of an existing trial: optuna.Trial(study, trial_id) takes the private
    # FrozenTrial._trial_id and calls the sampler's before_trial (the grid sampler's may assign
    # the trial a grid point).
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def abandon(study: optuna.Study, number: int, why: str, again: bool = True) -> None:
    """Fail a trial that was never launched, with user attr NOT_RUN = why (it counts toward
    nothing); the parameters of a queued trial (a retry) are queued again, unless not `again`
    (a duplicate of another trial)."""
    trial = stored(study, number)
    fail_trial(study, trial, NOT_RUN, why)
    queued = trial.system_attrs.get("fixed_params")
    if queued and again:
        study.enqueue_trial(queued, user_attrs=purpose(trial), skip_if_exists=False)


def requeue(study: optuna.Study, number: int, reason: str) -> None:
    """Fail a trial that did not get to finish (`reason` set as a user attribute, so it counts
    against no failure budget) and queue its parameters again."""
    trial = stored(study, number)
    fail_trial(study, trial, reason)
    attrs = {**purpose(trial), "retry_of": number}
    study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)


def purpose(trial: FrozenTrial) -> dict[str, Any]:
    """The user attrs a trial queued again keeps: what it is for (a confirm trial's `confirms`,
    a retry's `retry_of`, ...), less how it ran (RUN_ATTRS, COLLAPSED_AT)."""
    return {k: v for k, v in trial.user_attrs.items() if k not in (*RUN_ATTRS, COLLAPSED_AT)}


def beat(study: optuna.Study, number: int) -> None:
    trial = stored(study, number)
    if trial.state == TrialState.RUNNING:
        set_trial_attr(study, trial, HEARTBEAT, time.time())


def is_stale(trial: optuna.trial.FrozenTrial, now: float) -> str | None:
    """Why a RUNNING trial has lost its sweep process, or None while it may be alive."""
    t_host, _, pid = str(trial.user_attrs.get(OWNER, "")).rpartition(":")
    if t_host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
        return f"its sweep process {pid} on this host is gone"
    last = trial.user_attrs.get(HEARTBEAT)
    if isinstance(last, int | float) and now - last > STALE_AFTER_S:
        return f"no heartbeat from {t_host or 'its sweep'} for {now - last:.0f} s"
    if last is None and trial.datetime_start is not None:  # its sweep died before recording it
        age = now - trial.datetime_start.timestamp()
        if age > STALE_AFTER_S:
            return f"no sweep process recorded, started {age:.0f} s ago"
    return None


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials whose sweep process is gone (see `is_stale`), mark their run
    folders interrupted, and queue their parameters again. Returns how many."""
    now, stale = time.time(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        why = is_stale(t, now)
        if why is None:
            continue
        requeue(study, t.number, reason="stale")
        mark_killed(Path(t.user_attrs.get("run_dir", "")))
        log.warning("trial %d was left RUNNING (%s): marked failed, queued again", t.number, why)
        stale += 1
    return stale


def mark_killed(run_dir: Path) -> None:
    """A run folder whose summary still says `running` after its sweep was killed."""
    folder = RunFolder(run_dir)
    folder.summary = read_summary(run_dir)
    if folder.summary.get("status") == "running":
        folder.update_summary(status="interrupted", error="killed together with its sweep process")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts toward n_trials: finished, failed, or running (here or on another
    machine), but not one a kill or Ctrl-C cut short, whose parameters run again, nor one that
    was never launched."""
    return trial.state != TrialState.WAITING and not (
        trial.state == TrialState.FAIL
        and any(k in trial.user_attrs for k in ("stale", "interrupted", NOT_RUN))
    )


def trials_used(study: optuna.Study) -> int:
    return sum(counts(t) for t in study.get_trials(deepcopy=False))


def taken_before(study: optuna.Study, number: int) -> int:
    """Trials that count toward n_trials and were created before trial `number`: a sweep that
    asked for trial `number` while another process asked for the last one runs it only if this
    is under n_trials."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False) if t.number < number)


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))
