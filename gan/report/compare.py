"""Compare run folders: a table in the terminal, optionally a CSV and one self-contained HTML
report (sample grids, D means over steps, score against each swept parameter, Optuna parameter
importances, and a warning when the best runs sit on the edge of the search space).

Each PATH is a run folder, a sweep folder or any folder above them (default: outputs/),
searched recursively. The table has one row per run, best first (the highest score; among
equal scores the lowest SWD, the sliced Wasserstein distance of its samples to the data), with
the config keys that differ between the runs, then status, score, SWD, collapsed_at, reason,
diversity, steps, wall time and images/s. Killed and
half-written runs are listed with their status. Exit status 1 when no PATH holds a run.

The answer (the last line of the table, the top of the HTML page) is a confirm sweep's confirmed
best where one is among the folders, else the best finished run; --export writes its settings
as a config file that runs as it ran.

examples:
  uv run python -m gan.compare                            # every run below outputs/
  uv run python -m gan.compare outputs/sweeps/quick --csv runs.csv --html report.html
  uv run python -m gan.compare outputs/sweeps/quick --export best.yaml
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from gan.config import flatten
from gan.run.command import export, run_command
from gan.run.score import STALE_AFTER_S, rank_key

# keys that differ between runs without changing what is trained
IGNORED = ("resume", "data.cache_dir")
STATUSES = (
    "completed", "collapsed", "pruned", "failed", "interrupted", "running", "unknown", "unreadable"
)  # fmt: skip
MAX_POINTS = 2000  # per curve in the D-means chart
CSV_TAIL = (
    "status", "score", "collapsed_at", "reason", "steps_done", "steps", "wall_s", "images_per_s",
    "quality.swd", "quality.diversity", "quality.colour_gap", "optuna.study", "optuna.trial",
    "run_dir", "note",
)  # fmt: skip


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]  # flattened: {"optim.gen_lr": 0.002, ...}; {} when unreadable
    overrides: list[str] = field(default_factory=list)
    study: dict[str, Any] | None = None  # summary["optuna"]: {"study", "storage", "trial"}
    # the command that reproduces it (gan/reproduce.py); None without its .hydra/ files
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
    and the optuna.db files of sweep folders on the way."""
    runs: list[Path] = []
    dbs: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "summary.json" in filenames or ".hydra" in dirnames:
            runs.append(here)
            dirnames.clear()
            continue
        if "optuna.db" in filenames:
            dbs.append(here / "optuna.db")
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return runs, dbs


def read_run(path: Path) -> Run:
    summary_path = path / "summary.json"
    summary: dict[str, Any] = {"status": "unknown"}  # a half-started run: only .hydra/ so far
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            warn(f"cannot read {summary_path} ({e}); listing the run as unreadable")
            summary = {"status": "unreadable"}
    hydra = path / ".hydra"
    # a resumed run records the config that actually ran beside Hydra's copy of the command's
    config_path = hydra / "resumed_config.yaml"
    if not config_path.is_file():
        config_path = hydra / "config.yaml"
    study = summary.get("optuna")
    return Run(
        path=path,
        summary=summary,
        config=flatten(load_yaml(config_path, dict)),
        overrides=[str(o) for o in load_yaml(hydra / "overrides.yaml", list)],
        study=study if isinstance(study, dict) else None,
        command=run_command(path),
    )


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


# ---- what differs


def _config_keys(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Runs with a readable config, and every key any of them has (first seen first)."""
    configured = [r for r in runs if r.config]
    keys = dict.fromkeys(k for r in configured for k in r.config if k not in IGNORED)
    return configured, list(keys)


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose value (or presence) is not the same in every run that has a config."""
    configured, keys = _config_keys(runs)

    def value(run: Run, key: str) -> str:
        return json.dumps(run.config[key], default=str) if key in run.config else "\0missing"

    return [k for k in keys if len({value(r, k) for r in configured}) > 1]


def partial_keys(runs: list[Run]) -> list[str]:
    configured, keys = _config_keys(runs)
    return [k for k in keys if not all(k in r.config for r in configured)]


def sort_runs(runs: list[Run], by: str = "score") -> list[Run]:
    if by == "name":
        return sorted(runs, key=lambda r: r.name)
    # finished runs (completed, collapsed) first: an interrupted, failed or running run's score
    # only covers the steps it got to, so it cannot stand above a run that used its budget
    return sorted(runs, key=lambda r: (not r.finished, *rank_key(r.score, r.swd), r.name))


# ---- the table


def is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v) if isinstance(v, list | dict) else str(v)


