"""pumpgan's Optuna sweeper: a Hydra sweeper that keeps a study on real storage and survives kills.

Selected by every study in `sweeps/` (`hydra.sweeper._target_: gan.sweep.StudySweeper`), with the
config keys of Hydra's Optuna sweeper plugin, whose search-space syntax it reuses. What it does
differently from that plugin:

- the study lives in `optuna.db` in the sweep folder (or `hydra.sweeper.storage`), under a stable
  name, and re-running the same command continues it up to `n_trials` in total;
- trial N runs in folder `N` of the sweep folder, so a rerun never overwrites a trial folder,
  and every run folder's summary.json names its study and trial;
- trials that a killed sweep left RUNNING are marked failed at the next start and their
  parameters are queued again: at once when the sweep ran on this host and its process is gone,
  and after `gan.score.STALE_AFTER_S` without a heartbeat when it ran anywhere else (several
  machines can work on one study through a shared database);
- with an out-of-process launcher (joblib, submitit), `n_jobs` trials run at once and each is
  told to Optuna as soon as it ends (no batches), with CPU threads split between them;
- `trials.csv` is rewritten after every trial and the best-so-far is logged.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, RunMode, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from gan import interrupts
from gan.runfolder import RunFolder, atomic_write
from gan.score import STALE_AFTER_S, rank_key

log = logging.getLogger(__name__)

TARGET = "gan.sweep.StudySweeper"
OWNER = "pumpgan_owner"  # user attr: host:pid of the sweep process that ran the trial
HEARTBEAT = "pumpgan_heartbeat"  # user attr: unix time, renewed while the trial runs
# user attrs: the run's sliced Wasserstein distance to the data (summary.json quality.swd),
# which breaks ties between equal scores (gan.score.rank_key), and its final grid's diversity
SWD, DIVERSITY = "swd", "diversity"
HEARTBEAT_S = 30.0  # how often a sweep renews the heartbeats of its running trials


def study_name(sweeper_cfg: Any) -> str:
    return sweeper_cfg.get("study_name") or "pumpgan"


def storage_url(sweeper_cfg: Any, sweep_dir: str) -> str:
    """`hydra.sweeper.storage`, or a SQLite file in the sweep folder."""
    return sweeper_cfg.get("storage") or f"sqlite:///{Path(sweep_dir).resolve() / 'optuna.db'}"


def trial_of_job(hydra_cfg: Any) -> dict[str, Any] | None:
    """For a job launched by StudySweeper: its study, storage and trial number (= job number)."""
    if hydra_cfg.mode != RunMode.MULTIRUN or hydra_cfg.sweeper.get("_target_") != TARGET:
        return None
    return {
        "study": study_name(hydra_cfg.sweeper),
        "storage": storage_url(hydra_cfg.sweeper, hydra_cfg.sweep.dir),
        "trial": int(hydra_cfg.job.num),
    }


class StudySweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: DictConfig | None,
    ) -> None:
        if custom_search_space:
            raise ValueError("hydra.sweeper.custom_search_space is not supported by pumpgan")
        self.sampler_cfg = sampler
        self.direction = getattr(direction, "name", direction)
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.max_failure_rate = max_failure_rate
        self.params: dict[str, Any] = {str(k): v for k, v in (params or {}).items()}
        self.lock = threading.Lock()

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        assert launcher is not None
        self.launcher = launcher
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.study_name = study_name(config.hydra.sweeper)
        self.storage = storage_url(config.hydra.sweeper, str(self.sweep_dir))

    def sweep(self, arguments: list[str]) -> None:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.sweep_dir / "sweep.log")
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s"))
        log.addHandler(handler)
        try:
            self._sweep(arguments)
        finally:
            log.removeHandler(handler)

    def _sweep(self, arguments: list[str]) -> None:
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + arguments)
        sampler = self._make_sampler(space, trials_so_far(self.study_name, self.storage))
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=sampler,
            direction=self.direction,
            load_if_exists=True,
        )
        requeued = fail_stale_trials(study)
        finished = trials_used(study)
        log.info(
            "Study %r in %s: %d of %d trials done%s; sweep folder %s",
            self.study_name,
            self.storage,
            finished,
            self.n_trials,
            f", {requeued} killed trial(s) queued again" if requeued else "",
            self.sweep_dir,
        )
        if finished >= self.n_trials:
            log.info(
                "Nothing to do: the study already has its %d trials. For a new study "
                "choose another hydra.sweep.dir (or hydra.sweeper.study_name).",
                self.n_trials,
            )
        n_jobs = self.n_jobs
        if type(self.launcher).__name__ == "BasicLauncher" and n_jobs > 1:
            log.info(
                "hydra/launcher=basic runs one trial at a time (n_jobs=%d ignored); use "
                "hydra/launcher=joblib for parallel trials",
                n_jobs,
            )
            n_jobs = 1
        if n_jobs > 1 and not any(k.startswith("hardware.threads") for k in fixed):
            # split the cores between concurrent trials rather than oversubscribing them
            fixed["hardware.threads"] = max(1, (os.cpu_count() or 1) // n_jobs)
        self.failures = 0
        self.errors: list[BaseException] = []
        self.stopping = False
        self.running: set[int] = set()
        beating = threading.Event()
        heart = threading.Thread(
            target=self._heartbeat, args=(study, beating), daemon=True, name="heartbeat"
        )
        heart.start()
        try:
            if n_jobs == 1:
                # in this thread, so that Ctrl-C reaches a trial that runs in-process (basic
                # launcher): it checkpoints, and the trial is failed and queued again
                self._worker(study, space, fixed)
            else:
                self._run_workers(n_jobs, study, space, fixed)
        finally:
            beating.set()
            heart.join()
        write_trials_csv(study, self.sweep_dir / "trials.csv")
        self._report_end(study)
        if self.errors:
            raise self.errors[0]

    def _run_workers(
        self,
        n_jobs: int,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        fixed: dict[str, Any],
    ) -> None:
        """n_jobs threads, each launching one trial at a time (out of process). Ctrl-C: no new
        trials, wait for the running ones (which get the signal too); Ctrl-C again: leave now,
        and the next start fails and requeues what is left RUNNING."""
        workers = [
            threading.Thread(
                target=self._worker,
                args=(study, space, fixed),
                daemon=True,
                name=f"trial-worker-{i}",
            )
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

    def _worker(
        self, study: optuna.Study, space: dict[str, BaseDistribution], fixed: dict[str, Any]
    ) -> None:
        allowed_failures = math.floor(self.max_failure_rate * self.n_trials)
        assert self.launcher is not None
        while True:
            with self.lock:
                if interrupts.pending():  # a Ctrl-C that some finalizer swallowed
                    self.stopping = True
                    if threading.current_thread() is threading.main_thread():
                        interrupts.check()
                if self.errors or self.stopping:
                    return
                if trials_used(study) >= self.n_trials:
                    return
                trial = study.ask(space)
                trial.set_user_attr(OWNER, owner())
                trial.set_user_attr(HEARTBEAT, time.time())
                self.running.add(trial.number)
                overrides = [f"{k}={v}" for k, v in {**trial.params, **fixed}.items()]
                trial.set_user_attr("run_dir", str(self.sweep_dir / str(trial.number)))
            log.info("trial %d: %s", trial.number, " ".join(overrides))
            try:
                (ret,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
                score, error = float(ret.return_value), None
            except KeyboardInterrupt:
                interrupts.clear()
                with self.lock:
                    self.running.discard(trial.number)
                    requeue(study, trial.number, reason="interrupted")
                    write_trials_csv(study, self.sweep_dir / "trials.csv")
                if threading.current_thread() is threading.main_thread():
                    raise
                return  # a worker thread: the main thread is already stopping the sweep
            except Exception as e:  # noqa: BLE001 - any failure of a trial is that trial's
                score, error = None, e
            with self.lock:
                self.running.discard(trial.number)
                if error is not None and self.stopping:  # ended by the Ctrl-C, not failed
                    requeue(study, trial.number, reason="interrupted")
                    write_trials_csv(study, self.sweep_dir / "trials.csv")
                    return
                if error is None and score is not None and math.isfinite(score):
                    quality = read_summary(self.sweep_dir / str(trial.number)).get("quality")
                    for attr in (SWD, DIVERSITY):
                        if isinstance(quality, dict) and attr in quality:
                            trial.set_user_attr(attr, quality[attr])
                    tell(study, trial.number, score)
                    self._report_trial(study, trial.number, score)
                else:
                    tell(study, trial.number, None)
                    self.failures += 1
                    log.warning(
                        "trial %d failed (%d of %d allowed failures): %s",
                        trial.number,
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
                write_trials_csv(study, self.sweep_dir / "trials.csv")

    def _heartbeat(self, study: optuna.Study, stop: threading.Event) -> None:
        """Renew the heartbeat of this sweep's running trials every HEARTBEAT_S seconds, so
        that a sweep on another machine can tell them from trials whose sweep died."""
        while not stop.wait(HEARTBEAT_S):
            with self.lock:  # one writer at a time in this process, as for ask and tell
                for number in sorted(self.running):
                    try:
                        beat(study, number)
                    except Exception as e:  # noqa: BLE001 - a missed beat must not end a sweep
                        log.warning("could not renew the heartbeat of trial %d: %s", number, e)

    def _make_sampler(
        self, space: dict[str, BaseDistribution], done: int
    ) -> optuna.samplers.BaseSampler:
        cfg = cast(dict[str, Any], OmegaConf.to_container(self.sampler_cfg))
        if cfg.get("seed") is not None and done:
            # a continued study must not replay the seeded sampler's first suggestions
            cfg["seed"] += done
        sampler = instantiate(cfg, _execution_whitelist_=("optuna.samplers.*",))
        if isinstance(sampler, functools.partial):  # GridSampler: its grid is the search space
            grid = {name: grid_choices(d) for name, d in space.items()}
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
            sampler = sampler(grid)
        return sampler

    def _report_trial(self, study: optuna.Study, number: int, score: float) -> None:
        best = best_trial(study)
        log.info(
            "trial %d: score %.4f | best so far: trial %d, score %.4f, %s",
            number,
            score,
            best.number,
            best.value,
            best.params,
        )

    def _report_end(self, study: optuna.Study) -> None:
        done = count(study, TrialState.COMPLETE)
        if done == 0:
            log.warning("No trial completed; see the run folders under %s", self.sweep_dir)
            return
        best = best_trial(study)
        log.info(
            "Study %r: %d trials complete, %d failed. Best: trial %d, score %.4f, %s",
            self.study_name,
            done,
            count(study, TrialState.FAIL),
            best.number,
            best.value,
            best.params,
        )
        results = {
            "study": self.study_name,
            "storage": self.storage,
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
        }
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / "optimization_results.yaml")


def search_space(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """Sweep overrides -> (Optuna distributions, fixed values); the plugin's syntax:
    `choice(a, b)`, `interval(lo, hi)`, `tag(log, interval(lo, hi))`, `range(a, b)`."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        value = create_optuna_distribution_from_override(override)
        name = override.get_key_element()
        if isinstance(value, BaseDistribution):
            space[name] = value
            fixed.pop(name, None)
        else:
            fixed[name] = value
            space.pop(name, None)
    return space, fixed


