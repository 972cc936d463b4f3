"""Compare run folders: a table in the terminal, optionally a CSV and one self-contained HTML
report (sample grids, D means over steps, score against each swept parameter, Optuna parameter
importances, and a warning when the best runs sit on the edge of the search space).

Each PATH is a run folder, a sweep folder or any folder above them (default: outputs/),
searched recursively. The table has one row per run, best first (the highest score; among
equal scores the lowest SWD, the sliced Wasserstein distance of its samples to the data): its
status, score and SWD, the config keys that differ between the runs (a config group chosen as a
whole, such as augment, as its option), then collapsed_at, reason, diversity, steps, wall time
and images/s, as many as fit the terminal's width (COLUMNS; 100 when printing to a file or a
pipe); --csv and --html have every column. Killed and half-written runs are listed with their
status. Exit status 1 when no PATH holds a run.

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
import os
import sys
from pathlib import Path

from gan.report.html import write_html
from gan.report.runs import Run, differing_keys, find_answer, find_runs, partial_keys, sort_runs
from gan.report.studies import load_studies
from gan.report.table import format_table, terminal_width, write_csv
from gan.report.values import num
from gan.run.command import export


def arguments() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = arguments().parse_args(argv)
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
    emit(format_table(runs, keys, answer, terminal_width()))
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
