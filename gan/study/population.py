"""Population-based training as a study (`hydra.sweeper.pbt`): generations of `population`
trials, each a segment of `interval` steps of one member. Generation 0 draws each member's
hyperparameters from the study's space (member m: the sampler's draw for trial m); each later
generation ranks the one before (gan/study/pbt.py) and queues every member's next segment: a
resume of its own last run folder, or for the bottom members a resume of a top member's, with
explored values.

All that the population knows lives in the study's storage, as user attrs of its trials (member,
generation, the parent member and trial whose checkpoint a segment continues), so a killed sweep
continues where it stopped when the same command is run again, and several sweep processes
(joblib workers, submitit jobs, machines sharing one database) can work on one population: a
generation waits for all of the one before it, and a member's segment that two processes queued
at once runs once (the later trial is failed as never run)."""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from gan.files import atomic_write
from gan.run.command import command
from gan.study.errors import StudyRefused
from gan.study.loop import TrialLoop
from gan.study.pbt import (
    EXPLOITED,
    GENERATION,
    MEMBER,
    PARENT,
    PARENT_TRIAL,
    PBT,
    RESUMED,
    Member,
    PBTConf,
    Segment,
    ancestry,
    next_segments,
    replay,
    replay_overrides,
)
from gan.study.ranking import answers, best_trial
from gan.study.trials import (
    COLLAPSED_AT,
    SWD,
    abandon,
    counts,
    fail_stale_trials,
    trials_used,
)

log = logging.getLogger(__name__)

LINEAGE_CSV = "lineage.csv"
WAIT_S = 5.0  # how often a sweep process checks on segments other processes run


