"""The run's side of a pruned study: report the SWD to the run's trial and ask the pruner.

A run launched by gan.study.sweeper.StudySweeper knows its study, storage and trial number (from
Hydra's config, gan.study.storage.trial_of_job), in the process the launcher gave it (basic, joblib,
submitit). With `eval.every` > 0, every evaluation's SWD becomes an intermediate value of the
trial, and the pruner of `hydra.sweeper.pruner` (rebuilt here: Optuna keeps pruners out of the
storage) decides whether the run stops. The run then ends with status `pruned`, and the sweeper
marks the trial PRUNED.

Optuna compares intermediate values in the study's direction. A study that maximises the
stability score gets -SWD, so that "higher is better" holds for its intermediate values too; a
study that minimises gets the SWD itself.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from hydra.utils import instantiate

log = logging.getLogger(__name__)

# what `hydra.sweeper.pruner` may instantiate
PRUNERS = ("optuna.pruners.*",)


def make_pruner(cfg: Any) -> optuna.pruners.BasePruner:
    """`hydra.sweeper.pruner` (a `_target_` of optuna.pruners); unset: one that never prunes
    (the SWD is still reported, for Optuna's intermediate-values plot)."""
    if cfg is None:
        return optuna.pruners.NopPruner()
    return instantiate(cfg, _execution_whitelist_=PRUNERS)


class TrialReporter:
    """Called with each evaluation of a run: reports its SWD to the trial, and returns True when
    the pruner stops the run (`pruned_at` is then that step)."""

    def __init__(self, study: str, storage: str, trial: int, pruner: Any) -> None:
        self.study = optuna.load_study(
            study_name=study,
            storage=storage,
            pruner=make_pruner(pruner),
            sampler=optuna.samplers.RandomSampler(),  # unused: the trial is already sampled
        )
        if len(self.study.directions) > 1:
            raise ValueError(
                "hydra.sweeper.pruner is set for a study with several directions; Optuna's "
                "pruners work on single-objective studies only. Remove the pruner, or keep one "
                "direction."
            )
        minimize = self.study.direction == optuna.study.StudyDirection.MINIMIZE
        self.sign = 1.0 if minimize else -1.0
        self.trial = trial_of(self.study, trial)
        self.pruned_at: int | None = None

    def __call__(self, step: int, swd: float) -> bool:
        try:
            self.trial.report(self.sign * swd, step)
            prune = self.trial.should_prune()
        except Exception as e:  # noqa: BLE001 - a storage hiccup must not end a training run
            log.warning(
                "Could not report step %d's SWD to trial %d of study %r (%s: %s); the run goes "
                "on, unpruned at this step",
                *(step, self.trial.number, self.study.study_name, type(e).__name__, e),
            )
            return False
        if prune:
            self.pruned_at = step
        return prune


def trial_of(study: optuna.Study, number: int) -> optuna.Trial:
    """The running trial `number` of the study, to report to and ask the pruner through."""
    # Optuna's private storage API: Optuna 5 has no public way to get the optuna.Trial of an
    # existing trial by its number (only Study.ask, which creates one or takes a queued one);
    # optuna.Trial(study, trial_id) takes the storage's trial id, which only the private
    # storage API (or the private FrozenTrial._trial_id) gives.
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)
