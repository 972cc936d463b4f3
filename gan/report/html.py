"""The HTML report: one self-contained page rendered from templates/report.html.j2 (with
report.css and report.js inlined). Python prepares plain values (table cells, captions, figures
as data: URIs of PNG bytes) and the template lays them out; everything is escaped as the
template writes it, so a run folder's name or values cannot add markup."""

from __future__ import annotations

import base64
import functools
import html
import shlex
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from gan.report import studyplots
from gan.report.figures import plot_d_means, plot_scores
from gan.report.runs import STATUSES, Run, sample_image
from gan.report.studies import Study, edge_warnings, is_confirm, study_db
from gan.report.table import summary_line, swd_cell, swd_note, table_rows
from gan.report.values import fmt, num
from gan.run.command import read_yaml

CONFIRM_HEADERS = [
    "rank", "trial", "seeds", "collapsed", "score mean ± sd", "SWD mean ± sd", "SWD range",
    "study's score", "study's SWD", "parameters",
]  # fmt: skip
# confirm.csv's columns that are not the setting's parameters
CONFIRM_FIXED = set(CONFIRM_HEADERS) | {
    "study_score", "study_swd", "seeds_done", "collapsed_fraction", "score_mean", "score_sd",
    "swd_mean", "swd_sd", "swd_min", "swd_max", "confirmed_best", "run_dir", "command",
}  # fmt: skip