def num(v: Any, spec: str) -> str:
    return format(v, spec) if is_number(v) else "-"


def table_rows(runs: list[Run], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells shared by the terminal table and the HTML one."""
    extra = ["trial"] * any(r.study for r in runs) + ["note"] * any(r.note for r in runs)
    columns = ["collapsed_at", "reason", "diversity", "steps", "wall_s", "images/s"]
    # what decides the ranking first, then what differs between the runs, then the rest
    headers = ["run", "status", "score", "swd", *keys, *columns, *extra]
    rows = []
    for r in runs:
        s = r.summary
        steps = f"{num(s.get('steps_done'), '.0f')}/{num(s.get('steps'), '.0f')}"
        cells = [r.name, r.status, num(r.score, ".4f"), num(r.swd, ".2f")]
        cells += [fmt(r.config[k]) if k in r.config else "-" for k in keys]
        cells += [num(s.get("collapsed_at"), ".0f")]
        cells += [str(s.get("reason") or "-"), num(r.diversity, ".2f")]
        cells += [steps if steps != "-/-" else "-"]
        cells += [num(s.get("wall_s"), ".1f"), num(s.get("images_per_s"), ".0f")]
        cells += [{"trial": r.trial, "note": r.note}[c] for c in extra]
        rows.append(cells)
    return headers, rows


def clip(text: str, width: int, keep_end: bool = False) -> str:
    if len(text) <= width:
        return text
    return "..." + text[-(width - 3) :] if keep_end else text[: width - 3] + "..."


def format_table(runs: list[Run], keys: list[str], answer: str | None = None) -> str:
    headers, rows = table_rows(runs, keys)
    limits = {"run": 48, "reason": 28}
    rows = [
        [clip(c, limits.get(h, 20), keep_end=h == "run") for h, c in zip(headers, row, strict=True)]
        for row in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, summary_line(runs, answer)])


def summary_line(runs: list[Run], answer: str | None = None) -> str:
    """The runs counted by status, and the answer: `find_answer`'s, else the best finished."""
    counts = Counter(r.status for r in runs)
    order = [*STATUSES, *sorted(set(counts) - set(STATUSES))]
    parts = ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
    if answer is None:
        best = best_finished(runs)
        answer = f"best: {best.name} score {best.score:.4f}" if best else "best: none finished yet"
    return f"{len(runs)} run{'s' * (len(runs) != 1)} ({parts}), {answer}"


def best_finished(runs: list[Run]) -> Run | None:
    finished = sort_runs([r for r in runs if r.finished and r.score is not None])
    return finished[0] if finished else None


def find_answer(runs: list[Run]) -> tuple[Run | None, str | None]:
    """Which settings to use. Where a confirm sweep ran (confirm.csv beside its trials), its
    confirmed best, the setting that held over new seeds, and a run of it (its first rerun);
    else (None: the best finished run, as summary_line says)."""
    from gan.study import confirm

    confirmed = []
    for sweep_dir in sorted({r.path.parent for r in runs if r.study}):
        try:
            rows = confirm.read_csv(sweep_dir / confirm.CSV_NAME)
        except (OSError, ValueError):
            continue
        confirmed += [(r, sweep_dir) for r in rows if r.get("confirmed_best") is True]
    if not confirmed:
        return best_finished(runs), None
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


def write_csv(path: Path, runs: list[Run], keys: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *keys, *CSV_TAIL, "command"])
        for r in runs:
            summary = {**r.summary, "optuna": r.study or {}, "status": r.status, "note": r.note}
            flat = flatten(summary)
            cells = [r.config.get(k) for k in keys] + [flat.get(k) for k in CSV_TAIL]
            # numbers at full precision, None as an empty cell
            cells = [c if is_number(c) or c is None else fmt(c) for c in cells]
            writer.writerow([r.name, *cells, r.command])


