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
  (gan/study/pruning.py), and their trials end PRUNED;
- two directions make a two-objective study of (score, SWD), with a Pareto front;
- `confirm`: rerun another study's best settings over new seeds (gan/study/confirm.py).
The keys are StudySweeperConf's, stored as `hydra/sweeper=optuna`. This module holds the order of
a study; the details are in gan/study: settings (search space, fixed settings, precision),
sampler, loop (the trials run: ask, launch, tell), trials (one trial in the study: start, tell,
fail, requeue, stale), ranking, and results (trials.csv, sweep.log's lines,
optimization_results.yaml).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from gan.config import RESUME_KEEPS
from gan.study import confirm as confirming
from gan.study.errors import StudyRefused
from gan.study.loop import TrialLoop
from gan.study.pbt import PBTConf, unsearchable
from gan.study.population import Population, pbt_conf
from gan.study.pruning import make_pruner
from gan.study.ranking import top_trials
from gan.study.results import TRIALS_CSV, report_end, write_trials_csv
from gan.study.sampler import first_values, make_sampler
from gan.study.settings import (
    PRECISION,
    keep_settings,
    keep_source_settings,
    search_space,
    study_precision,
    study_settings,
)
from gan.study.storage import TARGET, open_study, storage_url, study_name
from gan.study.trials import fail_stale_trials, trials_used

__all__ = ["StudySweeper", "StudySweeperConf", "directions"]

log = logging.getLogger(__name__)

# the modules whose log lines make up a sweep's sweep.log
SWEEP_LOG = (
    __name__,
    "gan.study.settings",
    "gan.study.loop",
    "gan.study.trials",
    "gan.study.results",
    "gan.study.population",
)


