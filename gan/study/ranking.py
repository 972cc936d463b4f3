"""How a study ranks its trials: the best trial (the score, ties broken by the lower SWD, as
gan.compare ranks runs), the k best settings, and a two-objective study's Pareto front."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from gan.run.score import rank_key
from gan.study.errors import NoStudy
from gan.study.pbt import GENERATION, PBT


def two_objectives(study: optuna.Study) -> bool:
    """Whether the study has two objectives (score, SWD) and so a Pareto front."""
    return len(study.directions) > 1


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The k best complete trials of distinct settings, best first, as the study ranks them:
    the first objective (the score), then the SWD (a second objective, or the user attr)."""
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1

    def key(t: FrozenTrial) -> tuple[bool, float, float]:
        swd = t.values[1] if len(t.values) > 1 else t.user_attrs.get("swd")
        return rank_key(sign * t.values[0], swd)

    ranked = sorted(answers(study), key=key)
    top: list[FrozenTrial] = []
    for t in ranked:
        if len(top) < k and all(t.params != other.params for other in top):
            top.append(t)
    if not top:
        raise NoStudy(
            f"Study {study.study_name!r} has no complete trial to confirm; let it run first."
        )
    return top


def answers(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials that can answer the study: all of them, but of a population only
    its last generation (its earlier segments are runs cut at an interval, and their SWD is
    measured on fewer images)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if PBT not in study.user_attrs:
        return done
    last = max((t.user_attrs.get(GENERATION, -1) for t in done), default=-1)
    return [t for t in done if t.user_attrs.get(GENERATION) == last]


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best complete trial as gan.compare ranks runs (gan.run.score.rank_key: ties on the score
    broken by the lower SWD, then the first trial); Optuna's own best_trial would take the
    first of the tied trials."""
    return top_trials(study, 1)[0]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials no other complete trial beats on both the score and the SWD, best
    score first."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1], t.number))
