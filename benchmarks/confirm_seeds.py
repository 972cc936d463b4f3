"""A confirm sweep's result (sweeps/confirm.yaml): each setting's seeds against the study's one.

Reads the confirm sweep's confirm.csv and study and prints, per setting in the study's order,
its values in the study (one seed) and over the confirm seeds (mean, spread, every seed's SWD,
collapses); then the confirmed best against the study's single-seed best. With --plot PATH, the
SWD of every seed of every setting (gan.report.studyplots.confirm_plot, as in the HTML report).

    uv run python benchmarks/confirm_seeds.py outputs/sweeps/stability_confirm \
        --plot docs/stability_confirm.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from gan.report import studyplots  # noqa: E402
from gan.study import confirm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the confirm sweep's folder")
    parser.add_argument("--plot", type=Path, help="write the SWD of every seed here")
    args = parser.parse_args(argv)

    rows = confirm.read_csv(args.sweep_dir / confirm.CSV_NAME)
    storage = f"sqlite:///{(args.sweep_dir / 'optuna.db').resolve()}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    seeds: dict[int, list[str]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        swd = t.user_attrs.get("swd")
        mark = "" if t.values[0] == 1.0 else f" (score {t.values[0]:.3f})"
        seeds.setdefault(t.user_attrs[confirm.CONFIRMS], []).append(
            f"seed {t.params['seed']}: {swd:.1f}{mark}" if swd is not None else "-"
        )
    for r in rows:
        best = "  <- confirmed best" if r["confirmed_best"] is True else ""
        print(
            f"#{r['rank']} trial {r['trial']}: study score {r['study_score']:.3f}, SWD "
            f"{r['study_swd']:.2f} | {r['seeds_done']} seeds, "
            f"collapsed {r['collapsed_fraction']:.0%}, "
            f"score {r['score_mean']:.3f} ± {r['score_sd']:.3f}, SWD {r['swd_mean']:.2f} ± "
            f"{r['swd_sd']:.2f} ({r['swd_min']:.1f}-{r['swd_max']:.1f}){best}"
        )
        print(f"    {'; '.join(seeds.get(r['trial'], []))}")
    if args.plot:
        png = studyplots.confirm_plot(study, rows)
        if png:
            args.plot.write_bytes(png)
            print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
