"""Reading run folders and ranking them: `Run` (a folder's summary.json, config, overrides and
reproduce command), finding the run folders and study files below a path, the config keys that
differ between runs, the ranking, and the answer (a confirm sweep's confirmed best, else the
best finished run)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from gan.config import flatten
from gan.report.values import is_number, num
from gan.run.command import group_options, read_yaml, run_command
from gan.run.folder import STATUSES as RUN_STATUSES
from gan.run.folder import load_summary
from gan.run.score import STALE_AFTER_S, rank_key
from gan.study.storage import DB_NAME

# keys that differ between runs without changing what is trained
IGNORED = ("resume", "data.cache_dir")
# a run's status, and the report's own for a folder with no summary.json yet or a broken one
STATUSES = (*RUN_STATUSES, "unknown", "unreadable")


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    # flattened: {"optim.gen_lr": 0.002, ...}, with the option of each config group the run
    # was composed with under the group's name ({"augment": "seed", "augment.hflip": 0.5});
    # {} when unreadable
    config: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    study: dict[str, Any] | None = None  # summary["optuna"]: {"study", "storage", "trial"}
    # the command that reproduces it (gan.run.command); None without its .hydra/ files
    command: str | None = None

    @property
    def name(self) -> str:
        """The folder relative to the current directory when it lies below it."""
        try:
            return str(self.path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(self.path)

    @property
    def status(self) -> str:
        return str(self.summary.get("status") or "unknown")

    @property
    def finished(self) -> bool:
        """Trained to its end: its budget, or the collapse that stopped it."""
        return self.status in ("completed", "collapsed")

    @property
    def score(self) -> float | None:
        s = self.summary.get("score")
        return float(s) if is_number(s) else None

    def quality(self, name: str) -> float | None:
        """summary.json quality.NAME, when it is a number."""
        value = (self.summary.get("quality") or {}).get(name)
        return float(value) if is_number(value) else None

    @property
    def diversity(self) -> float | None:
        """The final grid's sample diversity."""
        return self.quality("diversity")

    @property
    def swd(self) -> float | None:
        """The SWD of the run's samples to the data, x1e3."""
        return self.quality("swd")

    @property
    def swd_moments(self) -> bool | None:
        """Whether the SWD has the moment gap term (gan.run.quality): False for the paper's SWD,
        and for runs of pumpgan before the term (it is blind to contrast and colour)."""
        if self.swd is None:
            return None
        return bool((self.summary.get("quality") or {}).get("swd_moments", False))

    @property
    def eps(self) -> float | None:
        """The run's own score.eps: its D means were healthy in [eps, 1 - eps]."""
        value = self.config.get("score.eps")
        return float(value) if is_number(value) else None

    @property
    def trial(self) -> str:
        return f"{self.study.get('study')}:{self.study.get('trial')}" if self.study else ""

    @property
    def note(self) -> str:
        if self.status in ("interrupted", "failed", "pruned"):
            done, steps = self.summary.get("steps_done"), self.summary.get("steps")
            how = "pruned" if self.status == "pruned" else "stopped"
            return f"{how} at {done}/{steps}" if is_number(done) and is_number(steps) else ""
        if self.status != "running":
            return ""
        try:
            updated = datetime.fromisoformat(str(self.summary["updated_at"]))
        except (KeyError, ValueError):
            updated = datetime.fromtimestamp((self.path / "summary.json").stat().st_mtime, UTC)
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        return "stale?" if (datetime.now(UTC) - updated).total_seconds() > STALE_AFTER_S else ""


# ---- finding and reading runs


def find_runs(paths: list[Path]) -> list[Run]:
    """Every run folder at or below `paths`, each once."""
    found = {folder.resolve(): folder for root in paths for folder in walk(root)[0]}
    return [read_run(folder) for folder in found.values()]


def walk(root: Path) -> tuple[list[Path], list[Path]]:
    """Run folders (summary.json or .hydra/) at or below `root`, without looking inside them,
    and the study files (optuna.db) of sweep folders on the way."""
    runs: list[Path] = []
    dbs: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "summary.json" in filenames or ".hydra" in dirnames:
            runs.append(here)
            dirnames.clear()
            continue
        if DB_NAME in filenames:
            dbs.append(here / DB_NAME)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return runs, dbs


def read_run(path: Path) -> Run:
    hydra = path / ".hydra"
    # a resumed run records the config that actually ran beside Hydra's copy of the command's
    config_path = hydra / "resumed_config.yaml"
    if not config_path.is_file():
        config_path = hydra / "config.yaml"
    summary = read_summary(path / "summary.json")
    study = summary.get("optuna")
    return Run(
        path=path,
        summary=summary,
        config=with_groups(flatten(load_yaml(config_path, dict)), path),
        overrides=[str(o) for o in load_yaml(hydra / "overrides.yaml", list)],
        study=study if isinstance(study, dict) else None,
        command=run_command(path),
    )