# ---- Optuna studies: search space bounds and importances


@dataclass
class Study:
    name: str
    db: Path
    study: Any  # optuna.Study
    bounds: dict[str, tuple[float, float, bool]]  # numeric parameters: low, high, log
    confirm: list[dict[str, Any]]  # confirm.csv's rows, for a confirm study (gan/confirm.py)


def study_db(run: Run) -> Path | None:
    """The SQLite file of a trial's study: in a sweep folder above it, or at its storage URL."""
    for folder in list(run.path.resolve().parents)[:3]:
        if (folder / "optuna.db").is_file():
            return folder / "optuna.db"
    url = str((run.study or {}).get("storage") or "")
    path = Path(url.removeprefix("sqlite:///"))
    return path.resolve() if url.startswith("sqlite:///") and path.is_file() else None


def load_studies(paths: list[Path], runs: list[Run]) -> dict[tuple[str, str], Study]:
    """Every study in the optuna.db files below `paths` or above the runs, by (db, name)."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    from gan.report import studyplots
    from gan.study import confirm

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dbs = {db.resolve() for p in paths for db in walk(p)[1]}
    dbs |= {db for db in map(study_db, (r for r in runs if r.study)) if db}
    studies = {}
    for db in sorted(dbs):
        storage = f"sqlite:///{db}"
        try:
            names = optuna.get_all_study_names(storage)
            loaded = [optuna.load_study(study_name=n, storage=storage) for n in names]
        except Exception as e:  # noqa: BLE001 - a broken study should not stop the report
            warn(f"cannot open the Optuna studies in {db} ({type(e).__name__}: {e})")
            continue
        for study in loaded:
            bounds = {
                name: (float(d.low), float(d.high), d.log)
                for t in study.trials
                for name, d in t.distributions.items()
                if isinstance(d, FloatDistribution | IntDistribution)
            }
            rows = []
            if studyplots.is_confirm(study):
                try:
                    rows = confirm.read_csv(db.parent / confirm.CSV_NAME)
                except OSError as e:
                    warn(f"confirm study {study.study_name} in {db}: no {confirm.CSV_NAME} ({e})")
            studies[(str(db), study.study_name)] = Study(study.study_name, db, study, bounds, rows)
    return studies


def edge_warnings(
    runs: list[Run], keys: list[str], studies: dict[tuple[str, str], Study]
) -> list[str]:
    """Numeric keys for which one of the best runs (top 25%, 1 to 3 runs) lies within 5% of an
    edge of the search space: the study's bounds for a trial, else the range of values tried
    (when at least 3 distinct values were tried). Runs that collapsed at step 0 (score 0) never
    trained healthily and point nowhere: among them there is no best."""
    groups: dict[tuple[str, str] | None, list[Run]] = {}
    for r in sort_runs([r for r in runs if r.score]):
        db = study_db(r) if r.study else None
        group = (str(db), str(r.study.get("study"))) if db and r.study else None
        groups.setdefault(group, []).append(r)
    out = []
    for group, members in groups.items():
        study = studies.get(group) if group else None
        top = members[: max(1, min(3, len(members) // 4))]
        for key in keys:
            tried = {r.config[key] for r in members if is_number(r.config.get(key))}
            if study and key in study.bounds:
                lo, hi, log = study.bounds[key]
                where = f"study {study.name}'s search space [{lo:g}, {hi:g}]"
            elif len(tried) >= 3:
                lo, hi = min(tried), max(tried)
                log = lo > 0 and hi / lo > 20
                whose = f"study {study.name}'s trials" if study else "these runs"
                where = f"the values {whose} tried [{lo:g}, {hi:g}]"
            else:
                continue
            best = [r.config[key] for r in top if is_number(r.config.get(key))]
            for edge, values in near_edges(best, lo, hi, log).items():
                way = "downwards" if edge == "lower" else "upwards"
                out.append(
                    f"{key}: the best run(s) ({', '.join(f'{v:g}' for v in values)}) sit at the "
                    f"{edge} edge of {where}; the optimum may lie beyond it: widen the range {way}."
                )
    return out


def near_edges(values: list[float], lo: float, hi: float, log: bool) -> dict[str, list[float]]:
    """Those of `values` within 5% of the range (of its logarithm for a log range) of each end."""
    f = math.log10 if log and lo > 0 else float
    if hi <= lo:
        return {}
    values = [v for v in values if v > 0 or f is float]
    margin = 0.05 * (f(hi) - f(lo))
    hits = {
        "lower": [v for v in values if f(v) - f(lo) <= margin],
        "upper": [v for v in values if f(hi) - f(v) <= margin],
    }
    return {edge: vs for edge, vs in hits.items() if vs}


# ---- the HTML report


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def plain(text: str) -> str:
    """Text matplotlib draws as is (a `$` would start mathtext)."""
    return text.replace("$", r"\$")


def read_d_means(path: Path) -> tuple[Any, Any, Any] | None:
    """steps, d_real, d_fake from metrics.csv, block-averaged down to MAX_POINTS."""
    import numpy as np

    try:
        with open(path, newline="") as f:
            rows = []
            for row in csv.DictReader(f):
                try:  # a live run may have left half a line at the end
                    rows.append((float(row["step"]), float(row["d_real"]), float(row["d_fake"])))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        return None
    if not rows:
        return None
    data = np.array(rows)
    k = math.ceil(len(data) / MAX_POINTS)
    if k > 1:
        data = data[: len(data) // k * k].reshape(-1, k, 3).mean(axis=1)
    return data[:, 0], data[:, 1], data[:, 2]


def plot_d_means(runs: list[Run]) -> bytes | None:
    """Both D means of each run over steps, one small panel per run in the order given (best
    first), on the unhealthy bands [0, eps) and (1 - eps, 1] of the run's score.eps; the best
    run's panel framed green and the worst's red, so that 60 runs stay readable."""
    curves = [(r, c) for r in runs if (c := read_d_means(r.path / "metrics.csv")) is not None]
    if not curves:
        return None
    plt = pyplot()
    from matplotlib.lines import Line2D

    ranked = sort_runs([r for r, _ in curves if r.score is not None])
    best, worst = (ranked[0], ranked[-1]) if len(ranked) > 1 else (None, None)
    ncols = min(len(curves), 4 if len(curves) <= 8 else 6 if len(curves) <= 24 else 10)
    nrows = math.ceil(len(curves) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.1 * ncols, 1.55 * nrows + 0.5), sharey=True, squeeze=False
    )
    for ax, (run, (steps, real, fake)) in zip(axes.flat, curves, strict=False):
        if run.eps is not None:
            ax.axhspan(0, run.eps, color="grey", alpha=0.3, lw=0)
            ax.axhspan(1 - run.eps, 1, color="grey", alpha=0.3, lw=0)
        ax.plot(steps, real, color="#1f77b4", lw=0.7)
        ax.plot(steps, fake, color="#ff7f0e", lw=0.7)
        name = "/".join(run.path.parts[-2:])
        ax.set_title(
            plain(f"{clip(name, 22, True)}\n{run.status} {num(run.score, '.2f')} "
                  f"SWD {num(run.swd, '.0f')}"),
            fontsize=6.5,
        )  # fmt: skip
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6, length=2)
        frame = {id(best): "#15803d", id(worst): "#b91c1c"}.get(id(run))
        if frame:
            for spine in ax.spines.values():
                spine.set(color=frame, lw=2.5)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    handles = [
        Line2D([], [], color="#1f77b4", label="D(x)"),
        Line2D([], [], color="#ff7f0e", label="D(G(z))"),
        Line2D([], [], color="grey", alpha=0.4, lw=6, label="unhealthy (score.eps)"),
        Line2D([], [], color="#15803d", lw=2.5, label="best run"),
        Line2D([], [], color="#b91c1c", lw=2.5, label="worst run"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (1.55 * nrows + 0.5)))
    return figure_png(fig)


def plot_scores(runs: list[Run], keys: list[str]) -> bytes | None:
    """Score against each differing key: a scatter for numbers, a strip plot for the rest."""
    import numpy as np

    scored = [r for r in runs if r.score is not None]
    panels = []
    for key in keys:
        present = [r.config[key] for r in scored if key in r.config]
        if len({json.dumps(v, default=str) for v in present}) < 2:
            continue  # it differs only in which runs have it: the schema note says so
        # a missing number is left out; a missing category is a category of its own, "-"
        numeric = all(is_number(v) for v in present)
        pts = [(r.config.get(key, "-"), r.score) for r in scored if key in r.config or not numeric]
        panels.append((key, pts))
    if not panels:
        return None
    plt = pyplot()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    jitter = np.random.default_rng(0)
    for ax, (key, pts) in zip(axes.flat, panels, strict=False):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if all(is_number(x) for x in xs):
            ax.scatter(xs, ys, s=20)
            if min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")
        else:
            cats = sorted({fmt(x) for x in xs})
            pos = [cats.index(fmt(x)) + jitter.uniform(-0.15, 0.15) for x in xs]
            ax.scatter(pos, ys, s=20)
            ax.set_xticks(range(len(cats)), [plain(clip(c, 14)) for c in cats], fontsize=7)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        ax.set_title(plain(key), fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("score")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    return figure_png(fig)


def sample_image(run: Run) -> tuple[Path | None, str]:
    """The final grid, else the latest one, with what it is."""
    final = run.path / "samples" / "final.png"
    if final.is_file():
        return final, "final samples"
    steps = sorted((run.path / "samples").glob("step_*.png"))
    return (steps[-1], f"latest samples: {steps[-1].stem}") if steps else (None, "no samples yet")


def img_tag(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ddd;padding:3px 6px;
text-align:left;white-space:nowrap}th{background:#f1f1f1;cursor:pointer}.scroll{overflow-x:auto}
.warn{border:2px solid #d97706;background:#fff4e0;padding:8px 12px;margin:8px 0;border-radius:4px}
.note{color:#555}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));
gap:12px}.card{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;font-size:12px;
overflow-wrap:anywhere}.card img{width:100%;image-rendering:pixelated}.empty{height:150px;
display:flex;align-items:center;justify-content:center;background:#f1f1f1;color:#888}
img.chart{max-width:100%}.bar{background:#4c78a8;height:10px}
.completed{color:#15803d}.collapsed,.failed{color:#b91c1c}.pruned{color:#6b7280}
tr.best td{background:#dcfce7;font-weight:600}.plots{display:flex;flex-wrap:wrap;gap:12px}
.plots figure{margin:0}.plots img{max-width:620px}.plots figure.wide{flex-basis:100%}
.plots figure.wide img{max-width:100%}"""
# click a header to sort by that column
SCRIPT = """document.querySelectorAll("table.sortable th").forEach((th, i) => th.onclick = () => {
  const body = th.closest("table").tBodies[0];
  const dir = (th.dataset.dir = th.dataset.dir === "d" ? "a" : "d") === "a" ? 1 : -1;
  const rows = [...body.rows].sort((a, b) => {
    const x = a.cells[i].textContent, y = b.cells[i].textContent;
    const nx = parseFloat(x), ny = parseFloat(y);
    return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
  });
  body.append(...rows);
});"""


