"""run.py end to end in a subprocess, as a user runs it: the run folder and its contracts."""

import json
import signal
from pathlib import Path

import pytest
import torch

from .conftest import TINY, run_cli, start_cli, wait_for_steps

SUMMARY_FIELDS = {
    "status",
    "score",
    "collapsed_at",
    "reason",
    "steps",
    "steps_done",
    "wall_s",
    "images_per_s",
    "quality",
    "versions",
}


def test_run_writes_the_whole_run_folder(tmp_path, cache_dir):
    run = tmp_path / "run"
    result = run_cli(*TINY, "train.steps=30", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        ".hydra/hydra.yaml",
        "run.log",
        "metrics.csv",
        "samples/step_000000.png",
        "samples/step_000010.png",
        "samples/final.png",
        "checkpoints/last.pt",
        "summary.json",
        "curves.png",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["status"] in ("completed", "collapsed")
    assert 0 <= summary["score"] <= 1
    assert summary["steps_done"] == 30 or summary["status"] == "collapsed"
    assert summary["images_per_s"] > 0
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,time_s,loss_d,loss_g,d_real,d_fake,d_fake_after"
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert {"gen", "disc", "opt_g", "opt_d", "step", "rng", "score"} <= state.keys()
    assert f"score {summary['score']:.4f}" in (run / "run.log").read_text()
    # TensorBoard sees the same scalars and grids
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train/d_real")) == summary["steps_done"]
    assert events.Scalars("score")[0].value == summary["score"]
    assert [e.step for e in events.Images("samples")][:3] == [0, 10, 20]
    diversity = events.Scalars("quality/diversity")
    assert [e.step for e in diversity][:3] == [0, 10, 20]
    assert diversity[-1].value == pytest.approx(summary["quality"]["diversity"], abs=1e-3)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_checkpoints_and_resume_finishes(tmp_path, cache_dir, signum):
    run = tmp_path / "run"
    args = [
        *TINY,
        "train.steps=100000",
        "train.checkpoint_every=0",
        "score.stop_on_collapse=false",  # the tiny run collapses ~2 s in: it must not end itself
        f"data.cache_dir={cache_dir}",
        f"hydra.run.dir={run}",
    ]
    proc = start_cli(*args)
    wait_for_steps(run, 20)  # a few read-backs
    proc.send_signal(signum)  # Ctrl-C, or a scheduler's kill
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert state["step"] == summary["steps_done"] >= 20

    resumed = tmp_path / "resumed"
    steps = state["step"] + 10
    result = run_cli(f"resume={run}", f"train.steps={steps}", f"hydra.run.dir={resumed}")
    assert result.returncode == 0, result.stderr
    after = json.loads((resumed / "summary.json").read_text())
    assert after["status"] in ("completed", "collapsed")
    assert after["steps_done"] == steps or after["status"] == "collapsed"
    assert after["resumed_from"] == str(run)
    rows = (resumed / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + after["steps_done"]
    # the interrupted folder is left as it was
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_resume_cannot_swap_a_config_group(tmp_path, cache_dir):
    run = tmp_path / "run"
    assert (
        run_cli(
            *TINY, "train.steps=5", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}"
        ).returncode
        == 0
    )
    result = run_cli(f"resume={run}", "model=small", f"hydra.run.dir={tmp_path / 'again'}")
    assert result.returncode == 2
    assert "resume cannot change a config group (model=small)" in result.stdout


def test_an_existing_run_folder_is_never_overwritten(tmp_path, cache_dir):
    run = tmp_path / "run"
    common = [*TINY, "train.steps=5", f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}"]
    assert run_cli(*common).returncode == 0
    before = (run / "metrics.csv").read_bytes()
    result = run_cli(*common)
    assert result.returncode != 0
    assert "already holds a run" in result.stdout + result.stderr
    assert (run / "metrics.csv").read_bytes() == before


def test_folder_data_from_the_command_line(tmp_path, cache_dir):
    from PIL import Image

    images = tmp_path / "imgs" / "class_a"
    images.mkdir(parents=True)
    for i in range(6):
        Image.new("RGB", (40, 36), (40 * i, 100, 200)).save(images / f"{i}.png")
    run = tmp_path / "run"
    result = run_cli(
        *TINY,
        "data=folder",
        f"data.root={tmp_path / 'imgs'}",
        "train.steps=5",
        f"data.cache_dir={cache_dir}",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "summary.json").read_text())["data"]["num_images"] == 6


def test_missing_folder_is_one_clear_paragraph(tmp_path: Path):
    result = run_cli(
        "data=folder", f"data.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2
    assert f"data.root='{tmp_path / 'nope'}' is not a folder" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