def escape(value: Any) -> Markup:
    """Every value the template writes, as html.escape writes it: the page has always used its
    entities (&#x27; where markupsafe writes &#39;), and tests and readers look for them."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gan.report", "templates"),
        autoescape=True,
        finalize=escape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def write_html(
    path: Path,
    runs: list[Run],
    keys: list[str],
    studies: dict[tuple[str, str], Study],
    notes: list[str],
    answer: str | None = None,
) -> None:
    """One self-contained page. answer: find_answer's, said once at the top of the page."""
    charts = [
        ("Discriminator means", plot_d_means(runs)),
        ("Score against each parameter that differs", plot_scores(runs, keys)),
    ]
    template = environment().get_template("report.html.j2")
    page = template.render(
        runs=len(runs),
        summary=summary_line(runs, answer),
        generated=datetime.now().astimezone().isoformat(timespec="seconds"),
        warnings=edge_warnings(runs, keys, studies),
        notes=notes,
        table=runs_table(runs, keys),
        swd_note=swd_note(runs),
        cards=[sample_card(r) for r in runs],
        charts=[{"title": t, "image": data_uri(png) if png else None} for t, png in charts],
        studies=[study_section(study, runs) for study in studies.values()],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def runs_table(runs: list[Run], keys: list[str]) -> dict[str, Any]:
    """The terminal table's header and cells, each cell with its class (a status's colour)."""
    headers, rows = table_rows(runs, keys)

    def cell(header: str, text: str) -> tuple[str, str]:
        return (text if header == "status" and text in STATUSES else "", text)

    cells = [[cell(h, c) for h, c in zip(headers, row, strict=True)] for row in rows]
    return {"headers": headers, "rows": cells}


def sample_card(run: Run) -> dict[str, Any]:
    """A run's card: its latest sample grid and the command that reproduces it."""
    image, what = sample_image(run)
    try:
        uri = data_uri(image.read_bytes()) if image else None
    except OSError:
        uri, what = None, f"cannot read {image}"
    return {
        "image": uri,
        "alt": f"{run.name}: {what}",
        "what": what,
        "name": run.name,
        "status": run.status,
        "score": num(run.score, ".4f"),
        "swd": swd_cell(run),
        # shell-quoted: safe to paste into a shell
        "command": run.command or shlex.join(["python", "run.py", *run.overrides]),
    }


def study_section(study: Study, runs: list[Run]) -> dict[str, Any]:
    """One Optuna study: its trial counts, its Pareto front (two objectives) or its confirmed
    settings (a confirm study), and Optuna's own plots (studyplots.py)."""
    trials = study.study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    pareto = pareto_front(study, runs) if study.study._is_multi_objective() else None
    confirm = confirm_table(study) if study.confirm else None
    population = population_section(study)
    plots, skipped = studyplots.optuna_plots(study.study, is_confirm(study.study))
    return {
        "name": study.name,
        "db": str(study.db),
        "trials": len(trials),
        "counted": ", ".join(f"{n} {state}" for state, n in sorted(states.items())),
        "pareto": pareto,
        "confirm": confirm,
        "population": population,
        "plots": [
            {"title": title, "image": data_uri(png), "wide": title == "Slice"}
            for title, png in plots
        ],
        "skipped": skipped,
    }


def pareto_front(study: Study, runs: list[Run]) -> dict[str, Any]:
    """A two-objective study's front: score against SWD, each trial with its run folder."""
    from gan.study.ranking import pareto_front as front  # imports Optuna: a study's only

    names = {
        int(r.study["trial"]): r.name
        for r in runs
        if r.study and r.study.get("study") == study.name and study_db(r) == study.db
    }
    rows = [
        [str(t.number), names.get(t.number, "-"), f"{t.values[0]:.4f}", f"{t.values[1]:.2f}"]
        + [", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())]
        for t in front(study.study)
    ]
    png = studyplots.pareto_plot(study.study, names)
    return {"image": data_uri(png) if png else None, "rows": rows}


def population_section(study: Study) -> dict[str, Any] | None:
    """A population (gan/study/population.py): its schedules by step, and its answer from
    optimization_results.yaml: the best member, the weights its last segment holds, and the
    run that replays its schedule from scratch. None for other studies."""
    from gan.study.results import RESULTS_YAML  # imports Optuna: a study's only

    png = studyplots.schedule_plot(study.study)
    if png is None:
        return None
    results = read_yaml(study.db.parent / RESULTS_YAML)
    answer = results.get("pbt") if isinstance(results, dict) else None
    rows = []
    if isinstance(answer, dict):
        for entry in answer.get("ancestry") or []:
            values = {
                k: v for k, v in entry.items() if k not in ("generation", "member", "exploited")
            }
            rows.append(
                [
                    str(entry.get("generation")),
                    f"{entry.get('member')}"
                    + (" (took the weights)" if entry.get("exploited") else ""),
                    ", ".join(f"{k}={fmt(v)}" for k, v in values.items()),
                ]
            )
    return {"image": data_uri(png), "answer": answer, "rows": rows}


def confirm_table(study: Study) -> dict[str, Any]:
    """A confirm study's settings: the mean and spread of score and SWD over the seeds, beside
    the study's single-seed values; the confirmed best highlighted."""
    rows = study.confirm
    best = next((r for r in rows if r.get("confirmed_best") is True), None)
    cells = [(r is best, confirm_cells(r)) for r in rows]
    png = studyplots.confirm_plot(study.study, rows)
    return {
        # the page names the confirmed best once, at its top; here it is only highlighted
        "has_best": best is not None,
        "headers": CONFIRM_HEADERS,
        "rows": cells,
        "image": data_uri(png) if png else None,
    }


def confirm_cells(row: dict[str, Any]) -> list[str]:
    """One setting of confirm.csv as the page's cells (CONFIRM_HEADERS)."""
    params = ", ".join(f"{k}={fmt(v)}" for k, v in row.items() if k not in CONFIRM_FIXED)
    return [
        f"#{row['rank']}",
        str(row["trial"]),
        str(row["seeds_done"]),
        num(row["collapsed_fraction"], ".0%"),
        f"{num(row['score_mean'], '.4f')} ± {num(row['score_sd'], '.4f')}",
        f"{num(row['swd_mean'], '.2f')} ± {num(row['swd_sd'], '.2f')}",
        f"{num(row['swd_min'], '.2f')}-{num(row['swd_max'], '.2f')}",
        num(row["study_score"], ".4f"),
        num(row["study_swd"], ".2f"),
        params,
    ]
