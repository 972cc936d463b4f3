"""A population's answer checked on new seeds: its best member's schedule replayed from scratch.

Reads a population's sweep folder (`-m sweep=pbt`): optimization_results.yaml's `pbt` (the best
member of the last generation, its SWD and the command that replays its schedule as one run)
and lineage.csv. Prints the population (segments, steps trained, exploits, collapses) and the
best member's schedule; then runs the replay command once per `--seeds` value with `seed=N`
(in --out/seed_N) and prints each run's status, score and SWD against the member's. A replay
with the study's own seed reproduces the member's G bit for bit; other seeds tell whether the
schedule, not only the weights it happened to train, is good. With --plot PATH, the members'
values and SWD by step (gan.report.studyplots.schedule_plot, as in the HTML report).

    uv run python benchmarks/pbt_replay.py outputs/sweeps/pbt --seeds 1 2 3 \
        --out outputs/pbt_replay --plot docs/pbt_schedules.png
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def population(sweep: Path) -> dict:
    """optimization_results.yaml's `pbt` answer, and what lineage.csv says of the population."""
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text()) or {}
    answer = results.get("pbt")
    if not answer:
        raise SystemExit(f"{sweep}: optimization_results.yaml has no population's answer (pbt:)")
    with open(sweep / "lineage.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = sum(int(r["to_step"]) - int(r["from_step"]) for r in rows)
    exploits = sum(r["exploited"] == "True" for r in rows)
    collapses = sum(bool(r["collapsed_at"]) for r in rows)
    generations = len({r["generation"] for r in rows})
    print(
        f"{sweep}: {len(rows)} segments over {generations} generations, {steps:,} steps planned "
        f"({exploits} exploits, {collapses} segments collapsed)"
    )
    print(
        f"best member {answer['member']} (trial {answer['trial']}, {answer['run_dir']}): "
        f"SWD {answer['swd']}"
    )
    for entry in answer["ancestry"]:
        values = {k: v for k, v in entry.items() if k not in ("generation", "member", "exploited")}
        took = " (took its weights)" if entry["exploited"] else ""
        print(f"  generation {entry['generation']}: member {entry['member']}{took} {values}")
    return answer


def replay(command: str, seed: int, out: Path) -> dict:
    """The replay command with seed=`seed` in `out`; its summary.json."""
    args = shlex.split(command)[2:]  # python run.py / pumpgan
    if (out / "summary.json").is_file():
        print(f"seed {seed}: {out} has run already; reading it")
    else:
        subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *args, f"seed={seed}", f"hydra.run.dir={out}"],
            cwd=ROOT,
            check=False,
        )
    return json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the population's sweep folder")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3], help="replay seeds")
    parser.add_argument("--out", type=Path, default=Path("outputs/pbt_replay"))
    parser.add_argument("--plot", type=Path, help="write the members' values by step here")
    args = parser.parse_args(argv)

    answer = population(args.sweep_dir)
    if args.plot:
        import optuna

        from gan.report.studyplots import schedule_plot

        storage = f"sqlite:///{(args.sweep_dir / 'optuna.db').resolve()}"
        (name,) = optuna.get_all_study_names(storage)
        png = schedule_plot(optuna.load_study(study_name=name, storage=storage))
        if png:
            args.plot.write_bytes(png)
            print(f"wrote {args.plot}")
    if not answer.get("replay_command"):
        print(f"no replay: {answer.get('replay_error')}")
        return 1
    swds = []
    for seed in args.seeds:
        s = replay(answer["replay_command"], seed, args.out / f"seed_{seed}")
        swd = (s.get("quality") or {}).get("swd")
        print(f"seed {seed}: {s.get('status')}, score {s.get('score')}, SWD {swd}")
        if isinstance(swd, int | float):
            swds.append(swd)
    if swds:
        spread = f" +- {statistics.stdev(swds):.2f}" if len(swds) > 1 else ""
        print(
            f"replayed schedule over seeds {args.seeds}: SWD {statistics.mean(swds):.2f}{spread} "
            f"(min {min(swds):.2f}), against the member's {answer['swd']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