def write_html(
    path: Path,
    runs: list[Run],
    keys: list[str],
    studies: dict[tuple[str, str], Study],
    notes: list[str],
    answer: str | None = None,
) -> None:
    """One self-contained page; every value from a run folder goes through html.escape.
    answer: find_answer's, said once at the top of the page."""
    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>pumpgan: {len(runs)} runs</title>"
    ]
    out += [f"<style>{STYLE}</style></head><body><h1>pumpgan: {len(runs)} runs</h1>"]
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    out += [f"<p>{e(summary_line(runs, answer))}</p><p class=note>generated {e(generated)}</p>"]
    out += [f'<div class="warn">&#9888; {e(w)}</div>' for w in edge_warnings(runs, keys, studies)]
    out += [f'<p class="note">{e(n)}</p>' for n in notes]

    headers, rows = table_rows(runs, keys)
    out.append('<h2>Runs</h2><div class="scroll"><table class="sortable"><thead><tr>')
    out += [f"<th>{e(h)}</th>" for h in headers] + ["</tr></thead><tbody>"]
    for row in rows:
        cells = [
            (f' class="{c}"' if h == "status" and c in STATUSES else "", c)
            for h, c in zip(headers, row, strict=True)
        ]
        out.append("<tr>" + "".join(f"<td{cls}>{e(c)}</td>" for cls, c in cells) + "</tr>")
    out.append("</tbody></table></div>")

    out.append('<h2>Samples</h2><div class="cards">')
    for r in runs:
        image, what = sample_image(r)
        try:
            picture = img_tag(image.read_bytes(), f"{r.name}: {what}") if image else ""
        except OSError:
            picture, what = "", f"cannot read {image}"
        # shell-quoted: safe to paste into a shell
        command = r.command or shlex.join(["python", "run.py", *r.overrides])
        out.append(
            f'<figure class="card">{picture or f"<div class=empty>{e(what)}</div>"}<figcaption>'
            f"<b>{e(r.name)}</b><br>{e(r.status)}, score {e(num(r.score, '.4f'))}, "
            f"SWD {e(num(r.swd, '.2f'))}, {e(what)}"
            f"<br><code>{e(command)}</code></figcaption></figure>"
        )
    out.append("</div>")

    for title, png in (
        ("Discriminator means", plot_d_means(runs)),
        ("Score against each parameter that differs", plot_scores(runs, keys)),
    ):
        out.append(f"<h2>{e(title)}</h2>")
        out.append(img_tag(png, title, "chart") if png else "<p class=note>nothing to plot</p>")

    for study in studies.values():
        out += study_section(study, runs)
    out.append(f"<script>{SCRIPT}</script></body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")


