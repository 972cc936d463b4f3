"""Running a study's trials: workers that each ask for a trial, launch it in its own run folder
and tell its result, one trial at a time, until the study has its n_trials or the sweep stops
(an error, more failures than max_failure_rate allows, Ctrl-C); with a heartbeat for the trials
running here."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from hydra.plugins.launcher import Launcher
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from gan.run import interrupts
from gan.run.command import command
from gan.run.folder import read_summary
from gan.study.results import TRIALS_CSV, report_pruned, report_trial, write_trials_csv
from gan.study.sampler import TrialSampler
from gan.study.trials import (
    COMMAND,
    abandon,
    beat,
    objectives,
    record_run,
    requeue,
    start_trial,
    taken_before,
    tell,
    trials_used,
)

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # how often a sweep renews the heartbeats of its running trials


# what a trial adds to its params and the study's fixed overrides (a population's segment: the
# checkpoint it continues, its steps), or why it is not run: a str, and the trial is failed as
# never launched and not queued again (another trial already does its work)
TrialOverrides = Callable[[optuna.Trial], "dict[str, Any] | str"]


class Ran(NamedTuple):
    """A launched trial's run: its score (None: pruned, or failed), the error that failed it,
    and its summary.json ({} where it could not be read)."""

    score: float | None
    error: Exception | None
    summary: dict[str, Any]


class TrialLoop:
    """The trials of one sweep of a study: each with the study's `sampler` over `space`, the
    `fixed` overrides, and `choices` (the study file's selection, for the command that
    reproduces it), launched by `launcher` in folder N of `sweep_dir`; `per_trial` adds a
    trial's own overrides. After `run`, `errors` holds what stopped the sweep, first the one to
    raise."""

    def __init__(
        self,
        study: optuna.Study,
        sampler: TrialSampler,
        space: dict[str, BaseDistribution],
        fixed: dict[str, Any],
        launcher: Launcher,
        sweep_dir: Path,
        choices: dict[str, Any],
        n_trials: int,
        max_failure_rate: float,
        per_trial: TrialOverrides | None = None,
    ) -> None:
        self.study, self.sampler, self.space, self.fixed = study, sampler, space, fixed
        self.per_trial = per_trial
        self.launcher, self.sweep_dir, self.choices = launcher, sweep_dir, choices
        self.n_trials, self.max_failure_rate = n_trials, max_failure_rate
        self.lock = threading.Lock()  # one writer to the study at a time in this process
        self.failures = 0
        self.errors: list[BaseException] = []
        self.stopping = False
        self.running: set[int] = set()

    def run(self, n_jobs: int) -> None:
        """Run trials, n_jobs at once, until the study has its n_trials or the sweep stops,
        renewing the heartbeats of the running ones meanwhile."""
        beating = threading.Event()
        heart = threading.Thread(
            target=self._heartbeat, args=(beating,), daemon=True, name="heartbeat"
        )
        heart.start()
        try:
            if n_jobs == 1:
                # in this thread, so that Ctrl-C reaches a trial that runs in-process (basic
                # launcher): it checkpoints, and the trial is failed and queued again
                self._worker()
            else:
                self._run_workers(n_jobs)
        finally:
            beating.set()
            heart.join()

    def _run_workers(self, n_jobs: int) -> None:
        """n_jobs threads, each launching one trial at a time (out of process). Ctrl-C: no new
        trials, wait for the running ones (which get the signal too); Ctrl-C again: leave now,
        and the next start fails and requeues what is left RUNNING."""
        workers = [
            threading.Thread(target=self._worker, daemon=True, name=f"trial-worker-{i}")
            for i in range(n_jobs)
        ]
        for w in workers:
            w.start()
        try:
            for w in workers:
                w.join()
            interrupts.check()  # the workers stopped for a Ctrl-C that was swallowed
        except KeyboardInterrupt:
            self.stopping = True
            log.warning(
                "Interrupted: no new trials; waiting for the running ones to end "
                "(Ctrl-C again to leave them)"
            )
            for w in workers:
                w.join()
            raise

    def _worker(self) -> None:
        """Ask for a trial, launch it, tell its result; again, until `_ask` says stop. A Ctrl-C
        during a trial queues it again and stops the sweep."""
        while True:
            asked = self._ask()
            if asked is None:
                return
            trial, overrides = asked
            try:
                ran = self._launch(trial, overrides)
            except KeyboardInterrupt:
                interrupts.clear()
                with self.lock:
                    self._requeue_interrupted(trial.number)
                if threading.current_thread() is threading.main_thread():
                    raise
                return  # a worker thread: the main thread is already stopping the sweep
            with self.lock:
                if not self._tell(trial, ran):
                    return

    def _ask(self) -> tuple[optuna.Trial, list[str]] | None:
        """The next trial, recorded as running here with the command that reproduces it, and its
        overrides; None when this worker stops: the sweep is stopping (an error, a Ctrl-C), the
        study has its n_trials, or another sweep process took the last one."""
        study = self.study
        with self.lock:
            if interrupts.pending():  # a Ctrl-C that some finalizer swallowed
                self.stopping = True
                if threading.current_thread() is threading.main_thread():
                    interrupts.check()
            if self.errors or self.stopping or trials_used(study) >= self.n_trials:
                return None
            try:
                trial = start_trial(study, self.sampler, self.space, self.sweep_dir)
                if taken_before(study, trial.number) >= self.n_trials:
                    # another sweep process asked at the same moment and got the last one
                    abandon(study, trial.number, "the study's n_trials were all taken")
                    log.info("trial %d not run: the study's n_trials are taken", trial.number)
                    return None
            except Exception as e:  # noqa: BLE001 - a broken study stops the sweep
                self.errors.append(e)
                return None
            extra = self.per_trial(trial) if self.per_trial is not None else {}
            if isinstance(extra, str):
                abandon(study, trial.number, extra, again=False)
                log.info("trial %d not run: %s", trial.number, extra)
                return None
            self.running.add(trial.number)
            overrides = [f"{k}={v}" for k, v in {**trial.params, **self.fixed, **extra}.items()]
            trial.set_user_attr(COMMAND, command(overrides, self.choices))
        return trial, overrides

    def _launch(self, trial: optuna.Trial, overrides: list[str]) -> Ran:
        """Run the trial through the launcher, in folder N of the sweep folder but never in one
        that exists. Any exception is the trial's failure; a Ctrl-C is raised."""
        run_dir = self.sweep_dir / str(trial.number)
        log.info("trial %d: %s", trial.number, trial.user_attrs[COMMAND])
        summary: dict[str, Any] = {}
        try:
            if run_dir.exists():
                raise FileExistsError(
                    f"trial {trial.number}'s folder {run_dir} already exists (another "
                    "study, or a deleted optuna.db, used this sweep folder); the trial is not "
                    "run, so that the folder is not overwritten. Give each study its own "
                    "hydra.sweep.dir"
                )
            (ret,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
            summary = read_summary(run_dir)
            # a pruned run raised optuna.TrialPruned: its summary says it was pruned
            pruned = summary.get("status") == "pruned"
            return Ran(None if pruned else float(ret.return_value), None, summary)
        except Exception as e:  # noqa: BLE001 - any failure of a trial is that trial's
            return Ran(None, e, summary)

    def _tell(self, trial: optuna.Trial, ran: Ran) -> bool:
        """Record the trial's run in the study and trials.csv (called under the lock). False
        when the sweep's Ctrl-C ended it: it is queued again, and this worker stops."""
        study, number = self.study, trial.number
        self.running.discard(number)
        if ran.error is not None and self.stopping:  # ended by the Ctrl-C, not failed
            self._requeue_interrupted(number)
            return False
        record_run(trial, ran.summary)
        values = None
        if ran.score is not None:
            values = objectives(study, ran.score, ran.summary.get("quality"))
        if ran.error is None and ran.score is None:  # pruned
            tell(study, number, None, TrialState.PRUNED)
            report_pruned(number, ran.summary)
        elif ran.error is None and values is not None and all(map(math.isfinite, values)):
            tell(study, number, values)
            report_trial(study, number, values)
        else:
            tell(study, number, None)
            error = ran.error
            if error is None:
                error = ValueError(f"the run returned no finite objective values: {values}")
            self._failed(number, error)
        write_trials_csv(study, self.sweep_dir / TRIALS_CSV)
        return True

    def _failed(self, number: int, error: Exception) -> None:
        """Count a failed trial; more than max_failure_rate x n_trials stop the sweep."""
        allowed_failures = math.floor(self.max_failure_rate * self.n_trials)
        self.failures += 1
        log.warning(
            "trial %d failed (%d of %d allowed failures): %s",
            number,
            self.failures,
            allowed_failures,
            error,
        )
        if self.failures > allowed_failures:
            self.errors.append(
                RuntimeError(
                    f"Stopping the sweep: {self.failures} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate} x "
                    f"n_trials={self.n_trials} allows. Last error: {error}"
                )
            )

    def _requeue_interrupted(self, number: int) -> None:
        """A trial a Ctrl-C cut short: failed, not counted, and queued again (under the lock)."""
        self.running.discard(number)
        requeue(self.study, number, reason="interrupted")
        write_trials_csv(self.study, self.sweep_dir / TRIALS_CSV)

    def _heartbeat(self, stop: threading.Event) -> None:
        """Renew the heartbeat of this sweep's running trials every HEARTBEAT_S seconds, so
        that a sweep on another machine can tell them from trials whose sweep died."""
        while not stop.wait(HEARTBEAT_S):
            with self.lock:  # one writer at a time in this process, as for ask and tell
                for number in sorted(self.running):
                    try:
                        beat(self.study, number)
                    except Exception as e:  # noqa: BLE001 - a missed beat must not end a sweep
                        log.warning("could not renew the heartbeat of trial %d: %s", number, e)
