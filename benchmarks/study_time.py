"""How long a study takes to give its answer: the same reduced stability study run without a
pruner (sweeps/stability_unpruned.yaml) and with one (the default, sweeps/optuna.yaml), one after
the other on this machine, then compared by benchmarks/pruning.py (trials by status, training
steps, trial seconds, best run and its SWD).

    uv run python benchmarks/study_time.py --trials 20 --steps 1000

Each study runs `python run.py -m sweep=NAME` with the trial count and steps given, into
OUT/unpruned and OUT/pruned; a study already there is continued up to its trials (Optuna's
n_trials counts the study's trials), so a finished one is read, not run again. Run it alone:
a second busy process on the same cores slows both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import pruning  # noqa: E402

STUDIES = {"unpruned": "stability_unpruned", "pruned": "stability"}


def run_study(sweep: str, folder: Path, trials: int, steps: int, extra: list[str]) -> float:
    """Run (or continue) one study; its wall time in seconds."""
    command = [
        sys.executable, "run.py", "-m", f"sweep={sweep}", f"hydra.sweep.dir={folder}",
        f"hydra.sweeper.n_trials={trials}", f"train.steps={steps}", *extra,
    ]  # fmt: skip
    print("$", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "study_time")
    parser.add_argument("--only", choices=sorted(STUDIES), help="run one of the two studies")
    parser.add_argument("overrides", nargs="*", help="more KEY=VALUE for both studies")
    args = parser.parse_args(argv)

    for label, sweep in STUDIES.items():
        if args.only in (None, label):
            wall = run_study(sweep, args.out / label, args.trials, args.steps, args.overrides)
            print(f"{label}: study wall time {wall:,.0f} s", flush=True)
    if args.only:
        return 0
    return pruning.main([str(args.out / "unpruned"), str(args.out / "pruned")])


if __name__ == "__main__":
    sys.exit(main())