def study_section(study: Study, runs: list[Run]) -> list[str]:
    """HTML for one Optuna study: its trial counts, its Pareto front (two objectives) or its
    confirmed settings (a confirm study), and Optuna's own plots (gan/studyplots.py)."""
    from gan.report import studyplots
    from gan.study.sweeper import pareto_front

    e = html.escape
    trials = study.study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    counted = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    out = [f"<h2>Study {e(study.name)}</h2>"]
    out.append(f"<p class=note>{e(str(study.db))}: {len(trials)} trials ({e(counted)})</p>")
    names = {
        int(r.study["trial"]): r.name
        for r in runs
        if r.study and r.study.get("study") == study.name and study_db(r) == study.db
    }
    if study.study._is_multi_objective():
        out.append("<h3>Pareto front: score (higher is better) against SWD (lower)</h3>")
        if png := studyplots.pareto_plot(study.study, names):
            out.append(img_tag(png, f"Pareto front of study {study.name}", "chart"))
        out.append("<table><tr><th>trial</th><th>run</th><th>score</th><th>SWD</th>")
        out.append("<th>parameters</th></tr>")
        for t in pareto_front(study.study):
            params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
            cells = [str(t.number), names.get(t.number, "-"), f"{t.values[0]:.4f}"]
            cells += [f"{t.values[1]:.2f}", params]
            out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        out.append("</table>")
    if study.confirm:
        out += confirm_table(study)
    plots, skipped = studyplots.optuna_plots(study.study)
    out.append('<div class="plots">')
    for title, png in plots:  # the slice plot (a panel per parameter) gets the page's width
        wide = ' class="wide"' if title == "Slice" else ""
        out.append(f"<figure{wide}><figcaption>{e(title)}</figcaption>")
        out.append(f"{img_tag(png, title, 'chart')}</figure>")
    out.append("</div>")
    out += [f"<p class=note>not drawn: {e(why)}</p>" for why in skipped]
    return out


