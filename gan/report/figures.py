"""The report's figures of runs as PNG bytes: matplotlib on its Agg backend (`pyplot`), each
run's D means over steps in a panel of its own, and the score against each parameter that
differs between the runs. The figures of a study are in gan/report/studyplots.py."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from gan.report.runs import Run, sort_runs
from gan.report.values import clip, fmt, is_number, num
from gan.run.folder import pyplot

MAX_POINTS = 2000  # per curve in the D-means chart


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
