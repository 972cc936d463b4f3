"""The runs as a table: its header and cells (shared by the terminal and the HTML page), the
terminal table with its summary line (the runs counted by status, and the answer), and the CSV
with every column."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from gan.config import flatten
from gan.report.runs import STATUSES, Run, best_finished
from gan.report.values import clip, fmt, is_number, num

# after an SWD without the moment gap term (an older pumpgan's, or eval.swd_moments=false)
PAPER_MARK = "°"
PAPER_NOTE = (
    f"{PAPER_MARK} the paper's SWD, without the gap in mean and spread (pumpgan before "
    "eval.swd_moments, or eval.swd_moments=false): blind to contrast and colour, and not "
    "comparable with the other SWDs"
)


def swd_cell(run: Run) -> str:
    """The run's SWD, marked when it lacks the moment gap term."""
    return num(run.swd, ".2f") + (PAPER_MARK if run.swd_moments is False else "")


def swd_note(runs: list[Run]) -> str | None:
    """PAPER_NOTE when a run's SWD carries PAPER_MARK."""
    return PAPER_NOTE if any(r.swd_moments is False for r in runs) else None


CSV_TAIL = (
    "status", "score", "collapsed_at", "reason", "steps_done", "steps", "wall_s", "images_per_s",
    "quality.swd", "quality.swd_moments", "quality.diversity", "quality.colour_gap", "optuna.study",
    "optuna.trial", "run_dir", "note",
)  # fmt: skip


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
        cells = [r.name, r.status, num(r.score, ".4f"), swd_cell(r)]
        cells += [fmt(r.config[k]) if k in r.config else "-" for k in keys]
        cells += [num(s.get("collapsed_at"), ".0f")]
        cells += [str(s.get("reason") or "-"), num(r.diversity, ".2f")]
        cells += [steps if steps != "-/-" else "-"]
        cells += [num(s.get("wall_s"), ".1f"), num(s.get("images_per_s"), ".0f")]
        cells += [{"trial": r.trial, "note": r.note}[c] for c in extra]
        rows.append(cells)
    return headers, rows


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
    note = swd_note(runs)
    return "\n".join([*lines, *([note] if note else []), summary_line(runs, answer)])


def summary_line(runs: list[Run], answer: str | None = None) -> str:
    """The runs counted by status, and the answer: `find_answer`'s, else the best finished."""
    counts = Counter(r.status for r in runs)
    order = [*STATUSES, *sorted(set(counts) - set(STATUSES))]
    parts = ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
    if answer is None:
        best = best_finished(runs)
        answer = f"best: {best.name} score {best.score:.4f}" if best else "best: none finished yet"
    return f"{len(runs)} run{'s' * (len(runs) != 1)} ({parts}), {answer}"


def write_csv(path: Path, runs: list[Run], keys: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *keys, *CSV_TAIL, "command"])
        for r in runs:
            summary = {**r.summary, "optuna": r.study or {}, "status": r.status, "note": r.note}
            flat = {**flatten(summary), "quality.swd_moments": r.swd_moments}
            cells = [r.config.get(k) for k in keys] + [flat.get(k) for k in CSV_TAIL]
            # numbers at full precision, None as an empty cell
            cells = [c if is_number(c) or c is None else fmt(c) for c in cells]
            writer.writerow([r.name, *cells, r.command])
