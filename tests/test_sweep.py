"""Sweeps end to end in subprocesses: Optuna studies on SQLite, kills, failures, Hydra grids."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from .conftest import run_cli, start_cli, wait_for_steps

pytestmark = pytest.mark.slow


def sweep_args(sweep_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [
        "-m",
        f"hydra.sweep.dir={sweep_dir}",
        f"data.cache_dir={cache_dir}",
        "data.num_images=64",
        "train.log_every=5",
        *extra,
    ]


def load(sweep_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def test_quick_sweep_records_every_trial(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    result = run_cli(
        *sweep_args(sweep, cache_dir, "sweep=quick", "hydra.sweeper.n_trials=3", "train.steps=20")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "quick")
    assert states(study) == ["COMPLETE"] * 3
    with open(sweep / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    for trial, row in zip(study.trials, rows, strict=True):
        run = sweep / str(trial.number)
        s = summary(run)
        assert s["optuna"] == {
            "study": "quick",
            "trial": trial.number,
            "storage": f"sqlite:///{sweep / 'optuna.db'}",
        }
        assert s["score"] == trial.value == float(row["score"])
        assert row["run_dir"] == str(run) == trial.user_attrs["run_dir"]
        assert float(row["optim.gen_lr"]) == trial.params["optim.gen_lr"]
        assert float(row["diversity"]) == s["quality"]["diversity"] == trial.user_attrs["diversity"]
        assert float(row["swd"]) == s["quality"]["swd"] == trial.user_attrs["swd"] > 0
    assert "best so far" in (sweep / "sweep.log").read_text()
    # the same command again: the study is complete, nothing is overwritten or added
    before = (sweep / "0" / "metrics.csv").read_bytes()
    again = run_cli(
        *sweep_args(sweep, cache_dir, "sweep=quick", "hydra.sweeper.n_trials=3", "train.steps=20")
    )
    assert again.returncode == 0
    assert len(load(sweep, "quick").trials) == 3
    assert (sweep / "0" / "metrics.csv").read_bytes() == before


def test_optuna_dashboard_opens_the_study(tmp_path):
    """The README's `optuna-dashboard sqlite:///outputs/sweeps/NAME/optuna.db` sees the study."""
    import socket
    import urllib.request

    db = tmp_path / "optuna.db"
    study = optuna.create_study(study_name="quick", storage=f"sqlite:///{db}", direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"optim.gen_lr": 1e-3},
            distributions={"optim.gen_lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)},
            value=0.5,
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    proc = subprocess.Popen(
        [str(dashboard), f"sqlite:///{db}", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, body = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.3)
        studies = json.loads(body)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["quick"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_killed_sweep_continues_to_its_total(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    args = sweep_args(
        sweep, cache_dir, "sweep=quick", "hydra.sweeper.n_trials=3", "train.steps=150", "model=tiny"
    )
    proc = start_cli(*args)
    wait_for_steps(sweep / "1", 0, timeout=180)  # trial 1 has started
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = (sweep / "0" / "metrics.csv").read_bytes()
    assert "RUNNING" in states(load(sweep, "quick"))

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "quick")
    assert states(study).count("COMPLETE") == 3
    assert "RUNNING" not in states(study)
    killed = study.trials[1]
    assert killed.state == TrialState.FAIL and killed.user_attrs["stale"]
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == 1)
    assert retry.params == killed.params and retry.state == TrialState.COMPLETE
    assert summary(sweep / "1")["status"] == "interrupted"
    assert (sweep / "0" / "metrics.csv").read_bytes() == first  # never overwritten
    numbers = [t.number for t in study.trials]
    assert all((sweep / str(n)).is_dir() for n in numbers)
    assert (
        len(
            {
                tuple(sorted(t.params.items()))
                for t in study.trials
                if t.state == TrialState.COMPLETE
            }
        )
        == 3
    )  # no replayed suggestions


def test_trials_of_a_dead_sweep_elsewhere_are_requeued_after_their_heartbeat_stops(
    tmp_path, cache_dir
):
    """Two machines share one study: a RUNNING trial whose heartbeat stopped an hour ago (its
    machine died) is failed and run again; one with a fresh heartbeat is left to its sweep."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(
        study_name="quick", storage=f"sqlite:///{sweep / 'optuna.db'}", direction="maximize"
    )
    space = {"optim.gen_lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)}
    for pid, age in ((101, 3600), (102, 5)):
        trial = study.ask(space)
        trial.set_user_attr("pumpgan_owner", f"another-machine:{pid}")
        trial.set_user_attr("pumpgan_heartbeat", time.time() - age)
    result = run_cli(
        *sweep_args(sweep, cache_dir, "sweep=quick", "hydra.sweeper.n_trials=3", "train.steps=20")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "quick")
    assert states(study) == ["FAIL", "RUNNING", "COMPLETE", "COMPLETE"]
    dead, alive = study.trials[:2]
    assert dead.user_attrs["stale"] and alive.user_attrs["pumpgan_owner"] == "another-machine:102"
    retry = study.trials[2]
    assert retry.user_attrs["retry_of"] == 0
    assert retry.params["optim.gen_lr"] == dead.params["optim.gen_lr"]
    log = (sweep / "sweep.log").read_text()
    assert "trial 0 was left RUNNING (no heartbeat from another-machine for 36" in log
    assert "trial 1 was left" not in log


def test_heartbeat_renews_running_trials_only(tmp_path):
    from gan.score import STALE_AFTER_S
    from gan.sweep import HEARTBEAT, beat, is_stale

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trial = study.ask()
    trial.set_user_attr(HEARTBEAT, time.time() - 2 * STALE_AFTER_S)
    assert "no heartbeat" in is_stale(study.trials[0], time.time())
    beat(study, 0)
    assert is_stale(study.trials[0], time.time()) is None
    assert time.time() - study.trials[0].user_attrs[HEARTBEAT] < 60
    study.tell(0, 1.0)
    beat(study, 0)  # a finished trial is left as it is
    assert study.trials[0].state == TrialState.COMPLETE


def test_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    # a grid over the seeds x an image size that does not exist: half the trials raise
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "sweep=seeds",
            "model=tiny",
            "train.steps=10",
            "seed=range(0, 2)",
            "model.image_size=choice(32, 48)",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.max_failure_rate=0.5",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "seeds")
    assert sorted(states(study)) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    for t in study.trials:
        assert (t.params["model.image_size"] == 48) == (t.state == TrialState.FAIL)
    with open(sweep / "trials.csv", newline="") as f:
        assert sorted(r["state"] for r in csv.DictReader(f)) == sorted(states(study))


def test_too_many_failures_stop_the_sweep(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "sweep=seeds",
            "model=tiny",
            "train.steps=10",
            "model.image_size=48",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.max_failure_rate=0.0",
        )
    )
    assert result.returncode == 1  # Hydra's exit status for an error the sweeper raises
    assert "Stopping the sweep: 1 trials failed" in result.stderr + result.stdout
    assert states(load(sweep, "seeds")) == ["FAIL"]


def test_basic_grid_still_works(tmp_path, cache_dir):
    sweep = tmp_path / "grid"
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "hydra/sweeper=basic",
            "model=tiny",
            "train.steps=10",
            "optim.gen_lr=1e-3,2e-3",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (sweep / "optuna.db").exists()
    lrs = sorted(
        OmegaConf.load(sweep / n / ".hydra" / "config.yaml").optim.gen_lr for n in ("0", "1")
    )
    assert lrs == [1e-3, 2e-3]
    assert "optuna" not in summary(sweep / "0")


def test_cli_search_space_with_the_default_study(tmp_path, cache_dir):
    sweep = tmp_path / "cli"
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "hydra/sweeper=optuna",
            "train.steps=10",
            "optim.gen_lr=tag(log, interval(1e-4, 1e-2))",
            "hydra.sweeper.n_trials=2",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "stability")
    assert states(study) == ["COMPLETE", "COMPLETE"]
    dist = study.trials[0].distributions["optim.gen_lr"]
    assert (dist.low, dist.high, dist.log) == (1e-4, 1e-2, True)
    assert "optim.disc_lr" in study.trials[0].params  # the rest of the stability space


def test_parallel_trials_split_the_cores(tmp_path, cache_dir):
    sweep = tmp_path / "par"
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "sweep=quick",
            "hydra/launcher=joblib",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            "train.steps=20",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert states(load(sweep, "quick")) == ["COMPLETE", "COMPLETE"]
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert [summary(sweep / n)["threads"] for n in ("0", "1")] == [expected, expected]


def test_ctrl_c_stops_the_sweep_and_queues_the_trial_again(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    args = sweep_args(
        sweep,
        cache_dir,
        "sweep=quick",
        "hydra.sweeper.n_trials=3",
        "train.steps=100000",
        "score.stop_on_collapse=false",  # trial 0 must still run when the signal comes
        "model=tiny",
    )
    # its own process group, as a terminal's Ctrl-C signals the whole foreground group
    proc = start_cli(*args, start_new_session=True)
    wait_for_steps(sweep / "0", 1)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    study = load(sweep, "quick")
    assert [(t.state, t.user_attrs.get("retry_of")) for t in study.trials] == [
        (TrialState.FAIL, None),
        (TrialState.WAITING, 0),
    ]
    assert study.trials[0].user_attrs["interrupted"]
    assert summary(sweep / "0")["status"] == "interrupted"
    assert (sweep / "0" / "checkpoints" / "last.pt").is_file()