def grid_choices(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    raise ValueError(f"the grid sampler needs choice() or range() parameters, not {dist}")


def trials_so_far(name: str, storage: str) -> int:
    try:
        return len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:  # no such study yet
        return 0


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(study: optuna.Study, number: int) -> None:
    trial = study.trials[number]
    if trial.state == TrialState.RUNNING:
        study._storage.set_trial_user_attr(trial._trial_id, HEARTBEAT, time.time())


def is_stale(trial: optuna.trial.FrozenTrial, now: float) -> str | None:
    """Why a RUNNING trial has lost its sweep process, or None while it may be alive."""
    t_host, _, pid = str(trial.user_attrs.get(OWNER, "")).rpartition(":")
    if t_host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
        return f"its sweep process {pid} on this host is gone"
    last = trial.user_attrs.get(HEARTBEAT)
    if isinstance(last, int | float) and now - last > STALE_AFTER_S:
        return f"no heartbeat from {t_host or 'its sweep'} for {now - last:.0f} s"
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


def tell(study: optuna.Study, number: int, score: float | None) -> None:
    """Record a trial's score (None: failed). The grid sampler calls Study.stop() once its grid
    is done, which raises outside Study.optimize; the sweep stops by its n_trials anyway."""
    if study.trials[number].state.is_finished():
        log.warning(
            "trial %d ended (score %s), but another sweep process had already marked it failed "
            "(no heartbeat for %.0f s); the result stays in its run folder only",
            number,
            score,
            STALE_AFTER_S,
        )
        return
    try:
        if score is None:
            study.tell(number, state=TrialState.FAIL)
        else:
            study.tell(number, score)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def requeue(study: optuna.Study, number: int, reason: str) -> None:
    """Fail a trial that did not get to finish (`reason` set as a user attribute, so it counts
    against no failure budget) and queue its parameters again."""
    trial = study.trials[number]
    study._storage.set_trial_user_attr(trial._trial_id, reason, True)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": number}, skip_if_exists=False)


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


def trials_used(study: optuna.Study) -> int:
    """Trials that count toward n_trials: finished, failed, or running (here or on another
    machine), but not those a kill or Ctrl-C cut short, whose parameters run again."""
    return sum(
        t.state != TrialState.WAITING
        and not (
            t.state == TrialState.FAIL
            and ("stale" in t.user_attrs or "interrupted" in t.user_attrs)
        )
        for t in study.get_trials(deepcopy=False)
    )


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best complete trial as gan.compare ranks runs (gan.score.rank_key: ties on the score
    broken by the lower SWD, then the first trial); Optuna's own best_trial would take the
    first of the tied trials."""
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    return min(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: rank_key(sign * cast(float, t.value), t.user_attrs.get(SWD)),
    )


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """One row per trial, from the study itself (so the file always agrees with it) and the
    trial's run folder summary."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.distributions})
    rows = []
    for t in trials:
        run_dir = t.user_attrs.get("run_dir", "")
        summary = read_summary(Path(run_dir)) if run_dir else {}
        wall = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(
            [
                t.number,
                t.state.name,
                t.value,
                summary.get("status"),
                summary.get("collapsed_at"),
                summary.get("reason"),
                t.user_attrs.get(SWD),
                t.user_attrs.get(DIVERSITY),
                wall,
                run_dir,
                *(t.params.get(n) for n in names),
            ]
        )

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                [
                    "number",
                    "state",
                    "score",
                    "status",
                    "collapsed_at",
                    "reason",
                    "swd",
                    "diversity",
                    "wall_s",
                    "run_dir",
                    *names,
                ]
            )
            writer.writerows(rows)

    atomic_write(path, write)


def read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
