"""A best setting that survives other seeds: rerun a study's top settings over new seeds.

GAN rankings flip across seeds (Lucic et al., "Are GANs Created Equal?", 2018): a study that
ran every trial with one seed names as best the setting whose seed was luckiest. With
`hydra.sweeper.confirm` (`python run.py -m sweep=confirm`), pumpgan's sweeper
(gan/study/sweeper.py) takes the `top_k` best complete trials of a finished study, ranked as the
study ranks them (gan.study.ranking.top_trials; gan.run.score.rank_key: the score, then the SWD),
and queues each setting once per seed in a study of its own: seeds seed+1 ... seed+`seeds`, none
of them the seed the study ran with, so that no rerun inherits the luck the selection picked.
Every rerun is an ordinary trial in its own run folder, and a killed confirm sweep continues
where it stopped.

Per setting, `confirm.csv` in the sweep folder gives the mean and spread (standard deviation)
of the score and the SWD over the seeds and the fraction of seeds that collapsed. The
**confirmed best** is the setting with the best mean (score, then SWD) among those whose every
seed ran to the end without a collapse; gan.compare and its HTML report show it.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from gan.files import atomic_write
from gan.run.command import run_command
from gan.run.score import rank_key
from gan.study.errors import NoStudy
from gan.study.ranking import top_trials
from gan.study.storage import sqlite_url

# user attr of a confirm trial: the number of the study's trial whose setting it reruns
CONFIRMS = "confirms"
CSV_NAME = "confirm.csv"


@dataclass
class ConfirmConf:
    """`hydra.sweeper.confirm`: which study to confirm, and how."""

    # the study whose best settings are rerun: its name and storage (null: the optuna.db in
    # sweep_dir, the sweep folder of that study)
    study_name: str = "stability"
    storage: str | None = None
    sweep_dir: str = "outputs/sweeps/stability"
    top_k: int = 5
    seeds: int = 5


def source_storage(cfg: Any) -> str:
    return cfg.get("storage") or sqlite_url(cfg.sweep_dir)


def load_source(cfg: Any) -> optuna.Study:
    """The study whose settings are confirmed. A missing one is a NoStudy error that says which
    keys point at it."""
    storage = source_storage(cfg)
    if not cfg.get("storage") and not (Path(cfg.sweep_dir) / "optuna.db").is_file():
        raise NoStudy(
            f"hydra.sweeper.confirm.sweep_dir={cfg.sweep_dir!r} holds no optuna.db, so there is no "
            "study to confirm. Run the study first (e.g. `python run.py -m sweep=stability`), or "
            "point hydra.sweeper.confirm.sweep_dir (or .storage and .study_name) at it."
        )
    try:
        return optuna.load_study(study_name=cfg.study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise NoStudy(
            f"{storage} has no study named hydra.sweeper.confirm.study_name={cfg.study_name!r}; "
            f"it has {names}. Set hydra.sweeper.confirm.study_name to one of them."
        ) from None


def seed_values(seed: int, n: int) -> list[int]:
    """The confirm seeds: seed+1 ... seed+n (not the study's own seed)."""
    return [seed + 1 + i for i in range(n)]


def confirm_space(top: Sequence[FrozenTrial], seeds: Sequence[int]) -> dict[str, BaseDistribution]:
    """The confirm study's search space: the study's distributions, and the seed."""
    space = {name: d for t in top for name, d in t.distributions.items()}
    return {**space, "seed": CategoricalDistribution(list(seeds))}


def enqueue(study: optuna.Study, top: Sequence[FrozenTrial], seeds: Sequence[int]) -> None:
    """One trial per (setting, seed), setting by setting, seed by seed."""
    for t in top:
        for seed in seeds:
            study.enqueue_trial({**t.params, "seed": seed}, user_attrs={CONFIRMS: t.number})


@dataclass
class Setting:
    """One of the top settings and its reruns."""

    source: FrozenTrial  # the study's trial
    rank: int  # its place in the study, 1 = the study's best
    seeds: int  # how many seeds it was to run
    # per finished rerun: seed, score, SWD (None if missing), collapsed
    runs: list[tuple[int, float, float | None, bool]] = field(default_factory=list)
    # the run folder of its first finished rerun and the command that reproduces that run
    # (gan/reproduce.py): the setting as a command, with that rerun's seed
    run_dir: str | None = None
    command: str | None = None

    @property
    def complete(self) -> bool:
        return len(self.runs) >= self.seeds

    @property
    def collapsed(self) -> float:
        """The fraction of the finished reruns that collapsed."""
        return sum(r[3] for r in self.runs) / len(self.runs) if self.runs else math.nan

    def stat(self, i: int, f: Any) -> float:
        values = [r[i] for r in self.runs if r[i] is not None]
        return float(f(values)) if len(values) >= (2 if f is statistics.stdev else 1) else math.nan

    def eligible(self) -> bool:
        """Every seed ran to the end, and none collapsed."""
        return self.complete and self.collapsed == 0

    def key(self) -> tuple[bool, float, float]:
        return rank_key(self.stat(1, statistics.mean), self.stat(2, statistics.mean))

    def row(self, best: bool) -> dict[str, Any]:
        source_swd = self.source.user_attrs.get("swd")
        if len(self.source.values) > 1:
            source_swd = self.source.values[1]
        mean, sd = statistics.mean, statistics.stdev
        return {
            "rank": self.rank,
            "trial": self.source.number,
            "study_score": self.source.values[0],
            "study_swd": source_swd,
            "seeds_done": len(self.runs),
            "collapsed_fraction": self.collapsed,
            "score_mean": self.stat(1, mean),
            "score_sd": self.stat(1, sd),
            "swd_mean": self.stat(2, mean),
            "swd_sd": self.stat(2, sd),
            "swd_min": self.stat(2, min),
            "swd_max": self.stat(2, max),
            "confirmed_best": best,
            "run_dir": self.run_dir,
            "command": self.command,
            **self.source.params,
        }


def settings(study: optuna.Study, source: optuna.Study, seeds: int, read: Any) -> list[Setting]:
    """The confirm study's complete trials grouped by the setting they rerun, in the source
    study's order. `read(run_dir)` gives a run folder's summary.json (collapse and SWD)."""
    numbers = sorted({t.user_attrs[CONFIRMS] for t in study.trials if CONFIRMS in t.user_attrs})
    top = {t.number: t for t in top_trials(source, len(source.trials))}
    order = [n for n in top if n in numbers]
    by_source = {n: Setting(top[n], list(top).index(n) + 1, seeds) for n in order}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        setting = by_source.get(t.user_attrs.get(CONFIRMS, -1))
        if setting is None:
            continue
        summary = read(Path(t.user_attrs.get("run_dir", "")))
        quality = summary.get("quality") or {}
        swd = quality.get("swd") if isinstance(quality, dict) else None
        collapsed = summary.get("collapsed_at") is not None
        setting.runs.append((int(t.params["seed"]), cast(float, t.values[0]), swd, collapsed))
        if setting.run_dir is None:
            setting.run_dir = t.user_attrs.get("run_dir")
            setting.command = t.user_attrs.get("command") or run_command(
                Path(setting.run_dir or "")
            )
    return list(by_source.values())


def confirmed_best(found: Sequence[Setting]) -> Setting | None:
    """The best mean among the settings whose every seed ran and none collapsed."""
    eligible = [s for s in found if s.eligible()]
    return min(eligible, key=Setting.key) if eligible else None


def write_csv(path: Path, found: Sequence[Setting], best: Setting | None) -> None:
    rows = [s.row(s is best) for s in found]
    if not rows:
        return
    header = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, header)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """confirm.csv's rows, numbers as numbers (gan.compare's report)."""
    with open(path, newline="") as f:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def parse(value: str) -> Any:
    if value in ("True", "False"):
        return value == "True"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def describe(s: Setting) -> str:
    """One line of sweep.log per setting."""
    r = s.row(False)
    return (
        f"#{s.rank} trial {s.source.number}: {len(s.runs)}/{s.seeds} seeds, collapsed "
        f"{r['collapsed_fraction']:.0%}, score {r['score_mean']:.4f} ± {r['score_sd']:.4f}, "
        f"SWD {r['swd_mean']:.2f} ± {r['swd_sd']:.2f} ({r['swd_min']:.2f}-{r['swd_max']:.2f}); "
        f"in the study: score {r['study_score']:.4f}, SWD {r['study_swd']}"
    )
