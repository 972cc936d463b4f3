"""When do parallel trials pay off? Runs the same small study one trial at a time and two at a
time (hydra/launcher=joblib, hydra.sweeper.n_jobs=2, cores split between the trials), for the
`tiny` and the `small` model, and prints the wall time of each sweep and their ratio.

    uv run python benchmarks/parallel_trials.py [--trials 4] [--steps 300]

Each sweep goes to a fresh temporary folder; the data cache is shared (built before timing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(model: str, trials: int, steps: int, parallel: bool, cache: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "sweep=quick",
            f"model={model}",
            f"hydra.sweeper.n_trials={trials}",
            f"train.steps={steps}",
            "score.stop_on_collapse=false",  # every trial trains its whole budget
            f"hydra.sweep.dir={tmp}/sweep",
            f"data.cache_dir={cache}",
        ]
        if parallel:
            args += ["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"]
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        sweep("tiny", 1, 1, False, cache)  # build the data cache outside the timings
        print(f"{args.trials} trials of {args.steps} steps each (batch 64, 32 px)")
        print(f"{'model':<8}{'one at a time':>16}{'two at a time':>16}{'speed-up':>10}")
        for model in ("tiny", "small"):
            serial = sweep(model, args.trials, args.steps, False, cache)
            parallel = sweep(model, args.trials, args.steps, True, cache)
            print(f"{model:<8}{serial:>15.1f}s{parallel:>15.1f}s{serial / parallel:>9.2f}x")


if __name__ == "__main__":
    main()
