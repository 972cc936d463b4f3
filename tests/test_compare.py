"""gan.compare on fake run folders: single runs, an Optuna sweep, a killed run, a half-started
one, one with an extra config key and one whose name is an HTML injection. No training."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest
import yaml
from PIL import Image

import gan.report.figures
from gan.report.compare import main
from gan.report.runs import differing_keys, find_runs, sort_runs
from gan.report.table import format_table

from .conftest import ROOT

EVIL = "<script>alert(1)</script>"
CONFIG = {
    "model": {"arch": "dcgan", "gen_features": 8, "disc_features": 8, "image_size": 32},
    "optim": {"gen_lr": 2e-4, "disc_lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "loss": "bce"},
    "hardware": {"device": "cpu", "precision": "fp32"},
    "data": {"name": "pumpkins", "num_images": 64, "cache_dir": "/tmp/cache"},
    "train": {"steps": 200, "batch_size": 16},
    "score": {"eps": 0.03, "patience": 50, "stop_on_collapse": True},
    "seed": 0,
    "resume": None,
}


def make_run(
    path: Path,
    gen_lr: float,
    score: float | None,
    status: str = "completed",
    summary: bool = True,
    final: bool = True,
    extra: dict | None = None,
    optuna_info: dict | None = None,
    overrides: tuple[str, ...] = (),
    cache_dir: str = "/tmp/cache",
    updated_at: datetime | None = None,
) -> Path:
    """A run folder as gan.run.train writes it, with 20 steps of metrics and a 16 px grid."""
    config = json.loads(json.dumps(CONFIG))
    config["optim"]["gen_lr"] = gen_lr
    config["data"]["cache_dir"] = cache_dir
    for key, value in (extra or {}).items():
        group, name = key.split(".")
        config[group][name] = value
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = (f"optim.gen_lr={gen_lr}", *overrides)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    if not summary:
        return path
    steps_done = 200 if status == "completed" else 100
    collapsed = status == "collapsed"
    record = {
        "status": status,
        "score": score,
        "collapsed_at": 100 if collapsed else None,
        "reason": "d_fake < eps" if collapsed else None,
        "steps": 200,
        "steps_done": steps_done,
        "wall_s": 12.345,
        "images_per_s": 321.7,
        "quality": {"swd": 7.5, "swd_moments": True, "diversity": 0.9, "colour_gap": 0.05}
        if final
        else None,
        "run_dir": str(path),
        "updated_at": (updated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    if optuna_info:
        record["optuna"] = optuna_info
    (path / "summary.json").write_text(json.dumps(record))
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "time_s", "loss_d", "loss_g", "d_real", "d_fake", "d_fake_after"])
        writer.writerows(
            [s, s / 10, 1.2, 0.8, 0.7 - s / 100, 0.3 - s / 100, 0.4] for s in range(20)
        )
    (path / "samples").mkdir()
    Image.new("RGB", (16, 16), (200, 120, 30)).save(path / "samples" / "step_000100.png")
    if final:
        Image.new("RGB", (16, 16), (30, 120, 200)).save(path / "samples" / "final.png")
    return path


SWEEP_LRS = (1e-4, 1e-3, 5e-3, 1e-2)  # the best trial sits on the upper bound
SWEEP_SCORES = (0.1, 0.4, 0.6, 0.95)


def make_tree(root: Path) -> Path:
    out = root / "outputs"
    make_run(out / "single" / "a", 1e-3, 0.5, status="collapsed")
    make_run(out / "single" / "b", 2e-3, 1.0, cache_dir="/elsewhere")
    make_run(
        out / "killed",
        3e-3,
        None,
        status="running",
        final=False,
        updated_at=datetime.now(UTC) - timedelta(hours=1),
    )
    make_run(out / "half", 2e-4, None, summary=False)
    make_run(out / "extra", 2e-4, 0.3, extra={"model.spectral_norm": True})
    make_run(out / EVIL, 2e-4, 0.2, overrides=(f"+note={EVIL}",))

    sweep = out / "sweeps" / "s1"
    sweep.mkdir(parents=True)
    storage = f"sqlite:///{sweep}/optuna.db"
    study = optuna.create_study(storage=storage, study_name="quick", direction="maximize")
    space = {"optim.gen_lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    for number, (lr, value) in enumerate(zip(SWEEP_LRS, SWEEP_SCORES, strict=True)):
        study.add_trial(
            optuna.trial.create_trial(params={"optim.gen_lr": lr}, distributions=space, value=value)
        )
        info = {"study": "quick", "storage": storage, "trial": number}
        make_run(sweep / f"trial_{number:04d}", lr, value, optuna_info=info)
    (sweep / "trials.csv").write_text("number,value\n")
    # a second study with one trial and no run folders: too few trials for importances
    lonely = out / "sweeps" / "s2"
    lonely.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{lonely}/optuna.db", study_name="lonely")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return make_tree(tmp_path_factory.mktemp("compare"))


@pytest.fixture(scope="module")
def report(tree: Path) -> tuple[str, str, str]:
    """stdout, stderr and the HTML of one `--html --csv` run over the whole tree."""
    # capsys is function-scoped: redirect by hand to share one report between tests
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tree.parent)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["outputs", "--html", "report.html", "--csv", "runs.csv"])
        assert code == 0
    return stdout.getvalue(), stderr.getvalue(), (tree.parent / "report.html").read_text()


def test_table_is_sorted_by_score_and_shows_only_differing_keys(tree, monkeypatch):
    monkeypatch.chdir(tree.parent)
    runs = sort_runs(find_runs([Path("outputs")]))
    keys = differing_keys(runs)
    assert keys == ["optim.gen_lr", "model.spectral_norm"]  # not disc_lr, not data.cache_dir
    table = format_table(runs, keys).splitlines()
    header, rows, last = table[0], table[2:-1], table[-1]
    # what ranks the runs first, then the keys that differ
    assert header.split()[:6] == [
        "run",
        "status",
        "score",
        "swd",
        "optim.gen_lr",
        "model.spectral_norm",
    ]
    assert "trial" in header and "note" in header
    names = [row.split()[0] for row in rows]
    assert names == [
        "outputs/single/b",
        "outputs/sweeps/s1/trial_0003",
        "outputs/sweeps/s1/trial_0002",
        "outputs/single/a",
        "outputs/sweeps/s1/trial_0001",
        "outputs/extra",
        f"outputs/{EVIL}",
        "outputs/sweeps/s1/trial_0000",
        "outputs/half",
        "outputs/killed",
    ]
    assert rows[0].split()[4:6] == ["0.002", "-"]  # b lacks model.spectral_norm
    killed, half = rows[-1].split(), rows[-2].split()
    assert killed[1:3] == ["running", "-"] and killed[-1] == "stale?"
    assert half[1] == "unknown"
    assert "quick:3" in rows[1] and "100/200" in rows[3] and "12.3" in rows[0]
    counts = "10 runs (7 completed, 1 collapsed, 1 running, 1 unknown)"
    assert last == f"{counts}, best: outputs/single/b score 1.0000"


def test_csv_has_every_column(report, tree):
    with open(tree.parent / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "run", "optim.gen_lr", "model.spectral_norm", "status", "score", "collapsed_at",
        "reason", "steps_done", "steps", "wall_s", "images_per_s", "quality.swd",
        "quality.swd_moments", "quality.diversity", "quality.colour_gap", "optuna.study",
        "optuna.trial", "run_dir", "note", "command",
    ]  # fmt: skip
    trial = next(r for r in rows if r["run"].endswith("trial_0003"))
    assert (trial["optuna.study"], trial["optuna.trial"], trial["score"]) == ("quick", "3", "0.95")
    assert [r["status"] for r in rows][-2:] == ["unknown", "running"]


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)


def test_html_report_is_self_contained_and_escaped(report):
    stdout, stderr, page = report
    assert "wrote report.html" in stdout and "wrote runs.csv" in stdout
    parser = TagCollector()
    parser.feed(page)
    parser.close()
    assert parser.tags.count("script") == 1  # only the sorting script; the run name is text
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # 9 sample cards (the half-started run has none), the two charts, Optuna's 3 plots of study
    # quick and the one it can draw of study lonely (a single trial); no importances: too few
    # trials
    assert page.count('src="data:image/png;base64,') == 15
    assert "no samples yet" in page and "latest samples: step_000100" in page
    quick = page.split("<h2>Study quick</h2>")[1].split("<h2>")[0]
    for title in ("Optimisation history", "Slice", "Parallel coordinates"):
        assert f"<figcaption>{title}</figcaption>" in quick
    assert "<figcaption>Parameter importances</figcaption>" not in quick
    assert "not drawn: Parameter importances: 4 complete trials, fewer than the 20 " in quick
    lonely = page.split("<h2>Study lonely</h2>")[1]
    assert "1 trials (1 complete)" in lonely
    assert "not drawn: Parameter importances: 1 complete trial, fewer than the 20 " in lonely
    warnings = [w.split("</div>")[0] for w in page.split('class="warn">')[1:]]
    assert any("optim.gen_lr" in w and "upper edge of study quick" in w for w in warnings)
    assert "only some runs have model.spectral_norm" in stderr
    assert "http" not in page.split("<body>")[1]  # no external assets


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_the_report_in_headless_chromium(report, tree, tmp_path):
    """The report as a browser shows it: it renders, its script raises nothing, and clicks on
    the score header sort the runs table by score."""
    page = (tree.parent / "report.html").read_text()
    shot = tmp_path / "report.png"
    result = chromium(
        "--window-size=1200,3000", f"--screenshot={shot}", (tree.parent / "report.html").as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 3000)
        assert len(image.convert("L").getcolors(maxcolors=4096) or range(4097)) > 50  # not blank
    # a copy that clicks the score header once the report's own script has run
    clicked = tmp_path / "clicked.html"
    # twice: the first click sorts highest first (the order the table already has), the second
    # lowest first
    header = "document.querySelector('table.sortable th:nth-child(3)')"
    click = f"<script>{header}.click(); {header}.click()</script>"
    clicked.write_text(page.replace("</body>", click + "</body>"))
    result = chromium("--enable-logging=stderr", "--v=0", "--dump-dom", clicked.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Uncaught" not in result.stderr
    body = result.stdout.split('<table class="sortable">')[1].split("</table>")[0]
    scores = [
        float(m) if m != "-" else None
        for m in re.findall(r"<tr><td>[^<]*</td><td[^>]*>[^<]*</td><td>([^<]*)</td>", body)
    ]
    numbers = [s for s in scores if s is not None]
    assert len(scores) == 10 and numbers == sorted(numbers) and numbers[0] < numbers[-1]


def test_unreadable_summary_is_listed(tmp_path, capsys):
    run = make_run(tmp_path / "broken", 1e-3, 0.5)
    (run / "summary.json").write_text("{not json")
    assert main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert f"warning: cannot read {run / 'summary.json'}" in err
    assert "unreadable" in out.splitlines()[2]


def test_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert capsys.readouterr().err == f"not a run folder and holds none: {tmp_path / 'empty'}\n"


def test_one_empty_path_among_good_ones_is_not_an_error(tree, tmp_path, capsys):
    assert main([str(tree / "single"), str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err == f"not a run folder and holds none: {tmp_path}\n"
    assert out.splitlines()[-1].startswith("2 runs (1 completed, 1 collapsed), best: ")


def test_cli(tree):
    """The table fits the terminal's COLUMNS: it keeps the run, its status, score and SWD and the
    key that differs, and says which columns it left out."""
    result = subprocess.run(
        [sys.executable, "-m", "gan.compare", str(tree / "sweeps"), "--sort", "name"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "score", "swd", "gen_lr", "collapsed_at"]
    assert [line.split()[0].rsplit("/", 1)[-1] for line in lines[2:6]] == [
        f"trial_{n:04d}" for n in range(4)
    ]
    assert all(len(line) <= 80 for line in lines[:-1])
    assert " ".join(lines[6:-1]) == (
        "left out to fit 80 columns: reason, diversity, steps, wall_s, images/s, trial "
        "(--csv and --html have every column)"
    )
    assert lines[-1].endswith("trial_0003 score 0.9500")


@pytest.mark.slow
def test_a_reader_that_stops_early_loses_no_file(tree, tmp_path):
    """`gan.compare | head`: the reader is gone before the table is printed (`true` reads
    nothing); no BrokenPipeError traceback, exit status 0, and the HTML is still written."""
    html = tmp_path / "report.html"
    command = f"{sys.executable} -m gan.compare {tree / 'sweeps'} --html {html} | true"
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert html.stat().st_size > 0


def test_ties_in_score_are_broken_by_the_lower_swd(tmp_path):
    from gan.report.runs import Run

    def run(name: str, score: float | None, swd: float | None) -> Run:
        quality = None if swd is None else {"swd": swd, "swd_moments": True, "diversity": 0.5}
        return Run(tmp_path / name, {"score": score, "quality": quality}, {})

    runs = [
        run("a_blurred", 1.0, 40.0),
        run("b_close", 1.0, 6.5),
        run("c_none", 1.0, None),
        run("d_collapsed", 0.2, 5.0),
        run("e_running", None, None),
    ]
    order = [r.path.name for r in sort_runs(runs)]
    assert order == ["b_close", "a_blurred", "c_none", "d_collapsed", "e_running"]


def test_the_chart_shades_each_runs_own_eps_band(tmp_path, monkeypatch):
    """One panel per run, shaded with the run's own score.eps bands (its .hydra/config.yaml),
    not a default: eps 0.03 and 0.1 give their bands; a run without a config none."""
    import matplotlib.colors

    make_run(tmp_path / "a", 1e-3, 0.5)
    make_run(tmp_path / "b", 2e-3, 0.5, extra={"score.eps": 0.1})
    make_run(tmp_path / "c", 3e-3, 0.5)
    (tmp_path / "c" / ".hydra" / "config.yaml").unlink()
    runs = sort_runs(find_runs([tmp_path]), "name")
    assert [r.eps for r in runs] == [0.03, 0.1, None]
    figures = []

    def keep(fig) -> bytes:
        figures.append(fig)
        return b"png"

    monkeypatch.setattr(gan.report.figures, "figure_png", keep)
    assert gan.report.figures.plot_d_means(runs) == b"png"
    panels = [ax for ax in figures[0].axes if ax.has_data()]
    assert len(panels) == 3  # one per run, in the order given

    def spans(ax) -> list[tuple[float, float]]:
        return sorted(
            (round(p.get_y(), 3), round(p.get_y() + p.get_height(), 3)) for p in ax.patches
        )

    assert spans(panels[0]) == [(0.0, 0.03), (0.97, 1.0)]
    assert spans(panels[1]) == [(0.0, 0.1), (0.9, 1.0)]
    assert spans(panels[2]) == []
    # the best run (a: equal scores and SWDs, then by name) framed green, the worst (c) red
    frames = [ax.spines["left"].get_edgecolor() for ax in panels]
    hexes = [matplotlib.colors.to_hex(c) for c in frames]
    assert hexes[0] == "#15803d" and hexes[2] == "#b91c1c"
    assert hexes[1] not in ("#15803d", "#b91c1c")
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert "unhealthy (score.eps)" in labels and "best run" in labels
    gan.report.figures.pyplot().close("all")
