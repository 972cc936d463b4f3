"""Quality-aware studies end to end, each a real Optuna study on SQLite at a tiny size: pruning
on the SWD (basic, joblib and submitit launchers), two objectives (sweeps/pareto.yaml), and
rerunning a study's best settings over new seeds (sweeps/confirm.yaml)."""

import csv
import json
import math
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from gan.report.compare import main as compare
from gan.study import confirm

from .conftest import TINY, assert_commands_reproduce, run_cli

pytestmark = pytest.mark.slow

# the stability study's search space at a tiny size (sweeps/optuna.yaml: the small DCGAN)
SMALL = [
    "hardware=cpu",
    "data.num_images=64",
    "train.log_every=5",
    "train.sample_every=10",
    "train.checkpoint_every=10",
    "model.gen_features=8",
    "eval.num_images=64",
]


def load(sweep: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}")


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def eval_swd(run_dir: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["swd"]) for r in rows(run_dir / "eval.csv")}


def check_pruned(study: optuna.Study, sweep: Path) -> list[optuna.trial.FrozenTrial]:
    """Every PRUNED trial: its folder says `pruned` at the step of its last report, its
    intermediate values are -SWD of eval.csv, and it has a final grid; returns them."""
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    for t in pruned:
        run = sweep / str(t.number)
        s = summary(run)
        assert s["status"] == "pruned"
        assert s["pruned_at"] == s["steps_done"] == max(t.intermediate_values)
        assert s["quality"]["swd"] == pytest.approx(-t.intermediate_values[s["pruned_at"]])
        swd = eval_swd(run)
        assert {k: -v for k, v in swd.items()} == pytest.approx(t.intermediate_values)
        assert (run / "samples" / "final.png").is_file()
        assert (run / "checkpoints" / "generator.pt").is_file()
    by_number = {int(r["number"]): r for r in rows(sweep / "trials.csv")}
    for t in pruned:
        row = by_number[t.number]
        assert (row["state"], row["status"], row["score"]) == ("PRUNED", "pruned", "")
    return pruned


def pruned_quick_study(sweep: Path, cache_dir: Path, *extra: str):
    """sweeps/quick.yaml at the tests' size, with the SWD every 10 steps: `extra` adds the
    pruner, the budget and the launcher."""
    return run_cli(
        "-m",
        "sweep=quick",
        *TINY,
        f"data.cache_dir={cache_dir}",
        f"hydra.sweep.dir={sweep}",
        "eval.every=10",
        "eval.num_images=64",
        *extra,
    )


