"""Population-based training's decisions (Jaderberg et al. 2017), without the running: after each
interval, rank the population, let the bottom members continue from a top member's checkpoint
(exploit) with its hyperparameters perturbed (explore), and let the rest continue their own.

The members are run folders' states: a member's next segment is a resumed run (`resume=` its
own latest run folder, or after an exploit another member's) with the hyperparameters
`next_segments` gives, which a resumed run trains with (gan/run/checkpoint.py, tested in
tests/test_truth.py). So only keys a resume may change can be searched (`unsearchable`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from gan.config import SCHEDULE_KEYS

# user attrs of a population's trials (gan/study/population.py)
MEMBER, GENERATION = "member", "generation"
PARENT, PARENT_TRIAL = "parent", "parent_trial"  # the member, and its trial, whose weights go on
RESUMED = "resumed"  # the run folder whose checkpoint the segment continues
EXPLOITED = "exploited"  # True where the member took another member's weights
PBT = "pbt"  # study user attr: the population's PBTConf and its number of generations


@dataclass
class PBTConf:
    """`hydra.sweeper.pbt`: the population, its interval, and how the hyperparameters of an
    exploiting member are perturbed (explore) and who exploits whom."""

    # members trained at once: each generation is this many trials
    population: int = 8
    # steps per segment: the members are ranked, and the bottom ones exploit, every `interval`
    # steps up to train.steps
    interval: int = 250
    # each continuous key is multiplied by one of these, drawn with equal odds (within the
    # space's bounds); an integer key is then rounded
    factors: list[float] = field(default_factory=lambda: [0.8, 1.2])
    # each categorical key is drawn again from its choices with this probability
    resample_probability: float = 0.25
    # the bottom this fraction of the population copies a member of the top this fraction
    quantile: float = 0.25


@dataclass
class Member:
    """One member after an interval: its hyperparameters, the run folder of its latest segment
    (whose checkpoint the next continues) and how that segment ended."""

    number: int
    params: dict[str, Any]
    run_dir: str
    collapsed: bool = False
    swd: float | None = None


@dataclass
class Segment:
    """A member's next segment: the hyperparameters it trains with, the run folder it resumes,
    and the member whose weights those are (itself unless it exploited another)."""

    member: int
    params: dict[str, Any]
    resume: str
    parent: int
    exploited: bool = False
    changed: dict[str, Any] = field(default_factory=dict)


def rank(members: list[Member]) -> list[Member]:
    """Best first: a member that collapsed ranks below every one that did not; then the lowest
    SWD at the interval (a missing or non-finite SWD last); then the member's number."""

    def key(m: Member) -> tuple[bool, float, int]:
        swd = m.swd if m.swd is not None and math.isfinite(m.swd) else math.inf
        return (m.collapsed, swd, m.number)

    return sorted(members, key=key)


def next_segments(
    members: list[Member],
    space: dict[str, BaseDistribution],
    explore: PBTConf,
    rng: random.Random,
) -> list[Segment]:
    """Each member's next segment, in member order: the bottom `explore.quantile` (at least
    one member of a population of two or more) copies a top member drawn at random, with
    perturbed hyperparameters; the others go on as they are. A collapsed member is always in
    the bottom."""
    ranked = rank(members)
    k = max(1, int(len(ranked) * explore.quantile)) if len(ranked) > 1 else 0
    top = ranked[:k]
    bottom = {m.number for m in ranked[len(ranked) - k :]}
    bottom |= {m.number for m in ranked if m.collapsed and m not in top}
    segments = []
    for m in sorted(members, key=lambda m: m.number):
        if m.number not in bottom or not top:
            segments.append(Segment(m.number, dict(m.params), m.run_dir, m.number))
            continue
        donor = rng.choice(top)
        params = perturb(donor.params, space, explore, rng)
        changed = {k: v for k, v in params.items() if v != m.params.get(k)}
        segments.append(
            Segment(m.number, params, donor.run_dir, donor.number, exploited=True, changed=changed)
        )
    return segments


def perturb(
    params: dict[str, Any],
    space: dict[str, BaseDistribution],
    explore: PBTConf,
    rng: random.Random,
) -> dict[str, Any]:
    """`params` explored: continuous keys scaled by a factor within their bounds (a log-scale
    key's factor is a step in its log space), categorical keys sometimes drawn again."""
    out = dict(params)
    for key, dist in space.items():
        if key not in out:
            continue
        if isinstance(dist, CategoricalDistribution):
            if rng.random() < explore.resample_probability:
                out[key] = rng.choice(list(dist.choices))
        elif isinstance(dist, FloatDistribution | IntDistribution):
            value = min(max(out[key] * rng.choice(explore.factors), dist.low), dist.high)
            out[key] = int(round(value)) if isinstance(dist, IntDistribution) else value
    return out


def unsearchable(space: dict[str, BaseDistribution], fixed_on_resume: tuple[str, ...]) -> list[str]:
    """The searched keys a population cannot change between segments: a resumed run keeps its
    model's shapes (model.*), its config groups' options (`augment`: its keys can change) and
    what its checkpoint fixes (`fixed_on_resume`: gan.config's RESUME_KEEPS), so such keys must be
    fixed in the study file instead."""
    fixed = ("model", *fixed_on_resume)
    return [k for k in space if "." not in k or any(k == f or k.startswith(f"{f}.") for f in fixed)]


def ancestry(generations: list[list[Segment]], member: int) -> list[Segment]:
    """The segments whose training the weights of `member`'s last segment hold, oldest first:
    its last segment, the one whose checkpoint that continued (the parent's segment of the
    generation before), and so on back to the first generation. `generations[g]` lists every
    member's segment of generation g."""
    chain: list[Segment] = []
    for segments in reversed(generations):
        segment = next(s for s in segments if s.member == member)
        chain.append(segment)
        member = segment.parent
    return chain[::-1]


def replay(chain: list[Segment], interval: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A chain of segments (`ancestry`) as one run's settings: the first segment's values and
    the optim.schedule entries that change them at each later segment's first step. Only
    SCHEDULE_KEYS can change within a run; a chain that changes another key cannot be replayed
    (ValueError naming it)."""
    start = dict(chain[0].params)
    entries, now = [], dict(start)
    for generation, segment in enumerate(chain[1:], start=1):
        changed = {k: v for k, v in segment.params.items() if now.get(k) != v}
        if any(k not in {f"optim.{key}" for key in SCHEDULE_KEYS} for k in changed):
            raise ValueError(
                f"generation {generation} changes {', '.join(sorted(changed))}: a run's "
                f"optim.schedule changes only optim.{', optim.'.join(SCHEDULE_KEYS)}"
            )
        if changed:
            entries.append(
                {
                    "step": generation * interval,
                    **{k.split(".", 1)[1]: v for k, v in changed.items()},
                }
            )
        now.update(changed)
    return start, entries


def replay_overrides(start: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """`replay`'s settings as command-line overrides of one run (`python run.py ...`)."""
    overrides = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in start.items()]
    if entries:
        items = ", ".join(
            "{" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}" for entry in entries
        )
        overrides.append(f"optim.schedule=[{items}]")
    return overrides
