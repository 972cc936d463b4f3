"""Figures of one Optuna study for gan.compare's HTML report (the figures of runs: figures.py).

- Optuna's own plots (optuna.visualization.matplotlib): optimisation history, slice, parallel
  coordinates, parameter importances, and the intermediate values where runs reported some
  (pruning); for a two-objective study the Pareto front, and the history and importances of
  each objective.
- The Pareto front of a two-objective study (score, SWD), each of its trials named.
- A confirm study's seeds (gan.study.confirm): the SWD of every seed of every setting, next to the
  single-seed value the study picked it by.

Each function returns PNG bytes (or a list of (title, PNG)); a plot that Optuna cannot draw for
this study (too few trials, one value everywhere) is left out with the reason, and so are the
importances of a confirm study and of one with under MIN_TRIALS_FOR_IMPORTANCES complete trials.
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
from gan.report.values import clip

SWD_NAME = "SWD (lower is better)"
SCORE_NAME = "stability score"
# parameter importances (fANOVA: a random forest fitted to the trials) are drawn from this many
# complete trials on: a forest fitted to a handful of trials of several parameters splits on
# whichever parameter comes first (3 trials of 8 parameters give each 1/8), and its importances
# are noise that a reader would take for a finding
MIN_TRIALS_FOR_IMPORTANCES = 20
# panels per row of the slice plot: at the page's width their tick labels stay legible
SLICE_COLUMNS = 4


def optuna_plots(
    study: optuna.Study, confirms: bool = False
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Optuna's plots of `study`: (title, PNG) each, and why any were left out. `confirms`: a
    confirm study (gan.study.confirm), whose trials rerun chosen settings on new seeds."""
    pyplot()  # the Agg backend, before Optuna's plots import matplotlib's
    from optuna.visualization import matplotlib as vis

    no_importances = importances_left_out(study, confirms)
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
            plots.append((f"Optimisation history: {name}", history))
            if not no_importances:
                plots.append((f"Parameter importances: {name}", importances))
    else:
        plots += [
            ("Optimisation history", lambda: vis.plot_optimization_history(study)),
            ("Slice", lambda: vis.plot_slice(study)),
            ("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study)),
        ]
        if not no_importances:
            plots.append(("Parameter importances", lambda: vis.plot_param_importances(study)))
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            plots.append(
                (
                    "Intermediate values (-SWD when maximising)",
                    lambda: vis.plot_intermediate_values(study),
                )
            )
    out, skipped = [], [no_importances] if no_importances else []
    for title, draw in plots:
        try:
            out.append((title, draw_png(title, draw)))
        except Exception as e:  # noqa: BLE001 - one plot Optuna cannot draw must not stop the rest
            pyplot().close("all")
            skipped.append(f"{title}: {type(e).__name__}: {e}")
    return out, skipped


def importances_left_out(study: optuna.Study, confirms: bool) -> str | None:
    """Why the study's parameter importances are not drawn: a confirm study, or fewer than
    MIN_TRIALS_FOR_IMPORTANCES complete trials; None to draw them."""
    if confirms:
        return (
            "Parameter importances: a confirm study reruns the best settings of another study on "
            "new seeds; it searches nothing, so importances would only rank seed luck (see that "
            "study's report for its own)"
        )
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < MIN_TRIALS_FOR_IMPORTANCES:
        return (
            f"Parameter importances: {complete} complete trial{'s' * (complete != 1)}, fewer than "
            f"the {MIN_TRIALS_FOR_IMPORTANCES} that fANOVA needs for importances that are more "
            "than noise"
        )
    return None


def draw_png(title: str, draw: Callable[[], Any]) -> bytes:
    """One of Optuna's plots as PNG bytes; ValueError when it drew nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks these plots experimental
        axes = draw()
    panels = list(axes.flat) if hasattr(axes, "flat") else [axes]
    fig = panels[0].figure
    if not fig.axes or not any(ax.has_data() for ax in fig.axes):
        raise ValueError("nothing to draw")
    legend = panels[0].get_legend()
    if title.startswith("Intermediate") and legend and len(legend.get_texts()) > 12:
        legend.remove()  # a line per trial: past a dozen the legend only hides the plot
    if title == "Slice":
        slice_grid(panels)
    elif title.startswith("Parallel"):
        # an axis per parameter (twin axes, and the colour bar): room for each one's labels
        for ax in fig.axes:
            ax.tick_params(labelsize=8)
        fig.set_size_inches(max(10.0, 1.5 * len(fig.axes)), 4.5)
    else:
        fig.set_size_inches(6.5, 4.0)
    return figure_png(fig)


def _objective(i: int) -> Callable[[FrozenTrial], float]:
    return lambda t: t.values[i]


def slice_grid(panels: list[Any]) -> None:
    """Optuna's slice plot, one row of a panel per parameter, laid out again in rows of
    SLICE_COLUMNS panels, each with ticks a reader can read (`readable_ticks`)."""
    fig = panels[0].figure
    ylabel = panels[0].get_ylabel()
    for ax in fig.axes:
        if ax not in panels:
            ax.remove()  # Optuna's colour bar: drawn again for the new layout
    ncols = min(SLICE_COLUMNS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    grid = fig.add_gridspec(nrows, ncols, hspace=0.75, wspace=0.25)
    for i, ax in enumerate(panels):
        ax.set_subplotspec(grid[i // ncols, i % ncols])
        first = i % ncols == 0
        ax.tick_params(labelsize=8, labelleft=first)
        ax.set_ylabel(ylabel if first else "", fontsize=9)
        ax.xaxis.label.set_fontsize(9)
        readable_ticks(ax)
    fig.colorbar(panels[-1].collections[0], ax=panels, label="Trial", fraction=0.03)
    fig.set_size_inches(3.3 * ncols + 1.0, 2.9 * nrows + 0.6)


def readable_ticks(ax: Any) -> None:
    """An x axis whose tick labels do not run into each other: categories without the quotes
    Optuna gives them, clipped and slanted; a log axis labelled at whole decades only (at most
    6), or under a decade at 3 or 4 round values; at most 4 ticks on a linear one."""
    from matplotlib import category, ticker

    if isinstance(ax.xaxis.get_converter(), category.StrCategoryConverter):
        named = ax.xaxis.get_major_formatter()
        ax.xaxis.set_major_formatter(
            ticker.FuncFormatter(lambda x, pos: plain(clip(named(x, pos).strip("'"), 14)))
        )
        # slanted, each label's end at its tick ("xtick" aligns it by the angle)
        ax.tick_params(axis="x", labelrotation=30, labelrotation_mode="xtick")
    elif ax.get_xscale() == "log":
        lo, hi = ax.get_xlim()
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        if hi / lo >= 10:
            ax.xaxis.set_major_locator(ticker.LogLocator(numticks=6))
        else:  # under a decade holds one decade tick at most: evenly spaced values instead
            ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=3))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, pos: f"{x:g}"))
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=4))


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


def schedule_plot(study: optuna.Study) -> bytes | None:
    """A population's schedules (gan/study/population.py): each searched key against the step,
    one line per member over its segments, a triangle where a member took another's weights
    (its line jumps to the values it explored from them), and the SWD each segment ended with
    (on fewer images before the last generation, as the members were ranked)."""
    from gan.study.pbt import EXPLOITED, GENERATION, MEMBER, PBT
    from gan.study.trials import SWD, counts

    conf = study.user_attrs.get(PBT)
    trials = [t for t in study.get_trials(deepcopy=False) if MEMBER in t.user_attrs and counts(t)]
    if not isinstance(conf, dict) or not trials:
        return None
    interval = int(conf["interval"])
    keys = sorted({k for t in trials for k in t.params})
    plt = pyplot()
    fig, axes = plt.subplots(len(keys) + 1, 1, figsize=(8, 2.2 * (len(keys) + 1)), sharex=True)
    colours = plt.get_cmap("tab20")
    members = sorted({int(t.user_attrs[MEMBER]) for t in trials})
    for m in members:
        mine = sorted(
            (t for t in trials if t.user_attrs[MEMBER] == m),
            key=lambda t: t.user_attrs[GENERATION],
        )
        colour = colours(m % 20)
        for ax, key in zip(axes, [*keys, SWD], strict=True):
            xs, ys = [], []
            for t in mine:
                g = int(t.user_attrs[GENERATION])
                value = t.user_attrs.get(SWD) if key == SWD else t.params.get(key)
                if not isinstance(value, int | float):
                    continue
                if key == SWD:
                    xs.append((g + 1) * interval)
                    ys.append(value)
                    continue
                xs += [g * interval, (g + 1) * interval]
                ys += [value, value]
                if t.user_attrs.get(EXPLOITED):
                    ax.scatter(g * interval, value, marker="v", s=28, color=colour, zorder=3)
            ax.plot(xs, ys, color=colour, lw=1.2, alpha=0.85, marker="." if key == SWD else None,
                    label=f"member {m}" if key == keys[0] else None)  # fmt: skip
    for ax, key in zip(axes, [*keys, SWD], strict=True):
        dist = next((t.distributions[key] for t in trials if key in t.distributions), None)
        if getattr(dist, "log", False) or key == SWD:
            ax.set_yscale("log")
        ax.set_ylabel(plain(SWD_NAME if key == SWD else key), fontsize=8)
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("step")
    axes[0].set_title(
        f"{study.study_name}: each member's values by step (▼: took another member's weights)",
        fontsize=9,
    )
    fig.legend(loc="center left", bbox_to_anchor=(0.99, 0.5), fontsize=7, frameon=False)
    return figure_png(fig)