def test_a_pruned_study_stops_runs_on_their_swd(tmp_path, cache_dir):
    """Successive halving on the SWD every 10 steps: trial 0 is alone at step 10 and goes on;
    a later trial goes on only if its SWD there is the best so far. PRUNED trials do not count as
    failures (max_failure_rate=0), and their folders say where they stopped."""
    sweep = tmp_path / "sweep"
    result = pruned_quick_study(
        sweep,
        cache_dir,
        "train.steps=40",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=0",
        "+hydra.sweeper.pruner._target_=optuna.pruners.SuccessiveHalvingPruner",
        "+hydra.sweeper.pruner.min_resource=10",
        "+hydra.sweeper.pruner.reduction_factor=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "quick")
    pruned = check_pruned(study, sweep)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(pruned) + len(complete) == 4 and pruned and complete
    assert study.trials[0].state == TrialState.COMPLETE  # alone at its rung: promoted
    for t in complete:
        s = summary(sweep / str(t.number))
        assert s["status"] in ("completed", "collapsed") and s["steps_done"] == 40
        assert s["pruned_at"] is None
        # the last step's SWD is the run's result, not an intermediate value
        assert max(t.intermediate_values) == 30
    for t in pruned:  # pruned at step 10, where it was not the best SWD so far
        assert t.last_step == 10
        earlier = [o.intermediate_values[10] for o in study.trials[: t.number]]
        assert t.intermediate_values[10] < max(earlier)
    log = (sweep / "sweep.log").read_text()
    assert f"{len(pruned)} pruned, 0 failed" in log
    assert "pruned at step 10" in log
    assert assert_commands_reproduce(sweep) == 4


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_runs_out_of_process_report_to_their_trial(tmp_path, cache_dir, launcher):
    """With trials in processes of their own, each run opens the study's storage, reports its
    SWD and asks the pruner. A threshold no run can meet (SWD below 1 at step 10) prunes every
    trial there, whatever order the two workers report in."""
    sweep = tmp_path / "sweep"
    result = pruned_quick_study(
        sweep,
        cache_dir,
        "train.steps=30",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        f"hydra/launcher={launcher}",
        "+hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
        "+hydra.sweeper.pruner.lower=-1.0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "quick")
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert [t.last_step for t in check_pruned(study, sweep)] == [10, 10]


def test_a_pruner_needs_one_objective(tmp_path, cache_dir):
    result = run_cli(
        "-m",
        "sweep=pareto",
        *SMALL,
        f"data.cache_dir={cache_dir}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "+hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
    )
    assert result.returncode != 0
    assert "Optuna's pruners work on one objective only" in result.stderr


def test_a_two_objective_study_keeps_a_pareto_front(tmp_path, cache_dir):
    """sweeps/pareto.yaml at a tiny size: each trial's values are its score and SWD, the front
    is named in trials.csv, sweep.log, optimization_results.yaml and the HTML report."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m",
        "sweep=pareto",
        *SMALL,
        f"data.cache_dir={cache_dir}",
        f"hydra.sweep.dir={sweep}",
        "train.steps=20",
        "hydra.sweeper.n_trials=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "pareto")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    for t in complete:
        s = summary(sweep / str(t.number))
        assert t.values == pytest.approx([s["score"], s["quality"]["swd"]])
    front = {t.number for t in study.best_trials}
    # the front: no complete trial beats a front trial on both values
    for t in complete:
        beaten = any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
            for o in complete
        )
        assert (t.number in front) == (not beaten)
    marked = {int(r["number"]) for r in rows(sweep / "trials.csv") if r["pareto_front"] == "True"}
    assert marked == front
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert {p["trial"] for p in results["pareto_front"]} == front
    assert "Pareto front (score, SWD)" in (sweep / "sweep.log").read_text()
    page_path = tmp_path / "report.html"
    assert compare([str(sweep), "--html", str(page_path)]) == 0
    page = page_path.read_text()
    assert "Pareto front: score (higher is better) against SWD (lower)" in page
    for number in front:
        assert f"<td>{number}</td><td>{sweep / str(number)}</td>" in page
    for title in ("Pareto front", "Optimisation history: stability score"):
        assert f"<figcaption>{title}</figcaption>" in page


def test_confirm_reruns_the_best_settings_over_new_seeds(tmp_path, cache_dir):
    """A 3-trial stability study, then sweeps/confirm.yaml with top_k=2 and 2 seeds: 4 reruns
    of the 2 best settings on seeds 1 and 2, confirm.csv with each setting's spread, the
    confirmed best in optimization_results.yaml and the HTML report. A confirm sweep whose fixed
    settings differ from the study's is refused."""
    source, sweep = tmp_path / "study", tmp_path / "confirm"
    common = [*SMALL, f"data.cache_dir={cache_dir}", "train.steps=20"]
    result = run_cli(
        "-m", "sweep=stability", *common, f"hydra.sweep.dir={source}", "hydra.sweeper.n_trials=3"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    where = [
        f"hydra.sweeper.confirm.sweep_dir={source}",
        "hydra.sweeper.confirm.top_k=2",
        "hydra.sweeper.confirm.seeds=2",
    ]
    refused = run_cli(
        "-m", "sweep=confirm", *common, "train.steps=30", f"hydra.sweep.dir={sweep}", *where
    )
    assert refused.returncode != 0
    assert "train.steps: 20 -> 30" in refused.stderr
    assert not (sweep / "optuna.db").exists() or not load(sweep, "stability_confirm").trials

    result = run_cli("-m", "sweep=confirm", *common, f"hydra.sweep.dir={sweep}", *where)
    assert result.returncode == 0, result.stderr[-3000:]
    study_trials = load(source, "stability").trials
    top = confirm.top_trials(load(source, "stability"), 2)
    trials = load(sweep, "stability_confirm").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    reruns = [(t.user_attrs[confirm.CONFIRMS], t.params["seed"]) for t in trials]
    assert reruns == [
        (top[0].number, 1),
        (top[0].number, 2),
        (top[1].number, 1),
        (top[1].number, 2),
    ]
    for t in trials:
        source_params = study_trials[t.user_attrs[confirm.CONFIRMS]].params
        assert {k: v for k, v in t.params.items() if k != "seed"} == source_params
        cfg = yaml.safe_load((sweep / str(t.number) / ".hydra" / "config.yaml").read_text())
        assert cfg["seed"] == t.params["seed"] and cfg["train"]["steps"] == 20

    table = confirm.read_csv(sweep / confirm.CSV_NAME)
    assert [r["trial"] for r in table] == [t.number for t in top]
    for r in table:
        runs = [
            summary(sweep / str(t.number))
            for t in trials
            if t.user_attrs[confirm.CONFIRMS] == r["trial"]
        ]
        swds = [s["quality"]["swd"] for s in runs]
        assert r["seeds_done"] == 2
        assert r["swd_mean"] == pytest.approx(sum(swds) / 2)
        assert r["swd_sd"] == pytest.approx(abs(swds[0] - swds[1]) / math.sqrt(2))
        collapsed = sum(s["collapsed_at"] is not None for s in runs) / 2
        assert r["collapsed_fraction"] == collapsed
    eligible = [r for r in table if r["collapsed_fraction"] == 0]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = [r for r in table if r["confirmed_best"] is True]
    if eligible:
        assert len(best) == 1 and best[0] in eligible
        assert results["confirmed_best"]["trial"] == best[0]["trial"]
    else:
        assert not best and results["confirmed_best"] is None
    page_path = tmp_path / "report.html"
    assert compare([str(sweep), "--html", str(page_path)]) == 0
    page = page_path.read_text()
    assert "Settings rerun over seeds" in page
    # one answer, at the top: the confirmed best where there is one
    assert ("confirmed best (confirm): trial" in page) == bool(eligible)
    assert ("best: " in page) == (not eligible)
    assert assert_commands_reproduce(sweep) == 4
    if eligible:  # the confirmed best's settings as a config that runs: its first rerun's
        out = tmp_path / "confirmed.yaml"
        assert compare([str(sweep), "--export", str(out)]) == 0
        rerun = Path(best[0]["run_dir"])
        job = run_cli("--config-dir", str(tmp_path), "--config-name", "confirmed", "--cfg", "job")
        assert job.returncode == 0, job.stderr
        saved = yaml.safe_load((rerun / ".hydra" / "config.yaml").read_text())
        assert yaml.safe_load(job.stdout) == saved