def confirm_table(study: Study) -> list[str]:
    """A confirm study's settings: the mean and spread of score and SWD over the seeds, beside
    the study's single-seed values; the confirmed best highlighted."""
    from gan.report import studyplots

    e = html.escape
    rows = study.confirm
    best = next((r for r in rows if r.get("confirmed_best") is True), None)
    out = ["<h3>Settings rerun over seeds</h3>"]
    if best is None:
        out.append("<p class=warn>No setting ran all its seeds without a collapse.</p>")
    else:  # the page says which it is once, at its top
        out.append("<p class=note>Highlighted: the confirmed best.</p>")
    headers = ["rank", "trial", "seeds", "collapsed", "score mean ± sd", "SWD mean ± sd"]
    headers += ["SWD range", "study's score", "study's SWD", "parameters"]
    out.append('<div class="scroll"><table><tr>')
    out.append("".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
    fixed = set(headers) | {
        "study_score", "study_swd", "seeds_done", "collapsed_fraction", "score_mean",
        "score_sd", "swd_mean", "swd_sd", "swd_min", "swd_max", "confirmed_best", "run_dir",
        "command",
    }  # fmt: skip
    for r in rows:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in r.items() if k not in fixed)
        cells = [
            f"#{r['rank']}",
            str(r["trial"]),
            str(r["seeds_done"]),
            num(r["collapsed_fraction"], ".0%"),
            f"{num(r['score_mean'], '.4f')} ± {num(r['score_sd'], '.4f')}",
            f"{num(r['swd_mean'], '.2f')} ± {num(r['swd_sd'], '.2f')}",
            f"{num(r['swd_min'], '.2f')}-{num(r['swd_max'], '.2f')}",
            num(r["study_score"], ".4f"),
            num(r["study_swd"], ".2f"),
            params,
        ]
        style = ' class="best"' if r is best else ""
        out.append(f"<tr{style}>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table></div>")
    if png := studyplots.confirm_plot(study.study, rows):
        out.append(img_tag(png, f"SWD per seed, study {study.name}", "chart"))
    return out


