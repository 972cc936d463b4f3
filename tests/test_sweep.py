"""Sweeps end to end in subprocesses: Optuna studies on SQLite, kills, failures, Hydra grids."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from .conftest import (
    ROOT,
    TINY,
    assert_commands_reproduce,
    composed,
    run_cli,
    start_cli,
    wait_for_steps,
)

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


def run_together(*commands: list[str], timeout: float = 300) -> list[tuple[int, int, str]]:
    """`python run.py ARGS` for each ARGS, all started at once: (pid, exit status, output) each."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in commands]
        procs = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            for args, out in zip(commands, outs, strict=True)
        ]
        ended = []
        for proc, out in zip(procs, outs, strict=True):
            proc.wait(timeout=timeout)
            out.seek(0)
            ended.append((proc.pid, proc.returncode, out.read()))
    return ended


def check_shared_study(
    study: optuna.Study, n_trials: int, runs: list[tuple[int, int, str]], sweep_dirs: list[Path]
) -> None:
    """What sweep processes that shared `study` (process i in sweep_dirs[i]) must have done:
    together exactly n_trials complete trials, each process some of them, no parameters twice,
    each trial in a folder of its own, written by that trial."""
    for _, returncode, output in runs:
        assert returncode == 0, output[-3000:]
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == n_trials
    # the only others: trials asked at the same moment as the last one, never launched
    assert all(t.state == TrialState.COMPLETE or "not_run" in t.user_attrs for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in done}) == n_trials
    folder_of = {pid: d for (pid, _, _), d in zip(runs, sweep_dirs, strict=True)}
    pids = [int(t.user_attrs["pumpgan_owner"].rpartition(":")[2]) for t in done]
    assert set(pids) == set(folder_of)  # every process ran trials
    for t, pid in zip(done, pids, strict=True):
        run_dir = folder_of[pid] / str(t.number)
        assert t.user_attrs["run_dir"] == str(run_dir)
        assert summary(run_dir)["optuna"]["trial"] == t.number
        assert summary(run_dir)["score"] == t.value


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
    assert assert_commands_reproduce(sweep) == 3
    # the best trial's settings taken away as a config file, which runs as that trial ran
    export = subprocess.run(
        [
            sys.executable,
            "-m",
            "gan.compare",
            str(sweep),
            "--export",
            str(tmp_path / "best.yaml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert export.returncode == 0, export.stderr
    runs_it = export.stdout.strip().splitlines()[-1].partition("run it with: ")[2]
    assert runs_it == f"python run.py --config-dir {tmp_path} --config-name best"
    best = OmegaConf.load(sweep / "optimization_results.yaml").best_trial
    job = run_cli(*runs_it.split()[2:], "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    config = OmegaConf.to_container(OmegaConf.create(job.stdout))
    assert config == OmegaConf.to_container(
        OmegaConf.load(sweep / str(best) / ".hydra" / "config.yaml")
    )
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
    from gan.run.score import STALE_AFTER_S
    from gan.study.trials import HEARTBEAT, beat, is_stale

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


def test_a_running_trial_without_owner_is_reclaimed_after_the_timeout(tmp_path):
    """A sweep that died between study.ask and recording itself left a RUNNING trial with no
    owner and no heartbeat: stale once it is STALE_AFTER_S old."""
    from gan.run.score import STALE_AFTER_S
    from gan.study.trials import is_stale

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    study.ask()
    now = time.time()
    assert is_stale(study.trials[0], now) is None
    why = is_stale(study.trials[0], now + STALE_AFTER_S + 60)
    assert why is not None and why.startswith("no sweep process recorded, started 6")


def test_a_trial_that_fails_to_start_is_failed_at_once(tmp_path):
    """study.ask raises after creating its trial (here Optuna's own check of a parameter's
    distribution): the trial is failed at once, not left RUNNING, and counts toward nothing."""
    from gan.study.sampler import make_sampler
    from gan.study.trials import NOT_RUN, start_trial, trials_used

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, value=1.0
        )
    )
    sampler, _ = make_sampler({"_target_": "optuna.samplers.RandomSampler", "seed": 0}, {})
    study = optuna.load_study(study_name="s", storage=url, sampler=sampler)
    changed = {"x": CategoricalDistribution(["a", "b"])}
    with pytest.raises(ValueError, match="Cannot set different distribution kind"):
        start_trial(study, sampler, changed, tmp_path)
    assert states(study) == ["COMPLETE", "FAIL"]
    assert "Cannot set different distribution kind" in study.trials[1].user_attrs[NOT_RUN]
    assert trials_used(study) == 1


def test_the_sampler_is_seeded_by_the_trial_number(tmp_path):
    """Two sweep processes on one study (two Study objects on one storage, each with its own
    sampler) never draw alike, and trial N draws the same whichever process asks for it; the
    grid sampler gives each trial its own grid point."""
    from gan.study.sampler import make_sampler

    def ask_in_turns(db: Path, cfg: dict, space: dict, n: int) -> list[dict]:
        studies = [
            optuna.create_study(
                study_name="s",
                storage=f"sqlite:///{db}",
                sampler=make_sampler(cfg, space)[0],
                load_if_exists=True,
            )
            for _ in range(2)
        ]
        return [studies[i % 2].ask(space).params for i in range(n)]

    tpe = {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 5}
    space = {"x": FloatDistribution(0, 1), "c": CategoricalDistribution(list(range(10)))}
    first = ask_in_turns(tmp_path / "a.db", tpe, space, 4)
    assert len({tuple(sorted(p.items())) for p in first}) == 4
    assert ask_in_turns(tmp_path / "b.db", tpe, space, 4) == first
    grid = {"_target_": "optuna.samplers.GridSampler", "_partial_": True, "seed": 0}
    seeds = ask_in_turns(tmp_path / "grid.db", grid, {"seed": IntDistribution(0, 4)}, 5)
    assert sorted(p["seed"] for p in seeds) == [0, 1, 2, 3, 4]
    assert make_sampler(grid, {"seed": IntDistribution(0, 4)})[1] == 5


def test_a_changed_study_is_refused_before_any_trial(tmp_path, cache_dir):
    """A rerun of a sweep folder with another search space or other fixed settings stops before
    it asks for a trial, naming what differs and the way out; the study is left as it was, and
    the same settings (with other hardware) continue it."""
    sweep = tmp_path / "sweep"
    args = sweep_args(sweep, cache_dir, "sweep=quick", *TINY, "train.steps=10")
    first = run_cli(*args, "hydra.sweeper.n_trials=1")
    assert first.returncode == 0, first.stderr[-3000:]
    way_out = (
        "To continue the study, rerun it with its own settings. For a new study, choose a new "
        "hydra.sweep.dir (a new folder has a new optuna.db), or, where the study lives in "
        "hydra.sweeper.storage, a new hydra.sweeper.study_name together with a new "
        "hydra.sweep.dir."
    )
    for change, differs in (
        ("optim.beta1=choice(0.5, 0.9)", "optim.beta1: interval(0.0, 0.9) -> choice(0.5, 0.9)"),
        ("train.steps=20", "train.steps: 10 -> 20"),
    ):
        refused = run_cli(*args, "hydra.sweeper.n_trials=2", change)
        assert refused.returncode == 2
        assert refused.stderr.endswith(
            f"Study 'quick' in sqlite:///{sweep / 'optuna.db'} was started with other settings "
            f"than this sweep's, so their trials would not compare: {differs}. {way_out}\n"
        ), refused.stderr[-3000:]
        assert "Traceback" not in refused.stderr
        assert states(load(sweep, "quick")) == ["COMPLETE"]
    again = run_cli(*args, "hydra.sweeper.n_trials=2", "hardware.threads=1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert states(load(sweep, "quick")) == ["COMPLETE", "COMPLETE"]
    assert "1 of 2 trials done" in (sweep / "sweep.log").read_text()


def test_a_trial_whose_folder_exists_fails_and_the_sweep_goes_on(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "notes.txt").write_text("not a trial of this study")
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "sweep=quick",
            *TINY,
            "train.steps=10",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.max_failure_rate=0.5",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert states(load(sweep, "quick")) == ["FAIL", "COMPLETE"]
    assert [p.name for p in (sweep / "0").iterdir()] == ["notes.txt"]
    assert f"trial 0's folder {sweep / '0'} already exists" in (sweep / "sweep.log").read_text()


def test_two_sweeps_share_one_study(tmp_path, cache_dir):
    """Two identical sweep commands started together on one folder (one SQLite study): the
    study's n_trials between them, distinct parameters, a folder per trial."""
    sweep = tmp_path / "sweep"
    args = sweep_args(
        sweep,
        cache_dir,
        "sweep=quick",
        *TINY,
        "hardware.threads=1",  # two processes on 2 cores: more threads than cores crawl
        "train.steps=40",
        "hydra.sweeper.n_trials=4",
    )
    runs = run_together(args, args)
    check_shared_study(load(sweep, "quick"), 4, runs, [sweep, sweep])


def test_submitit_local_runs_each_trial_as_a_job(tmp_path, cache_dir):
    """hydra/launcher=submitit_local, as submitit_slurm runs trials on a cluster: each trial a
    job in a process of its own, told to the study as it ends."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "sweep=quick",
            *TINY,
            "train.steps=10",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2",
            "hydra/launcher=submitit_local",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(sweep, "quick")
    assert states(study) == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        assert summary(sweep / str(t.number))["score"] == t.value
    # submitit's job folders, named by the jobs' process ids: one per trial
    assert len([p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]) == 2


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
    # the printed commands name the study file that -m hydra/sweeper=optuna composed
    assert assert_commands_reproduce(sweep) == 2
    assert composed(study.trials[0].user_attrs["command"])["train"]["steps"] == 10
    assert "hydra/sweeper=optuna" in study.trials[0].user_attrs["command"]
    # hardware=auto: the study chose its precision once, and every trial trained in it
    chosen = study.user_attrs["pumpgan_precision"]
    for t in study.trials:
        s = summary(sweep / str(t.number))
        assert (s["precision"], s["channels_last"]) == (
            chosen["precision"],
            chosen["channels_last"],
        )
        assert s["precision_timings"] == {}  # not timed again per trial
    other = "fp32" if chosen["precision"] == "bf16" else "bf16"
    refused = run_cli(
        *sweep_args(
            sweep,
            cache_dir,
            "hydra/sweeper=optuna",
            "train.steps=10",
            "optim.gen_lr=tag(log, interval(1e-4, 1e-2))",
            "hydra.sweeper.n_trials=3",
            f"hardware.precision={other}",
        )
    )
    assert refused.returncode == 2
    assert f"trains every trial with hardware.precision={chosen['precision']}" in refused.stderr
    assert len(load(sweep, "stability").trials) == 2


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
    assert proc.wait(timeout=60) == 130  # as a single run's Ctrl-C
    study = load(sweep, "quick")
    assert [(t.state, t.user_attrs.get("retry_of")) for t in study.trials] == [
        (TrialState.FAIL, None),
        (TrialState.WAITING, 0),
    ]
    assert study.trials[0].user_attrs["interrupted"]
    assert summary(sweep / "0")["status"] == "interrupted"
    assert (sweep / "0" / "checkpoints" / "last.pt").is_file()
