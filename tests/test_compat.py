"""What an earlier pumpgan wrote still works: a run folder and a study written at commit b5dc1a7
(before the package was split into layers, before checkpoint checksums and a study's recorded
precision, before the SWD's moment gap term) resume, sample, compare and
continue, their SWD labelled and kept as it was computed. The fixture's trials ran 4 steps of a
4-channel G on 32 pumpkins (tests/fixtures/main_b5dc1a7, made with that commit's run.py)."""

import json
import shutil
from pathlib import Path

import optuna
import pytest

from gan.compare import main as compare
from gan.sample import main as sample

from .conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

FIXTURE = ROOT / "tests" / "fixtures" / "main_b5dc1a7"
# the fixture study's fixed settings, as its command line gave them
STUDY = [
    "sweep=quick",
    "model.gen_features=4",
    "model.disc_features=4",
    "model.dim_z=8",
    "hardware=cpu",
    "data.num_images=32",
    "train.batch_size=8",
    "train.steps=4",
    "train.log_every=1",
    "train.num_samples=4",
    "train.sample_every=0",
    "train.checkpoint_every=0",
    "eval.num_images=16",
]


def test_a_run_of_the_previous_layout_resumes_and_samples(tmp_path, cache_dir):
    old, resumed = tmp_path / "old", tmp_path / "resumed"
    shutil.copytree(FIXTURE / "run", old)
    result = run_cli(
        f"resume={old}", "train.steps=6", f"data.cache_dir={cache_dir}", f"hydra.run.dir={resumed}"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 6
    # its SWD as the run's eval.csv computed it: the paper's
    assert summary["quality"]["swd_moments"] is False
    assert sample([str(old), "--n", "8", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()


def test_a_study_of_the_previous_layout_compares_and_continues(tmp_path, cache_dir):
    study_dir = tmp_path / "study"
    shutil.copytree(FIXTURE / "study", study_dir)
    page = tmp_path / "report.html"
    assert compare([str(study_dir), "--html", str(page), "--csv", str(tmp_path / "r.csv")]) == 0
    assert "Study quick" in page.read_text()
    assert "blind to contrast and colour" in page.read_text()
    assert "swd_moments" in (tmp_path / "r.csv").read_text().splitlines()[0]
    # its trials' SWD was the paper's: continuing it with today's SWD is refused
    again = [*STUDY, f"data.cache_dir={cache_dir}", f"hydra.sweep.dir={study_dir}"]
    refused = run_cli("-m", *again, "hydra.sweeper.n_trials=3")
    assert refused.returncode == 2
    assert "eval.swd_moments: false -> true" in refused.stderr, refused.stderr[-3000:]
    result = run_cli("-m", *again, "hydra.sweeper.n_trials=3", "eval.swd_moments=false")
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{study_dir / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.user_attrs["pumpgan_precision"] == {"precision": "fp32", "channels_last": False}
    assert Path(study.trials[2].user_attrs["run_dir"]) == study_dir / "2"
