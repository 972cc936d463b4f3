"""pumpgan's Optuna sweeper: a Hydra sweeper that keeps a study on real storage and survives kills.

Selected by every study in `sweeps/` (`hydra.sweeper._target_: gan.study.sweeper.StudySweeper`),
with the config keys of Hydra's Optuna sweeper plugin, whose search-space syntax it reuses. What
it does differently from that plugin:

- the study lives in `optuna.db` in the sweep folder (or `hydra.sweeper.storage`), under a stable
  name, and re-running the same command continues it up to `n_trials` in total;
- the study records its search space and fixed settings at its first sweep, and a sweep with
  others is refused before it asks for a trial, naming what differs (`keep_settings`);
- trial N runs in folder `N` of the sweep folder, so a rerun never overwrites a trial folder
  (a trial whose folder exists fails instead), and every run folder's summary.json names its
  study and trial;
- the sampler is seeded per trial, with the study's seed + the trial number (`TrialSampler`),
  so several sweep processes on one study never draw alike by sharing a seed;
- trials that a killed sweep left RUNNING are marked failed at the next start and their
  parameters are queued again: at once when the sweep ran on this host and its process is gone,
  and after `gan.run.score.STALE_AFTER_S` without a heartbeat when it ran anywhere else (several
  machines can work on one study through a shared database);
- with an out-of-process launcher (joblib, submitit), `n_jobs` trials run at once and each is
  told to Optuna as soon as it ends (no batches), with CPU threads split between them;
- `trials.csv` is rewritten after every trial and the best-so-far is logged;
- `pruner`: runs report their SWD to their trial and stop when Optuna's pruner says so
  (gan/pruning.py), and their trials end PRUNED;
- two directions make a two-objective study of (score, SWD), with a Pareto front;
- `confirm`: rerun another study's best settings over new seeds (gan/confirm.py).
The keys are StudySweeperConf's, stored as `hydra/sweeper=optuna`.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    distribution_to_json,
    json_to_distribution,
)
from optuna.trial import FrozenTrial, TrialState

from gan.config import flatten
from gan.files import atomic_write
from gan.run import hardware, interrupts
from gan.run.command import command
from gan.run.folder import RunFolder, owner, read_summary
from gan.run.score import STALE_AFTER_S
from gan.study import confirm as confirming
from gan.study.pruning import make_pruner
from gan.study.storage import TARGET, open_study, storage_url, study_name

log = logging.getLogger(__name__)

OWNER = "pumpgan_owner"  # user attr: host:pid of the sweep process that ran the trial
HEARTBEAT = "pumpgan_heartbeat"  # user attr: unix time, renewed while the trial runs
# user attrs: the run's sliced Wasserstein distance to the data (summary.json quality.swd),
# which breaks ties between equal scores (gan.run.score.rank_key), and its final grid's diversity
SWD, DIVERSITY = "swd", "diversity"
COLLAPSED_AT = "collapsed_at"  # user attr: the run's collapse step (None: it never collapsed)
COMMAND = "command"  # user attr: the command that reproduces the trial's run (gan/reproduce.py)
HEARTBEAT_S = 30.0  # how often a sweep renews the heartbeats of its running trials
# user attr of a trial that was created but never launched (why): it counts toward nothing
NOT_RUN = "not_run"
# study user attrs: the search space (Optuna's JSON of each distribution) and the fixed settings
# (dotted key -> value) of the study's first sweep, which every later sweep of it must repeat
SPACE, SETTINGS = "pumpgan_search_space", "pumpgan_settings"
# study user attr: {"precision": "fp32" or "bf16", "channels_last": bool}, every trial's
PRECISION = "pumpgan_precision"
# config keys that say where or how fast a trial runs, not what it computes: neither recorded
# nor compared (the machines of one study may differ in them)
NOT_SETTINGS = ("hydra", "hardware", "resume", "data.cache_dir")


@dataclass
class StudySweeperConf(OptunaSweeperConf):
    """`hydra/sweeper=optuna` as pumpgan reads it: the Optuna plugin's keys, with pumpgan's
    sweeper as the target, plus

    - `pruner`: one of optuna.pruners (`_target_` and its arguments), e.g. MedianPruner,
      SuccessiveHalvingPruner, HyperbandPruner; runs with `eval.every` > 0 report their SWD to
      their trial and stop when it says so (gan/pruning.py). Unset: nothing is pruned.
    - `direction`: `maximize` (the score), or two directions, [maximize, minimize]: the score and
      the SWD of each run, a Pareto front instead of a best trial.
    - `confirm`: rerun the best settings of another study over new seeds (gan/confirm.py).

    Stored under the plugin's own name after the plugin's import, so that it replaces the
    plugin's schema whichever of the two Hydra's plugin scan imports first."""

    _target_: str = TARGET
    direction: Any = "maximize"
    pruner: Any = None
    confirm: confirming.ConfirmConf | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=StudySweeperConf, provider="pumpgan", replace=True
)


class StudyRefused(CompactHydraException):
    """A sweep whose study settings cannot run (said in one paragraph, exit 2)."""


def directions(direction: Any) -> list[str]:
    """`hydra.sweeper.direction` as a list of Optuna's names: one, or two for (score, SWD)."""
    items = list(direction) if isinstance(direction, list | tuple | ListConfig) else [direction]
    names = [str(getattr(d, "name", d)) for d in items]
    ok = names in (["maximize"], ["minimize"], ["maximize", "minimize"])
    if not ok:
        raise StudyRefused(
            f"hydra.sweeper.direction={names} is not a pumpgan study's: use maximize (the "
            "stability score), or [maximize, minimize] for two objectives (the score and the "
            "SWD, a Pareto front)"
        )
    return names


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
        pruner: Any = None,
        confirm: Any = None,
    ) -> None:
        if custom_search_space:
            raise StudyRefused("hydra.sweeper.custom_search_space is not supported by pumpgan")
        self.sampler_cfg = sampler
        self.directions = directions(direction)
        if pruner is not None and len(self.directions) > 1:
            raise StudyRefused(
                "hydra.sweeper.pruner is set for a two-objective study: Optuna's pruners work on "
                "one objective only. Remove the pruner, or keep one direction."
            )
        self.pruner_cfg = pruner
        self.confirm = confirm
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
        # which study file of sweeps/ the trials compose: part of the command that reproduces each
        self.choices = dict(config.hydra.runtime.choices)

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
        top: list[FrozenTrial] = []
        if self.confirm is not None:
            space, top, seeds = self._confirm_space(space)
        cfg = cast(dict[str, Any], OmegaConf.to_container(self.sampler_cfg))
        self.sampler, grid_size = make_sampler(cfg, space)
        if grid_size is not None:
            self.n_trials = min(self.n_trials, grid_size)
        pruner = make_pruner(self.pruner_cfg)
        study = open_study(self.study_name, self.storage, self.sampler, self.directions, pruner)
        assert self.config is not None
        keep_settings(study, self.storage, space, study_settings(self.config, space))
        source = self.source.user_attrs.get(PRECISION) if self.confirm is not None else None
        fixed.update(study_precision(study, self.config, space, source))
        if top and not study.trials:  # a new confirm study: its trials, all known in advance
            confirming.enqueue(study, top, seeds)
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
                "Nothing to do: the study already has its %d trials. For a new study choose "
                "another hydra.sweep.dir (and, with a shared hydra.sweeper.storage, another "
                "hydra.sweeper.study_name).",
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
        # trials at once on this machine (joblib, submitit_local): split its cores between them
        # rather than oversubscribing them; Slurm gives each trial the cores of its own job
        local = type(self.launcher).__name__ != "SlurmLauncher"
        if n_jobs > 1 and local and not any(k.startswith("hardware.threads") for k in fixed):
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

    def _confirm_space(
        self, space: dict[str, BaseDistribution]
    ) -> tuple[dict[str, BaseDistribution], list[FrozenTrial], list[int]]:
        """For `hydra.sweeper.confirm`: the search space (the confirmed study's, and the seed),
        the top settings and the seeds; n_trials becomes settings x seeds. Refused: a search
        space of its own, or fixed settings other than the ones the study ran with."""
        assert self.confirm is not None and self.config is not None
        if space:
            raise StudyRefused(
                "hydra.sweeper.confirm reruns another study's settings and searches nothing, but "
                f"this sweep searches {sorted(space)}. Remove hydra.sweeper.params and the "
                "swept overrides (a,b / interval(...)) from the command."
            )
        source = self.source = confirming.load_source(self.confirm)
        top = confirming.top_trials(source, self.confirm.top_k)
        seeds = confirming.seed_values(int(self.config.seed), self.confirm.seeds)
        space = confirming.confirm_space(top, seeds)
        self.n_trials = len(top) * len(seeds)
        recorded = source.user_attrs
        if SPACE in recorded:
            old_settings = {k: v for k, v in recorded.get(SETTINGS, {}).items() if k != "seed"}
            new_space = {k: distribution_to_json(d) for k, d in space.items() if k != "seed"}
            new_settings = study_settings(self.config, space)
            changes = changed_settings(recorded[SPACE], old_settings, new_space, new_settings)
            if changes:
                raise ChangedStudy(
                    f"Study {source.study_name!r} ran with other settings than this confirm "
                    f"sweep's, so the reruns would not confirm it: {'; '.join(changes)}. Run "
                    "the confirm sweep with the study's own settings (its sweeps/ file)."
                )
        else:
            log.warning(
                "Study %r recorded no settings (a pumpgan before 0a2b4ff): the confirm sweep "
                "cannot check that it runs the study's fixed settings",
                source.study_name,
            )
        log.info(
            "Confirming the %d best settings of study %r (trials %s) over seeds %s",
            len(top),
            source.study_name,
            [t.number for t in top],
            seeds,
        )
        return space, top, seeds

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
                try:
                    trial = start_trial(study, self.sampler, space, self.sweep_dir)
                    if taken_before(study, trial.number) >= self.n_trials:
                        # another sweep process asked at the same moment and got the last one
                        abandon(study, trial.number, "the study's n_trials were all taken")
                        log.info("trial %d not run: the study's n_trials are taken", trial.number)
                        return
                except Exception as e:  # noqa: BLE001 - a broken study stops the sweep
                    self.errors.append(e)
                    return
                self.running.add(trial.number)
                overrides = [f"{k}={v}" for k, v in {**trial.params, **fixed}.items()]
                trial.set_user_attr(COMMAND, command(overrides, self.choices))
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
                score, error = (None if pruned else float(ret.return_value)), None
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
                quality = summary.get("quality")
                for attr in (SWD, DIVERSITY):
                    if isinstance(quality, dict) and attr in quality:
                        trial.set_user_attr(attr, quality[attr])
                if "collapsed_at" in summary:  # a collapse, also one at the last step (score 1.0)
                    trial.set_user_attr(COLLAPSED_AT, summary["collapsed_at"])
                values = None if score is None else objectives(study, score, quality)
                if error is None and score is None:  # pruned
                    tell(study, trial.number, None, TrialState.PRUNED)
                    log.info(
                        "trial %d: pruned at step %s (SWD %s)",
                        trial.number,
                        summary.get("pruned_at"),
                        quality.get(SWD) if isinstance(quality, dict) else None,
                    )
                elif error is None and values is not None and all(map(math.isfinite, values)):
                    tell(study, trial.number, values)
                    self._report_trial(study, trial.number, values)
                else:
                    if error is None:
                        error = ValueError(f"the run returned no finite objective values: {values}")
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

    def _report_confirm(self, study: optuna.Study) -> dict[str, Any]:
        """confirm.csv and the confirm sweep's lines in sweep.log; the confirmed best, for
        optimization_results.yaml."""
        assert self.confirm is not None
        source = self.source
        found = confirming.settings(study, source, self.confirm.seeds, read_summary)
        best = confirming.confirmed_best(found)
        confirming.write_csv(self.sweep_dir / confirming.CSV_NAME, found, best)
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

    def _report_trial(self, study: optuna.Study, number: int, values: list[float]) -> None:
        if study._is_multi_objective():
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

    def _report_end(self, study: optuna.Study) -> None:
        done = count(study, TrialState.COMPLETE)
        if done == 0:
            log.warning("No trial completed; see the run folders under %s", self.sweep_dir)
            return
        counts = (done, count(study, TrialState.PRUNED), count(study, TrialState.FAIL))
        results: dict[str, Any] = {"study": self.study_name, "storage": self.storage}
        if self.confirm is not None:
            results.update(self._report_confirm(study))
        elif study._is_multi_objective():
            front = pareto_front(study)
            log.info(
                "Study %r: %d trials complete, %d pruned, %d failed. Pareto front (score, SWD): %s",
                self.study_name,
                *counts,
                "; ".join(f"trial {t.number} {t.values[0]:.4f}, {t.values[1]:.2f}" for t in front),
            )
            results["pareto_front"] = [
                {"trial": t.number, "score": t.values[0], "swd": t.values[1], "params": t.params}
                | {"command": t.user_attrs.get(COMMAND)}
                for t in front
            ]
        else:
            best = best_trial(study)
            log.info(
                "Study %r: %d trials complete, %d pruned, %d failed. Best: trial %d, score %.4f, "
                "%s",
                self.study_name,
                *counts,
                best.number,
                best.value,
                best.params,
            )
            results.update(best_trial=best.number, best_value=best.value, best_params=best.params)
            results["best_command"] = best.user_attrs.get(COMMAND)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / "optimization_results.yaml")


