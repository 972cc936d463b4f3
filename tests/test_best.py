"""checkpoints/best.pt: the G of the lowest SWD measured during training, its step and SWD in
summary.json, carried through a resume, and sampled with `gan.sample --which best`."""

import csv
import json
from pathlib import Path

import pytest
import torch

from gan.nets.generator_file import load_generator
from gan.run.train import train
from gan.sample import main as sample

EVAL = ["train.steps=40", "eval.every=10", "eval.num_images=48"]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def evaluations(run: Path) -> dict[int, float]:
    with open(run / "eval.csv", newline="") as f:
        return {int(r["step"]): float(r["swd"]) for r in csv.DictReader(f)}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    from tests.conftest import make_cfg

    path = tmp_path_factory.mktemp("best") / "run"
    train(make_cfg(*EVAL, "optim.gen_lr=0.02", cache_dir=cache_dir), path)
    return path


def test_best_pt_holds_the_g_of_the_lowest_swd_seen(run: Path) -> None:
    swds = evaluations(run)
    step = min(swds, key=swds.__getitem__)
    best = summary(run)["best"]
    assert best["step"] == step and best["swd_during"] == swds[step]
    record = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert record["step"] == step and record["swd"] == swds[step]
    last = weights(run / "checkpoints" / "generator.pt")
    same = all(torch.equal(v, last[k]) for k, v in record["state_dict"].items())
    assert same == (step == 40)
    # eval.num_images for both: the best G's SWD at the end is the one that chose it
    assert best["swd"] == pytest.approx(swds[step], rel=1e-5)
    assert best["swd_images"] == 48


@pytest.mark.slow
def test_the_best_of_fewer_images_during_training_is_measured_again_on_all(
    tiny_cfg, tmp_path: Path
) -> None:
    cfg = tiny_cfg(*EVAL, "optim.gen_lr=0.02", "eval.num_images_during=24")
    train(cfg, tmp_path / "run")
    best, quality = summary(tmp_path / "run")["best"], summary(tmp_path / "run")["quality"]
    assert best["swd_images"] == quality["swd_images"] == 48
    if best["step"] == 40:
        assert best["swd"] == quality["swd"]
    else:
        assert best["swd_during"] == evaluations(tmp_path / "run")[best["step"]]


@pytest.mark.slow
def test_a_resumed_run_keeps_the_best_of_the_run_it_continues(tiny_cfg, tmp_path: Path) -> None:
    train(tiny_cfg(*EVAL, "optim.gen_lr=0.02"), tmp_path / "whole")
    train(tiny_cfg(*EVAL, "optim.gen_lr=0.02", "train.steps=20"), tmp_path / "first")
    resumed = tiny_cfg(*EVAL, "optim.gen_lr=0.02", f"resume={tmp_path / 'first'}")
    train(resumed, tmp_path / "second")
    assert summary(tmp_path / "second")["best"] == summary(tmp_path / "whole")["best"]
    whole = weights(tmp_path / "whole" / "checkpoints" / "best.pt")
    second = weights(tmp_path / "second" / "checkpoints" / "best.pt")
    assert all(torch.equal(v, second[k]) for k, v in whole.items())


def test_gan_sample_which_best_makes_images_of_best_pt(run: Path, tmp_path: Path) -> None:
    assert sample([str(run), "--which", "best", "--n", "4", "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").is_file()
    gen = load_generator(run / "checkpoints" / "best.pt")
    assert gen.dim_z == 32


def test_which_best_without_evaluations_says_how_to_get_one(
    tiny_cfg, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train(tiny_cfg("train.steps=5"), tmp_path / "run")
    assert summary(tmp_path / "run")["best"] is None
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert sample([str(tmp_path / "run"), "--which", "best"]) == 2
    err = capsys.readouterr().err
    assert "eval.every" in err and "--which last" in err and err.count("\n") == 1