def with_groups(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A flattened config with the option of each of its config groups (gan.run.command's
    `group_options`) under the group's name, before the group's keys: {"augment": "seed",
    "augment.hflip": 0.5, ...}."""
    if not config:
        return config
    groups = group_options(run_dir, config)
    out: dict[str, Any] = {}
    for key, value in config.items():
        group = key.split(".", 1)[0]
        if group in groups and group not in out:
            out[group] = groups[group]
        out[key] = value
    return out


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json (gan.run.folder.load_summary); status `unknown` without one (a half-started
    run: only .hydra/ so far), `unreadable` with a warning that says why when it cannot be
    parsed."""
    if not path.is_file():
        return {"status": "unknown"}
    try:
        return load_summary(path.parent)
    except (OSError, ValueError) as e:
        warn(f"cannot read {path} ({e}); listing the run as unreadable")
        return {"status": "unreadable"}


def load_yaml(path: Path, kind: type) -> Any:
    if not path.is_file():
        return kind()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:
        warn(f"cannot read {path} ({type(e).__name__}); its values are shown as -")
        return kind()
    return data if isinstance(data, kind) else kind()


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def sample_image(run: Run) -> tuple[Path | None, str]:
    """The final grid, else the latest one, with what it is."""
    final = run.path / "samples" / "final.png"
    if final.is_file():
        return final, "final samples"
    steps = sorted((run.path / "samples").glob("step_*.png"))
    return (steps[-1], f"latest samples: {steps[-1].stem}") if steps else (None, "no samples yet")


# ---- what differs, and the ranking


def _config_keys(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Runs with a readable config, and every key any of them has (first seen first)."""
    configured = [r for r in runs if r.config]
    keys = dict.fromkeys(k for r in configured for k in r.config if k not in IGNORED)
    return configured, list(keys)


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose value (or presence) is not the same in every run that has a config.
    Where runs chose different options of a config group (augment: none, seed, diffaugment),
    the group's option stands for the keys it set: a key of the group is left out when the
    option alone decides its value (runs with the same option have the same value); one that
    was set on its own as well (augment=seed augment.hflip=0.2) stays."""
    configured, keys = _config_keys(runs)

    def value(run: Run, key: str) -> str:
        return json.dumps(run.config[key], default=str) if key in run.config else "\0missing"

    def decided_by_group(key: str) -> bool:
        group = key.split(".", 1)[0]
        if group == key or group not in differing:
            return False
        by_option: dict[str, str] = {}
        return all(by_option.setdefault(value(r, group), value(r, key)) == value(r, key)
                   for r in configured)  # fmt: skip

    differing = [k for k in keys if len({value(r, k) for r in configured}) > 1]
    return [k for k in differing if not decided_by_group(k)]


def partial_keys(runs: list[Run]) -> list[str]:
    configured, keys = _config_keys(runs)
    return [k for k in keys if not all(k in r.config for r in configured)]


def sort_runs(runs: list[Run], by: str = "score") -> list[Run]:
    if by == "name":
        return sorted(runs, key=lambda r: r.name)
    # finished runs (completed, collapsed) first: an interrupted, failed or running run's score
    # only covers the steps it got to, so it cannot stand above a run that used its budget
    return sorted(runs, key=lambda r: (not r.finished, *rank_key(r.score, r.swd), r.name))


def best_finished(runs: list[Run]) -> Run | None:
    finished = sort_runs([r for r in runs if r.finished and r.score is not None])
    return finished[0] if finished else None


def find_answer(runs: list[Run]) -> tuple[Run | None, str | None]:
    """Which settings to use. Where a confirm sweep ran (confirm.csv beside its trials), its
    confirmed best, the setting that held over new seeds, and a run of it (its first rerun);
    else (None: the best finished run, as the table's summary line says)."""
    from gan.study import confirm  # imports torch (gan.files): not for --help

    confirmed = []
    for sweep_dir in sorted({r.path.parent for r in runs if r.study}):
        try:
            rows = confirm.read_csv(sweep_dir / confirm.CSV_NAME)
        except (OSError, ValueError):
            continue
        confirmed += [(r, sweep_dir) for r in rows if r.get("confirmed_best") is True]
    if not confirmed:
        return population_answer(runs) or (best_finished(runs), None)
    row, sweep_dir = min(confirmed, key=lambda c: rank_key(c[0]["score_mean"], c[0]["swd_mean"]))
    found = {r.path.resolve(): r for r in runs}
    run_dir = Path(str(row.get("run_dir") or ""))
    run = found.get(run_dir.resolve()) or (read_run(run_dir) if run_dir.is_dir() else None)
    text = (
        f"confirmed best ({sweep_dir.name}): trial {row['trial']} of the study it confirms, "
        f"SWD {num(row['swd_mean'], '.2f')} ± {num(row['swd_sd'], '.2f')} and score "
        f"{num(row['score_mean'], '.4f')} over {row['seeds_done']} new seeds, none collapsed"
        + (f" (a run of it: {run.name})" if run else "")
    )
    return run, text


def population_answer(runs: list[Run]) -> tuple[Run, str] | None:
    """Where the runs hold a population (`hydra.sweeper.pbt`), the best member of its last
    generation as its optimization_results.yaml names it: the runs of earlier generations are
    segments cut at an interval, whose SWD was measured on fewer images. None without one."""
    found = {r.path.resolve(): r for r in runs}
    members = []
    for sweep_dir in sorted({r.path.parent for r in runs if r.study}):
        results = read_yaml(sweep_dir / "optimization_results.yaml")
        answer = results.get("pbt") if isinstance(results, dict) else None
        if not isinstance(answer, dict):
            continue
        run = found.get(Path(str(answer.get("run_dir"))).resolve())
        if run is not None:
            members.append((run, sweep_dir, answer))
    if not members:
        return None
    run, sweep_dir, answer = min(members, key=lambda m: rank_key(m[0].score, m[0].swd))
    return run, (
        f"best member of population {sweep_dir.name}: member {answer['member']}, trial "
        f"{answer['trial']} ({run.name}), its last generation ranked by score, then SWD; "
        f"optimization_results.yaml has the command that replays its schedule"
    )