class TrialSampler(optuna.samplers.BaseSampler):
    """The study's sampler, built afresh for each trial by `build(trial number)` and given every
    call about that trial. `make_sampler` seeds it with the study's seed + the trial number: the
    storage gives each trial of a study its own number, so sweep processes that share a study
    never draw alike by sharing a seed, and a trial's draw does not depend on which process, or
    how many trials before it, asked for it."""

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler]) -> None:
        self.build = build
        # the trial of the latest call, and its sampler (study.ask starts with before_trial)
        self.number: int | None = None
        self.sampler: optuna.samplers.BaseSampler | None = None

    def _of(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if self.sampler is None or trial.number != self.number:
            self.number, self.sampler = trial.number, self.build(trial.number)
        return self.sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._of(trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        self._of(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        if self.sampler is not None:
            self.sampler.reseed_rng()


def make_sampler(
    cfg: dict[str, Any], space: dict[str, BaseDistribution]
) -> tuple[TrialSampler, int | None]:
    """The sampler of `hydra.sweeper.sampler` seeded per trial (seed + trial number), and for
    the grid sampler the size of its grid (None for the others). The grid sampler is built once:
    its seed shuffles the grid, and it gives trial N the Nth point of it, which no other trial
    gets."""
    seed = cfg.get("seed")

    def build(number: int) -> Any:
        seeded = cfg if seed is None else {**cfg, "seed": seed + number}
        return instantiate(seeded, _execution_whitelist_=("optuna.samplers.*",))

    sampler = build(0)
    if isinstance(sampler, functools.partial):  # GridSampler: its grid is the search space
        grid = {name: grid_choices(d) for name, d in space.items()}
        grid_sampler = sampler(grid)
        return TrialSampler(lambda number: grid_sampler), math.prod(map(len, grid.values()))
    return TrialSampler(build), None


def study_precision(
    study: optuna.Study,
    config: DictConfig,
    space: dict[str, BaseDistribution],
    inherited: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """hardware.precision and hardware.channels_last for every trial of the study, so that its
    trials differ in their settings only. Decided once, at the study's first sweep: the
    sweep's own values, or with precision=auto what gan.run.hardware.setup picks here (timed once,
    on the CPU; `inherited`: a confirm study takes its source study's), recorded in the study;
    a later sweep with auto reuses the record and one that asks for another is refused."""
    if any(k.startswith("hardware.") for k in space):
        return {}  # the study searches the hardware itself
    hw = config.hardware
    asked = None
    if hw.precision != "auto":
        asked = {"precision": str(hw.precision), "channels_last": bool(hw.channels_last)}
    recorded = study.user_attrs.get(PRECISION)
    if recorded is None:
        decided = asked or inherited
        if decided is None:
            chosen = hardware.setup(hw, config.model, config.train.batch_size)
            precision = "bf16" if chosen.bf16 else "fp32"
            decided = {"precision": precision, "channels_last": chosen.channels_last}
            log.info(
                "Study %r trains every trial in %s%s (hardware.precision=auto, decided once)",
                study.study_name,
                precision,
                f", timed at {chosen.timings} s/step" if chosen.timings else "",
            )
        study.set_user_attr(PRECISION, decided)
        recorded = study.user_attrs[PRECISION]  # a sweep that recorded at the same moment won
    if asked is not None and asked != recorded:
        raise ChangedStudy(
            f"Study {study.study_name!r} trains every trial with hardware.precision="
            f"{recorded['precision']} hardware.channels_last={recorded['channels_last']}, decided "
            f"at its first sweep; this sweep asks for hardware.precision={asked['precision']} "
            f"hardware.channels_last={asked['channels_last']}, so its trials would not compare. "
            "Rerun it with hardware.precision=auto (the study's own choice), or start a new "
            "study in a new hydra.sweep.dir."
        )
    return {
        "hardware.precision": recorded["precision"],
        "hardware.channels_last": recorded["channels_last"],
    }


class ChangedStudy(StudyRefused):
    """A sweep whose search space or fixed settings differ from those its study started with."""


def study_settings(config: DictConfig, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The fixed settings of a sweep's trials: the composed config (the study's values and the
    fixed overrides applied), as dotted key -> value, less the swept keys and NOT_SETTINGS."""
    task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
    values = flatten(cast(dict[str, Any], OmegaConf.to_container(task, resolve=True)))
    skipped = (*NOT_SETTINGS, *space)
    settings = {
        k: v for k, v in values.items() if not any(k == s or k.startswith(f"{s}.") for s in skipped)
    }
    return cast(dict[str, Any], json.loads(json.dumps(settings)))  # as the storage returns it


def keep_settings(
    study: optuna.Study,
    storage: str,
    space: dict[str, BaseDistribution],
    settings: dict[str, Any],
) -> None:
    """Record the search space and fixed settings of a study's first sweep in the study; raise
    ChangedStudy, naming what differs, for a later sweep with others (its trials would not
    compare with the study's)."""
    new = {SPACE: {k: distribution_to_json(d) for k, d in space.items()}, SETTINGS: settings}
    old = study.user_attrs
    if SPACE not in old:
        # SPACE last: it marks the record complete, so a sweep starting at the same moment never
        # reads a search space without its settings
        for attr in (SETTINGS, SPACE):
            study.set_user_attr(attr, new[attr])
        old = study.user_attrs  # a sweep that recorded others at the same moment may have won
    changes = changed_settings(old.get(SPACE, {}), old.get(SETTINGS, {}), new[SPACE], settings)
    if changes:
        raise ChangedStudy(
            f"Study {study.study_name!r} in {storage} was started with other settings than this "
            f"sweep's, so their trials would not compare: {'; '.join(changes)}. To continue the "
            "study, rerun it with its own settings. For a new study, choose a new hydra.sweep.dir "
            "(a new folder has a new optuna.db), or, where the study lives in "
            "hydra.sweeper.storage, a new hydra.sweeper.study_name together with a new "
            "hydra.sweep.dir."
        )


def changed_settings(
    old_space: dict[str, str],
    old_settings: dict[str, Any],
    new_space: dict[str, str],
    new_settings: dict[str, Any],
) -> list[str]:
    """`key: old -> new` for each swept key whose distribution differs, then for each fixed
    setting (not swept in either) whose value differs."""
    spaces = [{k: json_to_distribution(v) for k, v in s.items()} for s in (old_space, new_space)]
    changes = [
        f"{k}: {describe(spaces[0].get(k))} -> {describe(spaces[1].get(k))}"
        for k in sorted(spaces[0].keys() | spaces[1].keys())
        if spaces[0].get(k) != spaces[1].get(k)
    ]
    unset = object()
    swept = old_space.keys() | new_space.keys()
    for k in sorted((old_settings.keys() | new_settings.keys()) - swept):
        old, new = (s.get(k, unset) for s in (old_settings, new_settings))
        if old != new:
            shown = ["(not set)" if v is unset else json.dumps(v) for v in (old, new)]
            changes.append(f"{k}: {shown[0]} -> {shown[1]}")
    return changes


def describe(dist: BaseDistribution | None) -> str:
    """A distribution in the sweep syntax where it has one."""
    if dist is None:
        return "(not searched)"
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(map(str, dist.choices))})"
    if isinstance(dist, FloatDistribution) and dist.step is None:
        interval = f"interval({dist.low}, {dist.high})"
        return f"tag(log, {interval})" if dist.log else interval
    return str(dist)


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
    raise StudyRefused(f"the grid sampler needs choice() or range() parameters, not {dist}")


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


def abandon(study: optuna.Study, number: int, why: str) -> None:
    """Fail a trial that was never launched, with user attr NOT_RUN = why (it counts toward
    nothing); the parameters of a queued trial (a retry) are queued again."""
    trial = study.trials[number]
    study._storage.set_trial_user_attr(trial._trial_id, NOT_RUN, why)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    queued = trial.system_attrs.get("fixed_params")
    if queued:
        study.enqueue_trial(queued, user_attrs=purpose(trial), skip_if_exists=False)


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


def objectives(study: optuna.Study, score: float, quality: Any) -> list[float]:
    """A run's values for its study: [score], or [score, SWD] in a two-objective study (a run
    without an SWD gets NaN there, and fails)."""
    if not study._is_multi_objective():
        return [score]
    value = quality.get(SWD) if isinstance(quality, dict) else None
    return [score, float(value) if isinstance(value, int | float) else math.nan]


def tell(
    study: optuna.Study,
    number: int,
    values: list[float] | None,
    state: TrialState = TrialState.COMPLETE,
) -> None:
    """Record a trial's values (None: failed, unless `state` is PRUNED). The grid sampler calls
    Study.stop() once its grid is done, which raises outside Study.optimize; the sweep stops by
    its n_trials anyway."""
    if study.trials[number].state.is_finished():
        log.warning(
            "trial %d ended (%s), but another sweep process had already marked it failed "
            "(no heartbeat for %.0f s); the result stays in its run folder only",
            number,
            values if values is not None else state.name,
            STALE_AFTER_S,
        )
        return
    try:
        if values is not None:
            study.tell(number, values)
        elif state == TrialState.PRUNED:
            study.tell(number, state=TrialState.PRUNED)
        else:
            study.tell(number, state=TrialState.FAIL)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def requeue(study: optuna.Study, number: int, reason: str) -> None:
    """Fail a trial that did not get to finish (`reason` set as a user attribute, so it counts
    against no failure budget) and queue its parameters again."""
    trial = study.trials[number]
    study._storage.set_trial_user_attr(trial._trial_id, reason, True)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    attrs = {**purpose(trial), "retry_of": number}
    study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)


# user attrs that record how a trial ran, not what it is for: a trial queued again gets its own
RUN_ATTRS = (OWNER, HEARTBEAT, "run_dir", NOT_RUN, "stale", "interrupted", SWD, DIVERSITY, COMMAND)


def purpose(trial: FrozenTrial) -> dict[str, Any]:
    """The user attrs a trial queued again keeps: what it is for (a confirm trial's `confirms`,
    a retry's `retry_of`, ...), less how it ran (RUN_ATTRS, COLLAPSED_AT)."""
    return {k: v for k, v in trial.user_attrs.items() if k not in (*RUN_ATTRS, COLLAPSED_AT)}


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


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best complete trial as gan.compare ranks runs (gan.run.score.rank_key: ties on the score
    broken by the lower SWD, then the first trial); Optuna's own best_trial would take the
    first of the tied trials."""
    return confirming.top_trials(study, 1)[0]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials no other complete trial beats on both the score and the SWD, best
    score first."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1], t.number))


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """One row per trial, from the study itself (so the file always agrees with it) and the
    trial's run folder summary."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.distributions})
    multi = study._is_multi_objective()
    front = {t.number for t in study.best_trials} if multi else set()
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
                *([t.number in front] if multi else []),
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
                    "steps_done",
                    "collapsed_at",
                    "reason",
                    "swd",
                    "diversity",
                    "wall_s",
                    "run_dir",
                    "command",
                    *(["pareto_front"] if multi else []),
                    *names,
                ]
            )
            writer.writerows(rows)

    atomic_write(path, write)