@dataclass
class StudySweeperConf(OptunaSweeperConf):
    """`hydra/sweeper=optuna` as pumpgan reads it: the Optuna plugin's keys, with pumpgan's
    sweeper as the target, plus

    - `pruner`: one of optuna.pruners (`_target_` and its arguments), e.g. MedianPruner,
      SuccessiveHalvingPruner, HyperbandPruner; runs with `eval.every` > 0 report their SWD to
      their trial and stop when it says so (gan/study/pruning.py). Unset: nothing is pruned.
    - `direction`: `maximize` (the score), or two directions, [maximize, minimize]: the score and
      the SWD of each run, a Pareto front instead of a best trial.
    - `confirm`: rerun the best settings of another study over new seeds (gan/study/confirm.py).
    - `pbt`: population-based training (gan/study/population.py): generations of `population`
      members, each trained `interval` steps at a time, the worst continuing the best's weights
      with explored values.

    Stored under the plugin's own name after the plugin's import, so that it replaces the
    plugin's schema whichever of the two Hydra's plugin scan imports first."""

    _target_: str = TARGET
    direction: Any = "maximize"
    pruner: Any = None
    confirm: confirming.ConfirmConf | None = None
    pbt: PBTConf | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=StudySweeperConf, provider="pumpgan", replace=True
)


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
    """Hydra's sweeper for `-m`: one sweep of a study, with the keys of StudySweeperConf."""

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
        pbt: Any = None,
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
        self.pbt = pbt_conf(pbt, pruner, confirm, self.directions, sampler)
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.max_failure_rate = max_failure_rate
        self.params: dict[str, Any] = {str(k): v for k, v in (params or {}).items()}

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
        loggers = [logging.getLogger(name) for name in SWEEP_LOG]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            self._sweep(arguments)
        finally:
            for logger in loggers:
                logger.removeHandler(handler)

    def _sweep(self, arguments: list[str]) -> None:
        """A study in order: its search space, the study opened, its settings checked, its
        precision decided, its killed trials queued again, its trials run (ask, launch, tell:
        gan.study.loop.TrialLoop), and its report."""
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + arguments)
        top: list[FrozenTrial] = []
        seeds: list[int] = []
        if self.confirm is not None:
            space, top, seeds = self._confirm_space(space)
        study = self._open_study(space)
        assert self.config is not None and self.launcher is not None
        keep_settings(study, self.storage, space, study_settings(self.config, space))
        inherited = self.source.user_attrs.get(PRECISION) if self.confirm is not None else None
        fixed.update(study_precision(study, self.config, space, inherited))
        if top and not study.trials:  # a new confirm study: its trials, all known in advance
            confirming.enqueue(study, top, seeds)
        population = self._population(study, space) if self.pbt is not None else None
        self._resume(study)
        n_jobs = self._parallel(fixed)

        # the TrialLoop of this sweep's trials (n_trials, and a population's per_trial, to come)
        loop = partial(
            TrialLoop,
            study,
            self.sampler,
            space,
            fixed,
            launcher=self.launcher,
            sweep_dir=self.sweep_dir,
            choices=self.choices,
            max_failure_rate=self.max_failure_rate,
        )
        if population is not None:
            population.run(loop, n_jobs, self.sweep_dir)
            errors = population.errors
        else:
            trials = loop(n_trials=self.n_trials)
            trials.run(n_jobs)
            errors = trials.errors
        write_trials_csv(study, self.sweep_dir / TRIALS_CSV)
        if self.confirm is not None:
            report_end(study, self.storage, self.sweep_dir, self.source, self.confirm.seeds)
        else:
            extra = population.answer(fixed, self.choices) if population is not None else None
            report_end(study, self.storage, self.sweep_dir, extra=extra)
        if errors:
            raise errors[0]

    def _population(self, study: optuna.Study, space: dict[str, BaseDistribution]) -> Population:
        """For `hydra.sweeper.pbt`: the population, its n_trials (members x generations).
        Refused: keys a resumed run cannot change (gan.study.pbt.unsearchable), or no space."""
        assert self.pbt is not None and self.config is not None
        fixed_keys = unsearchable(space, RESUME_KEEPS)
        if fixed_keys or not space:
            raise StudyRefused(
                (
                    f"hydra.sweeper.pbt cannot search {', '.join(fixed_keys)}: a member's "
                    "segments resume one checkpoint, which fixes the nets' shapes (model.*), "
                    "the config groups' options and " + ", ".join(RESUME_KEEPS) + ". "
                    if fixed_keys
                    else "hydra.sweeper.pbt has nothing to explore: its search space is empty. "
                )
                + "Fix those keys in the study file and search values a run can change "
                "between segments, e.g. optim.gen_lr: tag(log, interval(2e-5, 5e-3))."
            )
        cfg = self.config
        during = int(cfg.eval.get("num_images_during") or 0)
        population = Population(
            study,
            self.pbt,
            space,
            partial(first_values, self.sampler, space),
            steps=int(cfg.train.steps),
            seed=int(self.sampler_cfg.get("seed") or 0),
            images=(int(cfg.eval.num_images), during),
        )
        if self.n_trials != population.n_trials:
            log.info(
                "hydra.sweeper.n_trials=%d ignored: a population of %d over %d generations "
                "runs %d trials",
                self.n_trials,
                self.pbt.population,
                population.generations,
                population.n_trials,
            )
        self.n_trials = population.n_trials
        return population

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
        top = top_trials(source, self.confirm.top_k)
        seeds = confirming.seed_values(int(self.config.seed), self.confirm.seeds)
        space = confirming.confirm_space(top, seeds)
        self.n_trials = len(top) * len(seeds)
        keep_source_settings(source, self.config, space)
        log.info(
            "Confirming the %d best settings of study %r (trials %s) over seeds %s",
            len(top),
            source.study_name,
            [t.number for t in top],
            seeds,
        )
        return space, top, seeds

    def _open_study(self, space: dict[str, BaseDistribution]) -> optuna.Study:
        """The study, with its sampler (seeded per trial; a grid caps n_trials at its size) and
        its pruner."""
        cfg = cast(dict[str, Any], OmegaConf.to_container(self.sampler_cfg))
        self.sampler, grid_size = make_sampler(cfg, space)
        if grid_size is not None:
            self.n_trials = min(self.n_trials, grid_size)
        pruner = make_pruner(self.pruner_cfg)
        return open_study(self.study_name, self.storage, self.sampler, self.directions, pruner)

    def _resume(self, study: optuna.Study) -> None:
        """Fail and queue again the trials a killed sweep left RUNNING; say where the study
        stands."""
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

    def _parallel(self, fixed: dict[str, Any]) -> int:
        """How many trials run at once: n_jobs, but one with the basic launcher. With several at
        once on this machine, each gets its share of the cores (hardware.threads in `fixed`,
        unless the sweep sets it)."""
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
        return n_jobs
