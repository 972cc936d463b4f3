"""Figures of one Optuna study for gan.compare's HTML report (the figures of runs: figures.py).

- Optuna's own plots (optuna.visualization.matplotlib): optimisation history, slice, parallel
  coordinates, parameter importances, and the intermediate values where runs reported some
  (pruning); for a two-objective study the Pareto front, and the history and importances of
  each objective.
- The Pareto front of a two-objective study (score, SWD), each of its trials named.
- A confirm study's seeds (gan.study.confirm): the SWD of every seed of every setting, next to the
  single-seed value the study picked it by.

Each function returns PNG bytes (or a list of (title, PNG)); a plot that Optuna cannot draw for
this study (too few trials, one value everywhere) is left out with the reason.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gan.report.figures import figure_png, plain, pyplot

SWD_NAME = "SWD (lower is better)"
SCORE_NAME = "stability score"


def optuna_plots(study: optuna.Study) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Optuna's plots of `study`: (title, PNG) each, and why any were skipped."""
    pyplot()  # the Agg backend, before Optuna's plots import matplotlib's
    from optuna.visualization import matplotlib as vis

    plots: list[tuple[str, Callable[[], Any]]] = []
    if study._is_multi_objective():
        names = [SCORE_NAME, SWD_NAME]
        plots.append(("Pareto front", lambda: vis.plot_pareto_front(study, target_names=names)))
        for i, name in enumerate(names):
            history = functools.partial(
                vis.plot_optimization_history, study, target=_objective(i), target_name=name
            )
            importances = functools.partial(
                vis.plot_param_importances, study, target=_objective(i), target_name=name
            )
            plots += [
                (f"Optimisation history: {name}", history),
                (f"Parameter importances: {name}", importances),
            ]
    else:
        plots += [
            ("Optimisation history", lambda: vis.plot_optimization_history(study)),
            ("Slice", lambda: vis.plot_slice(study)),
            ("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study)),
            ("Parameter importances", lambda: vis.plot_param_importances(study)),
        ]
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            plots.append(
                (
                    "Intermediate values (-SWD when maximising)",
                    lambda: vis.plot_intermediate_values(study),
                )
            )
    out, skipped = [], []
    for title, draw in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks these plots experimental
                axes = draw()
            first = axes.flat[0] if hasattr(axes, "flat") else axes
            fig = first.figure
            if not fig.axes or not any(ax.has_data() for ax in fig.axes):
                raise ValueError("nothing to draw")
            legend = first.get_legend()
            if title.startswith("Intermediate") and legend and len(legend.get_texts()) > 12:
                legend.remove()  # a line per trial: past a dozen the legend only hides the plot
            fig.set_size_inches(*_size(title, fig))
            out.append((title, figure_png(fig)))
        except Exception as e:  # noqa: BLE001 - one plot Optuna cannot draw must not stop the rest
            pyplot().close("all")
            skipped.append(f"{title}: {type(e).__name__}: {e}")
    return out, skipped


def _objective(i: int) -> Callable[[FrozenTrial], float]:
    return lambda t: t.values[i]


def _size(title: str, fig: Any) -> tuple[float, float]:
    if title == "Slice":
        return max(6.0, 3.0 * len(fig.axes)), 3.5
    if title.startswith("Parallel"):
        return 10.0, 4.5
    return 6.5, 4.0


def pareto_plot(study: optuna.Study, names: dict[int, str]) -> bytes | None:
    """Score against SWD for the complete trials of a two-objective study: the front in red,
    each of its trials named (`names`: trial number -> run folder)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    plt = pyplot()
    front = sorted(study.best_trials, key=lambda t: t.values[0])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(
        [t.values[0] for t in complete],
        [t.values[1] for t in complete],
        s=18,
        color="#9ca3af",
        label="trials",
    )
    ax.plot(
        [t.values[0] for t in front],
        [t.values[1] for t in front],
        "o-",
        color="#b91c1c",
        ms=6,
        label="Pareto front",
    )
    for t in front:
        label = plain(names.get(t.number, f"trial {t.number}"))
        ax.annotate(label, (t.values[0], t.values[1]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    ax.set(xlabel=f"{SCORE_NAME} (higher is better)", ylabel=SWD_NAME)
    ax.set_title(f"study {study.study_name}: score against SWD", fontsize=10)
    ax.legend(fontsize=8)
    return figure_png(fig)


def confirm_plot(study: optuna.Study, rows: list[dict[str, Any]]) -> bytes | None:
    """The SWD of each seed of each confirmed setting (a cross: a seed that collapsed), the
    study's single-seed SWD (a diamond) and the mean (a bar); the confirmed best in red.
    `rows`: confirm.csv's rows, in the study's order."""
    if not rows:
        return None
    import numpy as np

    from gan.study.confirm import CONFIRMS  # imports torch (gan.files): not for --help

    plt = pyplot()

    seeds: dict[int, list[tuple[float, bool]]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        swd = t.user_attrs.get("swd")
        # collapsed_at (gan.study.sweeper records it); for trials of older sweeps, a score below 1
        collapsed = t.user_attrs.get("collapsed_at", None if t.values[0] == 1.0 else 0) is not None
        if CONFIRMS in t.user_attrs and isinstance(swd, int | float):
            seeds.setdefault(int(t.user_attrs[CONFIRMS]), []).append((swd, collapsed))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows)), 4))
    jitter = np.random.default_rng(0)
    for x, row in enumerate(rows):
        colour = "#b91c1c" if row.get("confirmed_best") is True else "#1f2937"
        points = seeds.get(int(row["trial"]), [])
        for swd, collapsed in points:
            ax.scatter(x + jitter.uniform(-0.12, 0.12), swd, s=22, color=colour,
                       marker="x" if collapsed else "o", alpha=0.8)  # fmt: skip
        mean = row.get("swd_mean")
        if isinstance(mean, float) and math.isfinite(mean):
            ax.hlines(mean, x - 0.25, x + 0.25, color=colour, lw=2)
        single = row.get("study_swd")
        if isinstance(single, int | float):
            ax.scatter(x + 0.3, single, marker="D", s=30, facecolor="white", edgecolor=colour)
    ticks = [
        f"#{r['rank']} trial {r['trial']}"
        + ("\nconfirmed best" if r.get("confirmed_best") is True else "")
        for r in rows
    ]
    ax.set_xticks(range(len(rows)), ticks, fontsize=8)
    ax.set_ylabel(SWD_NAME)
    ax.set_title(
        f"{study.study_name}: SWD per seed (o; x collapsed), mean (bar), the study's own seed (◇)",
        fontsize=9,
    )
    return figure_png(fig)
