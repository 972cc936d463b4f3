"""The runs as a table: its header and cells (shared by the terminal and the HTML page), the
terminal table with its summary line (the runs counted by status, and the answer), and the CSV
with every column."""

from __future__ import annotations

import csv
import shutil
import textwrap
from collections import Counter
from pathlib import Path

from gan.config import flatten
from gan.report.runs import STATUSES, Run, best_finished
from gan.report.values import clip, fmt, is_number, num

# the terminal table's width when stdout is not a terminal (a pipe, a file): the run, its
# status, score and SWD and a few keys; COLUMNS=N sets another
FALLBACK_WIDTH = 100
# the terminal table's columns that stay whatever the width: the run and what ranks it
KEPT = ("run", "status", "score", "swd")
# the run folder's characters in the terminal table (its end kept); fitted to a width, at most
# this share of it (room for the keys), and no fewer than RUN_MIN however narrow
RUN_WIDTH, RUN_SHARE, RUN_MIN = 48, 0.4, 16

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


def terminal_width() -> int:
    """The terminal's width in characters: COLUMNS when set, else the terminal's own, else
    (stdout a pipe or a file) FALLBACK_WIDTH."""
    return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns


def format_table(
    runs: list[Run], keys: list[str], answer: str | None = None, width: int | None = None
) -> str:
    """The terminal table: header, rule, a row per run, its notes and the summary line.
    `width` (terminal_width()): the characters a line of the table may take. The columns are
    kept in their order of importance while they fit (what ranks the runs, which always stays,
    then the keys that differ, then the rest), keys go by their shortest unambiguous name, and
    a note names the columns left out. None: every column, keys by their full name."""
    headers, rows = table_rows(runs, keys)
    limits = {"run": RUN_WIDTH, "reason": 28}
    columns = [
        [h, *(clip(row[i], limits.get(h, 20), keep_end=h == "run") for row in rows)]
        for i, h in enumerate(headers)
    ]
    notes = [n for n in [swd_note(runs)] if n]
    if width is not None:
        names = short_names(keys, taken=[h for h in headers if h not in keys])
        columns = [[names.get(c[0], c[0]), *c[1:]] for c in columns]
        columns, left_out = fit_columns(columns, width)
        if left_out:
            what = f"left out to fit {width} columns: {', '.join(left_out)}"
            notes.insert(0, f"{what} (--csv and --html have every column)")
        notes = [textwrap.fill(n, width) for n in notes]
    widths = [max(map(len, c)) for c in columns]
    lines = [
        "  ".join(c[i].ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
        for i in range(len(rows) + 1)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, *notes, summary_line(runs, answer)])


def short_names(keys: list[str], taken: list[str]) -> dict[str, str]:
    """Each key by its shortest dotted tail that no other key ends in and no other column is
    called: optim.gen_lr -> gen_lr, but train.steps stays whole beside the steps column."""

    def clear(tail: str, key: str) -> bool:
        others = [o for o in keys if o != key]
        return tail not in taken and not any(o == tail or o.endswith(f".{tail}") for o in others)

    names = {}
    for key in keys:
        parts = key.split(".")
        tails = [".".join(parts[-n:]) for n in range(1, len(parts))]
        names[key] = next((t for t in tails if clear(t, key)), key)
    return names


def fit_columns(columns: list[list[str]], width: int) -> tuple[list[list[str]], list[str]]:
    """The columns (each its header and cells) that fit in `width` characters, two apart: the
    first KEPT ones always, the run folder's clipped to RUN_SHARE of the width (or less, down to
    RUN_MIN, for them to fit), then each of the others, in order, that still fits; and the
    headers of those left out."""
    kept = len(KEPT)
    others = sum(max(map(len, c)) + 2 for c in columns[1:kept])
    room = max(RUN_MIN, min(int(RUN_SHARE * width), width - others))
    columns[0] = [columns[0][0], *(clip(c, room, keep_end=True) for c in columns[0][1:])]
    used = max(map(len, columns[0])) + others
    fitted, left_out = columns[:kept], []
    for column in columns[kept:]:
        need = max(map(len, column)) + 2
        if used + need <= width:
            fitted.append(column)
            used += need
        else:
            left_out.append(column[0])
    return fitted, left_out


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