# ---- the command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m gan.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="where to look for runs (outputs/)"
    )
    parser.add_argument("--csv", type=Path, help="write the rows, all columns, to this CSV file")
    parser.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    parser.add_argument(
        "--sort", choices=("score", "name"), default="score", help="best first, or by folder"
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="FILE.yaml",
        help="write the answer's settings (the confirmed best, else the best finished run) as a "
        "config file; run it with python run.py --config-dir DIR --config-name NAME",
    )
    args = parser.parse_args(argv)
    paths = args.paths or [Path("outputs")]

    found: dict[Path, Run] = {}
    for path in paths:
        runs = find_runs([path])
        if not runs:
            print(f"not a run folder and holds none: {path}", file=sys.stderr)
        found.update((r.path.resolve(), r) for r in runs)
    if not found:
        return 1
    runs = sort_runs(list(found.values()), args.sort)
    keys = differing_keys(runs)
    notes = []
    if partial := partial_keys(runs):
        notes.append(f"only some runs have {', '.join(partial)} (shown as - where missing)")

    best, answer = find_answer(runs)
    emit(format_table(runs, keys, answer))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.csv:
        write_csv(args.csv, runs, keys)
        emit(f"wrote {args.csv}")
    if args.html:
        write_html(args.html, runs, keys, load_studies(paths, runs), notes, answer)
        emit(f"wrote {args.html}")
    if args.export:
        if best is None:
            print("--export: no run has finished: no settings to export", file=sys.stderr)
            return 1
        about = answer or f"best: {best.name}, score {num(best.score, '.4f')}"
        out = args.export.with_suffix(".yaml")
        runs_it = export(best.path, out, f"The settings of the {about}")
        emit(f"wrote {out}; run it with: {runs_it}")
    return 0


def emit(text: str) -> None:
    """Print to stdout. A reader that stops early (`gan.compare | head`) ends the printing, not
    the command: the CSV and HTML files are still written."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
