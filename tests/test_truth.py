"""What a run or a study reports is what happened: a resumed run trains with the values its
config shows, a trial queued again keeps what it is for, a short run's diversity verdict and its
images/s say what they measured, a run stopped before training says so."""

import json
import signal
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from gan.report.runs import find_runs
from gan.report.studies import edge_warnings
from gan.run.train import train
from gan.study.confirm import CONFIRMS
from gan.study.sampler import TrialSampler
from gan.study.trials import abandon, requeue, start_trial

from .conftest import TINY, run_cli, start_cli


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_a_resumed_run_trains_with_its_configs_optimizer_and_score_values(tiny_cfg, tmp_path):
    """Loading the optimizers' states brought back the learning rates and betas they were saved
    with, whatever the resumed run's config said; the score's eps and patience likewise."""
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    train(tiny_cfg("train.steps=10"), first)
    changed = ["optim.gen_lr=0.1", "optim.disc_lr=0.05", "optim.beta1=0.9", "score.eps=0.2"]
    train(tiny_cfg("train.steps=20", f"resume={first}", *changed), resumed)
    state = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    for name, lr in (("opt_g", 0.1), ("opt_d", 0.05)):
        (group,) = state[name]["param_groups"]
        assert (group["lr"], tuple(group["betas"])) == (lr, (0.9, 0.999))
    assert (state["score"]["eps"], state["score"]["patience"]) == (0.2, 50)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("seed=7", "seed: 0 -> 7"),
        ("train.batch_size=8", "train.batch_size: 16 -> 8"),
        ("optim.loss=hinge", "optim.loss: 'bce' -> 'hinge'"),
        ("data.num_images=32", "data.num_images: 64 -> 32"),
    ],
)
def test_resume_refuses_values_its_checkpoint_fixes(tmp_path, cache_dir, change, said):
    """What the checkpoint holds (random state, data order, fixed noise, D's layout) cannot
    change on resume: refused by name, exit 2, no folder left."""
    first = tmp_path / "first"
    common = [*TINY, f"data.cache_dir={cache_dir}", "eval.num_images=0"]
    assert run_cli(*common, "train.steps=10", f"hydra.run.dir={first}").returncode == 0
    again = tmp_path / "again"
    result = run_cli(f"resume={first}", "train.steps=20", change, f"hydra.run.dir={again}")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    assert f"resume cannot change {said}" in out
    assert not again.exists()


@pytest.mark.slow
def test_a_resumed_folder_with_a_crafted_config_is_one_paragraph(tmp_path, cache_dir):
    """A run folder whose .hydra/config.yaml was edited into something this pumpgan cannot
    merge (a wrong type) is refused by name, exit 2, no traceback, no folder left."""
    first = tmp_path / "first"
    common = [*TINY, f"data.cache_dir={cache_dir}", "eval.num_images=0"]
    assert run_cli(*common, "train.steps=5", f"hydra.run.dir={first}").returncode == 0
    saved = first / ".hydra" / "config.yaml"
    saved.write_text(saved.read_text().replace("steps: 5", "steps: five"))
    again = tmp_path / "again"
    result = run_cli(f"resume={first}", f"hydra.run.dir={again}")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    assert f"{saved} does not fit this pumpgan's config" in out
    assert "Traceback" not in out
    assert not again.exists()


def test_a_trial_queued_again_keeps_what_it_is_for(tmp_path):
    """A confirm trial killed mid-run (requeue) or never launched (abandon) is queued again with
    its `confirms` attribute, so confirm.csv counts its rerun for the right setting."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="c")
    space = {"seed": optuna.distributions.CategoricalDistribution([1, 2])}
    sampler = TrialSampler(lambda number: optuna.samplers.RandomSampler(number))
    study.enqueue_trial({"seed": 1}, user_attrs={CONFIRMS: 3})
    first = start_trial(study, sampler, space, tmp_path)
    assert first.user_attrs[CONFIRMS] == 3
    requeue(study, first.number, reason="interrupted")
    retry = study.trials[-1]
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs == {CONFIRMS: 3, "retry_of": first.number}

    second = start_trial(study, sampler, space, tmp_path)
    assert second.params == {"seed": 1} and second.user_attrs[CONFIRMS] == 3
    abandon(study, second.number, "the study's n_trials were all taken")
    queued = study.trials[-1]
    assert queued.state == TrialState.WAITING
    assert queued.user_attrs == {CONFIRMS: 3, "retry_of": first.number}


def test_a_short_runs_diversity_verdict_says_what_it_saw(tiny_cfg, tmp_path, caplog):
    """train.steps below train.sample_every: the only grids are the untrained G's and the final
    one. The run is warned about at its start, its reason says G never made varied images, and
    gan.compare's edge-of-range warning does not fire on runs that all collapsed at step 0."""
    runs = []
    for lr in (1e-5, 1e-4, 1e-3):
        run_dir = tmp_path / f"lr{lr}"
        overrides = ["train.steps=10", "train.sample_every=250", "score.min_diversity=5.0"]
        train(tiny_cfg(*overrides, f"optim.gen_lr={lr}", "eval.num_images=0"), run_dir)
        runs.append(run_dir)
        s = summary(run_dir)
        assert (s["status"], s["collapsed_at"], s["score"]) == ("collapsed", 0, 0.0)
        assert "in every grid, from the untrained G's at step 0 to the end" in s["reason"]
    assert "makes no sample grid between step 0 and the end" in caplog.text
    found = find_runs([tmp_path])
    assert edge_warnings(found, ["optim.gen_lr"], {}) == []


def test_images_per_s_and_wall_s_of_a_resumed_run_agree(tiny_cfg, tmp_path):
    """summary.json's images_per_s is steps_done x batch_size / wall_s, both over the whole run,
    the run it resumed included (it counted the resumed stretch only, against the whole time)."""
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    train(tiny_cfg("train.steps=20", "eval.num_images=0"), first)
    train(tiny_cfg("train.steps=25", f"resume={first}", "eval.num_images=0"), resumed)
    for run_dir in (first, resumed):
        s = summary(run_dir)  # wall_s is rounded to 1 ms
        assert s["images_per_s"] == pytest.approx(s["steps_done"] * 16 / s["wall_s"], rel=1e-2)
    assert summary(resumed)["wall_s"] > summary(first)["wall_s"]


@pytest.mark.slow
def test_a_run_stopped_before_training_says_so(tmp_path):
    """Ctrl-C while a run still builds its data (a new cache of 3,000 pumpkins): it stops with
    exit 130 and its summary.json says `interrupted` before training, not nothing at all."""
    run_dir = tmp_path / "run"
    proc = start_cli(
        *TINY,
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_images=3000",
        f"hydra.run.dir={run_dir}",
    )
    deadline = time.monotonic() + 60
    while not (run_dir / "run.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # past Hydra's start, into the data build
    assert not (run_dir / "summary.json").exists()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    s = summary(run_dir)
    assert (s["status"], s["steps_done"]) == ("interrupted", 0)
    assert s["error"] == "interrupted before training started"
    assert find_runs([tmp_path])[0].status == "interrupted"
