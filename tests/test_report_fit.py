"""gan.compare's report made to fit what shows it: the terminal table within the terminal's width,
a config group chosen as a whole (augment) as one key, a slice plot whose tick labels do not run
into each other, and parameter importances only where there are trials enough to mean something.
Real run folders, Optuna studies and matplotlib figures; no training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution

from gan.report import html, studyplots
from gan.report.figures import pyplot
from gan.report.runs import Run, differing_keys, find_runs, sort_runs
from gan.report.studies import Study, bounds
from gan.report.table import format_table
from gan.study.confirm import CONFIRMS

from .conftest import CONF

# a study of every kind of axis the slice plot has: a wide log range, a log range under a
# decade, a linear one and categories with long names
SPACE = {
    "optim.gen_lr": FloatDistribution(1e-5, 1e-1, log=True),
    "optim.disc_lr": FloatDistribution(2e-4, 8e-4, log=True),
    "optim.beta1": FloatDistribution(0.0, 0.9),
    "optim.loss": CategoricalDistribution(["bce", "hinge", "lsgan", "wgan-gp"]),
    "augment": CategoricalDistribution(["none", "seed", "diffaugment"]),
    "model.spectral_norm": CategoricalDistribution([False, True]),
}


def make_study(trials: int, confirms: bool = False, storage: str | None = None) -> optuna.Study:
    """A maximising study of `trials` complete trials over SPACE, seeded values; `confirms`:
    each trial marked as the rerun of a setting, as gan.study.confirm marks them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    for number in range(trials):
        params = {
            name: rng.choice(d.choices)
            if isinstance(d, CategoricalDistribution)
            else d.low * (d.high / d.low) ** rng.random()
            if d.log
            else rng.uniform(d.low, d.high)
            for name, d in SPACE.items()
        }
        attrs = {CONFIRMS: number // 2} if confirms else {}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=SPACE, value=rng.random(), user_attrs=attrs
            )
        )
    return study


# ---- the terminal table


def many_keys_runs(tmp_path: Path) -> tuple[list[Run], list[str]]:
    """Five runs in a deep folder that differ in 14 keys, two of which end alike."""
    keys = [f"optim.key_number_{i}" for i in range(12)] + ["model.ema", "train.ema"]
    runs = []
    for n in range(5):
        quality = {"swd": 10.0 + n, "swd_moments": True, "diversity": 0.5}
        summary = {"status": "completed", "score": 1 - n / 10, "quality": quality}
        path = tmp_path / "outputs" / "sweeps" / "a_long_study_name" / f"trial_{n:04d}"
        runs.append(Run(path, summary, {k: n * 0.001 + i for i, k in enumerate(keys)}))
    return sort_runs(runs), keys


@pytest.mark.parametrize("width", [100, 80])
def test_the_table_fits_the_terminal_and_keeps_what_ranks_the_runs(tmp_path, width):
    runs, keys = many_keys_runs(tmp_path)
    assert len(format_table(runs, keys).splitlines()[0]) > 200  # every column: too wide
    lines = format_table(runs, keys, width=width).splitlines()
    header, rows = lines[0], lines[2:7]
    assert all(len(line) <= width for line in lines[:-1])  # the summary line says the answer
    assert header.split()[:5] == ["run", "status", "score", "swd", "key_number_0"]
    assert [r.split()[1:3] for r in rows] == [["completed", f"{1 - n / 10:.4f}"] for n in range(5)]
    assert all(r.split()[0].endswith(f"trial_{n:04d}") for n, r in enumerate(rows))
    note = " ".join(lines[7:-1])
    assert note.startswith(f"left out to fit {width} columns: ")
    assert note.endswith("(--csv and --html have every column)")
    shown = header.split()
    # every column is either in the table or named as left out
    for column in ("key_number_11", "model.ema", "train.ema", "wall_s", "images/s"):
        assert (column in shown) != (column in note), column
    assert "ema" not in note.replace("model.ema", "").replace("train.ema", "")  # not shortened


def test_a_narrow_terminal_clips_the_run_folder_before_it_drops_what_ranks(tmp_path):
    runs, keys = many_keys_runs(tmp_path)
    lines = format_table(runs, keys, width=50).splitlines()
    assert lines[0].split() == ["run", "status", "score", "swd"]
    assert all(len(line) <= 50 for line in lines[:7])
    assert lines[2].split()[0].startswith("...") and lines[2].split()[0].endswith("trial_0000")


# ---- a config group chosen as a whole