class Population:
    """One population of `conf.population` members trained to `steps` in segments of
    `conf.interval` steps, with hyperparameters from `space` (member m's first ones `first(m)`).
    `full_images` and `during_images` are the SWD's image counts: the last generation's
    (eval.num_images) and the others' (eval.num_images_during, or 0 for the same), which rank
    the members cheaply."""

    def __init__(
        self,
        study: optuna.Study,
        conf: PBTConf,
        space: dict[str, BaseDistribution],
        first: Callable[[int], dict[str, Any]],
        steps: int,
        seed: int,
        images: tuple[int, int],
    ) -> None:
        self.study, self.conf, self.space, self.seed = study, conf, space, seed
        self.first = first
        self.steps = steps
        self.full_images, self.during_images = images
        self.generations = math.ceil(steps / conf.interval)
        self.n_trials = self.generations * conf.population
        self.errors: list[BaseException] = []
        self._keep_conf()

    def _keep_conf(self) -> None:
        """Record the population's settings in the study at its first sweep; refuse others."""
        mine = {**asdict(self.conf), "generations": self.generations}
        mine["factors"] = list(mine["factors"])
        recorded = self.study.user_attrs.get(PBT)
        if recorded is None:
            self.study.set_user_attr(PBT, mine)
        elif recorded != mine:
            differ = sorted(k for k in mine if recorded.get(k) != mine[k])
            raise StudyRefused(
                f"study {self.study.study_name!r} is a population trained with "
                + ", ".join(f"{k}={recorded.get(k)}" for k in differ)
                + ", but this sweep says "
                + ", ".join(f"{k}={mine[k]}" for k in differ)
                + ". Rerun with the study's hydra.sweeper.pbt values to continue it, or start a "
                "new study (another hydra.sweep.dir)."
            )

    def run(self, loop: Callable[..., TrialLoop], n_jobs: int, sweep_dir: Path) -> None:
        """Each generation in turn: queue it (unless queued already), run its trials with
        `loop(n_trials, per_trial)` (a TrialLoop with the study's sampler, space, fixed settings
        and launcher), wait for those other sweep processes run; lineage.csv after each."""
        for g in range(self.generations):
            if not self.queue(g):
                return
            n_trials = (g + 1) * self.conf.population
            while not self._complete(g):
                trials = loop(n_trials=n_trials, per_trial=self.segment)
                trials.run(n_jobs)
                write_lineage(self.study, sweep_dir / LINEAGE_CSV, self.conf.interval, self.steps)
                if trials.errors:
                    self.errors = trials.errors
                    return
                if self._complete(g):
                    break
                if not self._waiting(g) or trials_used(self.study) >= n_trials:
                    # the rest of generation g runs in other sweep processes
                    time.sleep(WAIT_S)
                    fail_stale_trials(self.study)
            self._drop_copies(g)

    def segment(self, trial: optuna.Trial) -> dict[str, Any] | str:
        """The overrides of a trial's segment: the checkpoint it continues (resume=), its last
        step, and its SWD's image count; or why it is not run."""
        attrs = trial.user_attrs
        if MEMBER not in attrs:
            return "not a member's segment (the population queues each of its trials)"
        g, m = attrs[GENERATION], attrs[MEMBER]
        before = [
            t
            for t in self._trials(g)
            if t.user_attrs[MEMBER] == m
            and t.number < trial.number
            and (counts(t) or t.state == TrialState.WAITING)
        ]
        if before:
            return copy_of(m, g, before[0].number)
        last = g == self.generations - 1
        out: dict[str, Any] = {"train.steps": min((g + 1) * self.conf.interval, self.steps)}
        if attrs.get(RESUMED):
            out["resume"] = attrs[RESUMED]
        images = self.full_images if last or not self.during_images else self.during_images
        out["eval.num_images"] = images
        return out

    def _trials(self, g: int, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=states)
            if t.user_attrs.get(GENERATION) == g and MEMBER in t.user_attrs
        ]

    def members(self, g: int) -> dict[int, FrozenTrial]:
        """Each member's finished segment of generation g (the one that counts)."""
        done = [t for t in self._trials(g) if counts(t) and t.state.is_finished()]
        return {t.user_attrs[MEMBER]: t for t in sorted(done, key=lambda t: -t.number)}

    def _complete(self, g: int) -> bool:
        return len(self.members(g)) == self.conf.population

    def _waiting(self, g: int) -> bool:
        return bool(self._trials(g, (TrialState.WAITING,)))

    def _drop_copies(self, g: int) -> None:
        """Fail as not run the segments of generation g still queued once it is complete: the
        copies a second sweep process queued at the same moment as this one."""
        copies = self._trials(g, (TrialState.WAITING,))
        ran = self.members(g) if copies else {}
        for t in copies:
            # claim it as the storage pops a queued trial: only one process gets it
            if self.study._storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                m = t.user_attrs[MEMBER]
                abandon(self.study, t.number, copy_of(m, g, ran[m].number), again=False)

    def queue(self, g: int) -> bool:
        """Queue generation g's segments unless they are (by this or another sweep process).
        False when there is nothing to continue: every member of g - 1 collapsed or failed."""
        if self._trials(g):
            return True
        if g == 0:
            for m in range(self.conf.population):
                self.study.enqueue_trial(
                    self.first(m), user_attrs={MEMBER: m, GENERATION: 0}, skip_if_exists=False
                )
            log.info(
                "Population of %d: generation 0 of %d queued (%d steps each, %d in all)",
                self.conf.population,
                self.generations,
                self.conf.interval,
                self.steps,
            )
            return True
        before = self.members(g - 1)
        members = [member_of(t) for t in before.values()]
        if all(m.collapsed for m in members):
            log.warning(
                "Every member collapsed or failed in generation %d: the population ends there "
                "(see lineage.csv)",
                g - 1,
            )
            return False
        rng = random.Random(f"{self.seed}/{g}")  # every sweep process decides alike
        for s in next_segments(members, self.space, self.conf, rng):
            parent = before[s.parent]
            self.study.enqueue_trial(
                {k: v for k, v in s.params.items() if k in self.space},
                user_attrs={
                    MEMBER: s.member,
                    GENERATION: g,
                    PARENT: s.parent,
                    PARENT_TRIAL: parent.number,
                    RESUMED: s.resume,
                    EXPLOITED: s.exploited,
                },
                skip_if_exists=False,
            )
            if s.exploited:
                log.info(
                    "generation %d: member %d continues member %d (trial %d) with %s",
                    g,
                    s.member,
                    s.parent,
                    parent.number,
                    ", ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in s.changed.items()
                    )
                    or "its values",
                )
        return True

    def best(self) -> tuple[FrozenTrial, list[Segment]] | None:
        """The study's best trial, which for a population is its best member of the last
        generation that completed (gan.study.ranking.answers: the score, then the SWD), and its
        ancestry: the segments whose training its weights hold."""
        if not answers(self.study):
            return None
        trial = best_trial(self.study)
        g = int(trial.user_attrs[GENERATION])
        chain = ancestry(
            [segments(self.members(i)) for i in range(g + 1)], trial.user_attrs[MEMBER]
        )
        return trial, chain

    def answer(self, fixed: dict[str, Any], choices: dict[str, Any]) -> dict[str, Any]:
        """The population's answer for optimization_results.yaml and sweep.log: its best member
        (`best`), that member's ancestry, and the command of one run that replays
        its schedule from scratch (None with `replay_error` where a segment changed a key a
        schedule cannot)."""
        found = self.best()
        if found is None:
            return {"pbt": None}
        trial, chain = found
        out: dict[str, Any] = {
            "member": trial.user_attrs[MEMBER],
            "trial": trial.number,
            "run_dir": trial.user_attrs.get("run_dir"),
            "swd": trial.user_attrs.get(SWD),
            "ancestry": [
                {"generation": g, "member": s.member, "exploited": s.exploited, **s.params}
                for g, s in enumerate(chain)
            ],
        }
        try:
            start, entries = replay(chain, self.conf.interval)
        except ValueError as e:
            out.update(replay_command=None, replay_error=str(e))
        else:
            overrides = replay_overrides(start, entries) + [f"{k}={v}" for k, v in fixed.items()]
            out.update(schedule=entries, replay_command=command(overrides, choices))
        log.info(
            "Population: best member %d (trial %d, %s), SWD %s. Its schedule from scratch: %s",
            out["member"],
            out["trial"],
            out["run_dir"],
            out["swd"],
            out.get("replay_command") or out.get("replay_error"),
        )
        return {"pbt": out}


