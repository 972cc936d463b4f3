"""The study's sampler, seeded per trial: `hydra.sweeper.sampler` built afresh for each trial
with the study's seed + the trial number (TrialSampler, make_sampler), or the grid sampler over
the search space's choices."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from gan.study.errors import StudyRefused


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
        return GridTrialSampler(lambda number: grid_sampler), math.prod(map(len, grid.values()))
    return TrialSampler(build), None


def first_values(
    sampler: TrialSampler, space: dict[str, BaseDistribution], number: int
) -> dict[str, Any]:
    """What `sampler` draws for trial `number` of a study that has no finished trial, drawn in a
    throwaway in-memory study: a population's member m starts with trial m's draw whatever
    number its first trial gets (two sweep processes that queue a generation at once interleave
    the numbers)."""
    study = optuna.create_study(sampler=sampler.build(number))
    return study.ask(space).params


class GridTrialSampler(TrialSampler):
    """TrialSampler for the grid sampler, which is told nothing when a trial ends."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        # GridSampler.after_trial only calls Study.stop() once the grid is done, which raises
        # outside Study.optimize (the sweep stops by its n_trials instead), and it raises
        # KeyError('grid_id') for a trial queued again (a retry has fixed_params, no grid_id)
        # when one grid point is left: Study.tell would store the trial's state, then fail.
        return


def grid_choices(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    raise StudyRefused(f"the grid sampler needs choice() or range() parameters, not {dist}")