def run_folder(path: Path, augment: str, gen_lr: float, extra: dict | None = None) -> Path:
    """A run folder as Hydra and gan.run write it, composed with augment=`augment` (the
    shipped option's values, conf/augment/) and `extra` augment keys set on their own."""
    options = yaml.safe_load((CONF / "augment" / f"{augment}.yaml").read_text())
    config = {
        "optim": {"gen_lr": gen_lr, "beta1": 0.5},
        "augment": {"hflip": 0.0, "affine_p": 0.0, "diffaugment": "", **options, **(extra or {})},
        "seed": 0,
    }
    choices = {"augment": augment, "optim": "dcgan", "sweep": "stabilisers", "hydra/env": None}
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"augment={augment}"]))
    (path / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    (path / "summary.json").write_text(json.dumps({"status": "completed", "score": 0.5}))
    return path


def test_a_searched_config_group_is_one_key_not_its_values(tmp_path):
    for n, augment in enumerate(["none", "seed", "diffaugment", "seed"]):
        run_folder(tmp_path / str(n), augment, gen_lr=1e-4 * (n + 1))
    runs = sort_runs(find_runs([tmp_path]), "name")
    assert differing_keys(runs) == ["augment", "optim.gen_lr"]  # safe_dump sorts the keys
    assert [r.config["augment"] for r in runs] == ["none", "seed", "diffaugment", "seed"]
    assert runs[1].config["augment.hflip"] == 0.5  # the values are still there: the CSV's
    # a key of the group set on its own as well as by the option stays a column of its own
    run_folder(tmp_path / "4", "seed", gen_lr=1e-4, extra={"hflip": 0.2})
    runs = sort_runs(find_runs([tmp_path]), "name")
    assert differing_keys(runs) == ["augment", "augment.hflip", "optim.gen_lr"]


def test_one_option_of_a_group_everywhere_shows_the_keys_that_differ(tmp_path):
    run_folder(tmp_path / "a", "seed", gen_lr=1e-4)
    run_folder(tmp_path / "b", "seed", gen_lr=1e-4, extra={"hflip": 0.2})
    assert differing_keys(find_runs([tmp_path])) == ["augment.hflip"]


# ---- the slice plot


def drawn_labels(ax) -> list:
    """The x tick labels matplotlib draws: with text, at a tick inside the axis' limits."""
    lo, hi = sorted(ax.get_xlim())
    return [
        t
        for t in ax.get_xticklabels(which="both")
        if t.get_visible() and t.get_text() and lo <= t.get_position()[0] <= hi
    ]


def overlaps(labels: list, renderer) -> list[tuple[str, str]]:
    """Pairs of `labels` whose boxes intersect."""
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
    return [
        (a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if ba.overlaps(bb)
    ]


def test_the_slice_plot_has_rows_of_panels_with_tick_labels_apart():
    from optuna.visualization import matplotlib as vis

    study = make_study(12)
    pyplot()
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        panels = list(vis.plot_slice(study).flat)
    studyplots.slice_grid(panels)
    fig = panels[0].figure
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    assert len(panels) == len(SPACE) and len(rows) == 2  # 4 panels to a row
    by_name = {ax.get_xlabel(): [t.get_text() for t in drawn_labels(ax)] for ax in panels}
    for name, labels in by_name.items():
        assert len(labels) >= 2, f"{name}: {labels}"
        assert not any("'" in t for t in labels)  # choices as written, unquoted
    # within a panel, and across neighbouring ones (a slanted category reaches left)
    assert not overlaps([t for ax in panels for t in drawn_labels(ax)], renderer)
    assert "diffaugment" in by_name["augment"]
    assert by_name["optim.disc_lr"] and all("10^" not in t for t in by_name["optim.disc_lr"])
    pyplot().close("all")


# ---- parameter importances


def test_importances_need_enough_trials_and_a_study_that_searched():
    few = make_study(studyplots.MIN_TRIALS_FOR_IMPORTANCES - 1)
    plots, skipped = studyplots.optuna_plots(few)
    assert "Parameter importances" not in [title for title, _ in plots]
    assert skipped == [
        f"Parameter importances: {studyplots.MIN_TRIALS_FOR_IMPORTANCES - 1} complete trials, "
        f"fewer than the {studyplots.MIN_TRIALS_FOR_IMPORTANCES} that fANOVA needs for "
        "importances that are more than noise"
    ]
    enough = make_study(studyplots.MIN_TRIALS_FOR_IMPORTANCES)
    plots, skipped = studyplots.optuna_plots(enough)
    assert "Parameter importances" in [title for title, _ in plots] and skipped == []
    plots, skipped = studyplots.optuna_plots(enough, confirms=True)
    assert "Parameter importances" not in [title for title, _ in plots]
    assert skipped[0].startswith("Parameter importances: a confirm study reruns")


def test_a_confirm_studys_report_says_why_it_has_no_importances(tmp_path):
    db = tmp_path / "optuna.db"
    study = make_study(studyplots.MIN_TRIALS_FOR_IMPORTANCES, True, f"sqlite:///{db}")
    section = html.study_section(Study("s", db, study, bounds(study), []), [])
    assert "Parameter importances" not in [p["title"] for p in section["plots"]]
    assert any("a confirm study reruns" in why for why in section["skipped"])
    pyplot().close("all")
