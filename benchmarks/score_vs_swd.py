"""Does the stability score predict sample quality? A finished study's trials, score against SWD.

Reads every run folder under SWEEP_DIR (gan.compare's reader) and prints:
- Spearman's rank correlation between the score and the SWD over the trials that have both
  (the score is higher-is-better and SWD lower-is-better, so agreement is a negative number);
- the same among the runs the D means never stopped, and the SWD spread among the runs at 1.0;
- the best run by SWD and the best by sample diversity among the runs at 1.0 (the old
  tie-break), and the worst by SWD, with --grids PATH writing their final grids side by side.

    uv run python benchmarks/score_vs_swd.py outputs/sweeps/stability \
        --grids docs/stability_best_grids.png --plot docs/stability_score_swd.png
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.report.runs import Run, find_runs  # noqa: E402


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    """Pearson's correlation of the ranks (ties averaged)."""
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (sx * sy) if sx and sy else float("nan")


def side_by_side(runs: list[Run], path: Path) -> None:
    grids = [Image.open(r.path / "samples" / "final.png").convert("RGB") for r in runs]
    gap = 8
    width = sum(g.width for g in grids) + gap * (len(grids) - 1)
    canvas = Image.new("RGB", (width, max(g.height for g in grids)), "white")
    left = 0
    for g in grids:
        canvas.paste(g, (left, 0))
        left += g.width + gap
    canvas.save(path)


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for status, colour in (("completed", "tab:green"), ("collapsed", "tab:red")):
        group = [r for r in runs if r.status == status]
        ax.scatter([r.score for r in group], [r.swd for r in group], s=18, c=colour, label=status)
    ax.set_yscale("log")
    ax.set_xlabel("stability score")
    ax.set_ylabel("SWD x1e3 (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--grids", type=Path, help="PNG of the two best runs' final grids")
    parser.add_argument("--plot", type=Path, help="PNG of SWD against the score, one dot a run")
    args = parser.parse_args()

    runs = [r for r in find_runs([args.sweep_dir]) if r.finished]
    both = [r for r in runs if r.score is not None and r.swd is not None]
    print(f"{len(runs)} finished runs, {len(both)} with a score and an SWD")
    rho = spearman([r.score for r in both], [r.swd for r in both])  # type: ignore[misc]
    print(f"Spearman rank correlation, score vs SWD, all runs: {rho:+.3f}")
    at_one = [r for r in both if r.score == 1.0]
    collapsed = [r for r in both if r.status == "collapsed"]
    for name, group in (("score 1.0", at_one), ("collapsed", collapsed)):
        swds = sorted(r.swd for r in group)  # type: ignore[type-var]
        if swds:
            print(
                f"SWD of the {len(swds)} runs at {name}: min {swds[0]:.2f}, "
                f"median {statistics.median(swds):.2f}, max {swds[-1]:.2f}"
            )
    if args.plot:
        plot(both, args.plot)
        print(f"plot: {args.plot}")
    if not at_one:
        return
    by_swd = min(at_one, key=lambda r: r.swd)  # type: ignore[arg-type, return-value]
    by_div = max(at_one, key=lambda r: r.diversity or 0.0)
    worst = max(at_one, key=lambda r: r.swd)  # type: ignore[arg-type, return-value]
    for label, r in (("best by SWD", by_swd), ("best by diversity", by_div), ("worst", worst)):
        print(f"{label}: {r.name} SWD {r.swd:.2f} diversity {r.diversity}")
    rank_of_div = sorted(at_one, key=lambda r: r.swd).index(by_div) + 1  # type: ignore[arg-type, return-value]
    print(f"the best by diversity ranks {rank_of_div} of {len(at_one)} by SWD")
    if args.grids:
        side_by_side([by_swd, by_div, worst], args.grids)
        print(f"grids: {args.grids} (best by SWD, best by diversity, worst by SWD at 1.0)")


if __name__ == "__main__":
    main()
