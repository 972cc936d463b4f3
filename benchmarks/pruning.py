"""What pruning on the SWD saves, and what it costs: two finished studies side by side.

Reads the run folders of a study run without a pruner and of the same study with one (e.g.
sweeps/stability_unpruned.yaml and the default, sweeps/optuna.yaml) and prints, for each: its
trials by status, the training steps and trial seconds they took, and its best run as gan.compare
ranks finished runs (the score, then the SWD); then the steps saved and how far the pruned study's
best SWD is from the unpruned one's. With --grids PATH, the two best runs' final grids side by
side.

    uv run python benchmarks/pruning.py outputs/sweeps/stability_unpruned outputs/sweeps/stability \
        --grids docs/stability_pruned_grids.png
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.score_vs_swd import side_by_side  # noqa: E402
from gan.report.runs import Run, find_runs, sort_runs  # noqa: E402


def study(path: Path) -> tuple[list[Run], Run | None]:
    """The trials of a sweep folder (its numbered run folders) and the best finished one."""
    runs = [r for r in find_runs([path]) if r.path.name.isdigit()]
    finished = sort_runs([r for r in runs if r.finished])
    return runs, finished[0] if finished else None


def total(runs: list[Run], key: str) -> float:
    return sum(float(r.summary.get(key) or 0) for r in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("unpruned", type=Path, help="sweep folder of the study without a pruner")
    parser.add_argument("pruned", type=Path, help="sweep folder of the same study with one")
    parser.add_argument("--grids", type=Path, help="write the two best final grids here")
    args = parser.parse_args(argv)

    found = {}
    for label, path in (("unpruned", args.unpruned), ("pruned", args.pruned)):
        runs, best = study(path)
        if not runs or best is None:
            print(f"{path}: no finished trial", file=sys.stderr)
            return 1
        found[label] = (runs, best)
        counts = Counter(r.status for r in runs)
        states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"{label}: {path}, {len(runs)} trials ({states})")
        pruned = Counter(r.summary.get("pruned_at") for r in runs if r.status == "pruned")
        if pruned:
            at = ", ".join(f"{n} at step {step}" for step, n in sorted(pruned.items()))
            print(f"  pruned: {at}")
        steps, wall = total(runs, "steps_done"), total(runs, "wall_s")
        print(f"  training steps: {steps:,.0f}; trial time: {wall:,.0f} s")
        at_one = sorted(r.swd for r in runs if r.finished and r.score == 1.0 and r.swd is not None)
        if at_one:
            print(f"  runs at 1.0 that ended: {len(at_one)}, SWD {at_one[0]:.2f}-{at_one[-1]:.2f}")
        print(f"  best: {best.name}, score {best.score:.4f}, SWD {best.swd:.2f}")
        print(f"    {' '.join(best.overrides)}")

    (unpruned, best_u), (pruned, best_p) = found["unpruned"], found["pruned"]
    steps_u, steps_p = total(unpruned, "steps_done"), total(pruned, "steps_done")
    wall_u, wall_p = total(unpruned, "wall_s"), total(pruned, "wall_s")
    print(f"steps saved by pruning: {1 - steps_p / steps_u:.1%} ({steps_p:,.0f} of {steps_u:,.0f})")
    print(f"trial time saved: {1 - wall_p / wall_u:.1%} ({wall_p:,.0f} s of {wall_u:,.0f} s)")
    assert best_u.swd is not None and best_p.swd is not None
    change = best_p.swd / best_u.swd - 1
    print(f"best SWD, pruned against unpruned: {best_p.swd:.2f} / {best_u.swd:.2f} ({change:+.1%})")
    if args.grids:
        side_by_side([best_u, best_p], args.grids)
        print(f"wrote {args.grids} (left: unpruned best, right: pruned best)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