def pbt_conf(
    pbt: Any, pruner: Any, confirm: Any, directions: list[str], sampler: Any = None
) -> PBTConf | None:
    """`hydra.sweeper.pbt` as a PBTConf (None: not a population); refused with a pruner, a
    confirm, two objectives or the grid sampler, and with values that make no population."""
    if pbt is None:
        return None
    conf = PBTConf(**{str(k): v for k, v in dict(pbt).items()})
    conf.factors = [float(f) for f in conf.factors]
    clash = [
        name
        for name, on in (
            ("hydra.sweeper.pruner", pruner is not None),
            ("hydra.sweeper.confirm", confirm is not None),
            ("two directions", len(directions) > 1),
        )
        if on
    ]
    if clash:
        raise StudyRefused(
            f"hydra.sweeper.pbt cannot be combined with {' and '.join(clash)}: a population "
            "ranks its members on their SWD at each interval itself, on the stability score's "
            "single objective. Remove " + " and ".join(clash) + " from the study."
        )
    if str((sampler or {}).get("_target_", "")).endswith("GridSampler"):
        raise StudyRefused(
            "hydra.sweeper.pbt draws each member's first values at random from the search "
            "space, and the grid sampler has no such draw. Use the random sampler "
            "(hydra/sweeper/sampler=random, as sweeps/pbt.yaml does) or TPE."
        )
    bad = [
        f"{name}={value}"
        for name, value, ok in (
            ("population", conf.population, conf.population >= 2),
            ("interval", conf.interval, conf.interval >= 1),
            ("quantile", conf.quantile, 0 < conf.quantile <= 0.5),
            (
                "resample_probability",
                conf.resample_probability,
                0 <= conf.resample_probability <= 1,
            ),
            ("factors", conf.factors, bool(conf.factors) and all(f > 0 for f in conf.factors)),
        )  # fmt: skip
        if not ok
    ]
    if bad:
        raise StudyRefused(
            f"hydra.sweeper.pbt.{', hydra.sweeper.pbt.'.join(bad)} makes no population: it "
            "needs population >= 2, interval >= 1 step, 0 < quantile <= 0.5, "
            "0 <= resample_probability <= 1 and positive factors (e.g. [0.8, 1.2])."
        )
    return conf


def copy_of(member: int, generation: int, number: int) -> str:
    """Why a copy of a member's segment is not run: trial `number` runs it."""
    return f"member {member}'s segment of generation {generation} is trial {number}"


def member_of(trial: FrozenTrial) -> Member:
    """A member as its segment `trial` left it: a failed segment ranks as a collapse."""
    collapsed = trial.state == TrialState.FAIL or trial.user_attrs.get(COLLAPSED_AT) is not None
    swd = trial.user_attrs.get(SWD)
    return Member(
        trial.user_attrs[MEMBER],
        dict(trial.params),
        str(trial.user_attrs.get("run_dir", "")),
        collapsed,
        float(swd) if isinstance(swd, int | float) else None,
    )


def segments(members: dict[int, FrozenTrial]) -> list[Segment]:
    """One generation's trials as the segments pbt.ancestry reads."""
    return [
        Segment(
            m,
            dict(t.params),
            str(t.user_attrs.get(RESUMED, "")),
            int(t.user_attrs.get(PARENT, m)),
            exploited=bool(t.user_attrs.get(EXPLOITED, False)),
        )
        for m, t in sorted(members.items())
    ]


LINEAGE_COLUMNS = (
    "generation", "member", "trial", "state", "from_step", "to_step", "parent",
    "parent_trial", "exploited", "swd", "collapsed_at", "score", "run_dir", "resumed",
)  # fmt: skip


def write_lineage(study: optuna.Study, path: Path, interval: int, steps: int) -> None:
    """lineage.csv: one row per member's segment that ran (its counted trial), by generation
    and member: whose weights it continued, its values, its SWD and how it ended."""
    trials = [t for t in study.get_trials(deepcopy=False) if MEMBER in t.user_attrs and counts(t)]
    trials.sort(key=lambda t: (t.user_attrs[GENERATION], t.user_attrs[MEMBER], t.number))
    names = sorted({name for t in trials for name in t.distributions})
    rows = []
    for t in trials:
        a, g = t.user_attrs, t.user_attrs[GENERATION]
        rows.append(
            [
                g, a[MEMBER], t.number, t.state.name, g * interval, min((g + 1) * interval, steps),
                a.get(PARENT, a[MEMBER]), a.get(PARENT_TRIAL), bool(a.get(EXPLOITED)),
                a.get(SWD), a.get(COLLAPSED_AT),
                t.values[0] if t.state == TrialState.COMPLETE else None,
                a.get("run_dir", ""), a.get(RESUMED, ""),
                *(t.params.get(n) for n in names),
            ]
        )  # fmt: skip

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*LINEAGE_COLUMNS, *names])
            writer.writerows(rows)

    atomic_write(path, write)
