"""Checkpoints that still unpickle after their bytes changed on disk or in a copy: last.pt and
generator.pt are written with a sha256 of their contents and refused by name when it does not
match; files written before checksums load as they did."""

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from gan.checksum import digest
from gan.config import ModelConfig
from gan.errors import UserError
from gan.nets.models import Generator
from gan.run.checkpoint import load_checkpoint, read_checkpoint
from gan.run.folder import RunFolder
from gan.run.train import train
from gan.sample import load_generator, save_generator
from gan.sample import main as sample_main

from .conftest import ROOT, make_cfg

OLD_RUNS = ROOT / "tests" / "fixtures" / "checkpoints_26fc4a1"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("checkpoints") / "run"
    train(make_cfg("train.steps=10", "eval.num_images=0", cache_dir=cache_dir), run)
    return run


def flip_bytes_of(path: Path, tensor: torch.Tensor, count: int = 100) -> None:
    """Flip `count` bytes of `tensor`'s stored data in the file (found by its raw bytes), as a bad
    block or a damaged copy would: the zip and the pickle still read."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert len(raw) >= count and at >= 0 and data.find(raw, at + 1) < 0
    for i in range(at, at + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def largest_optimizer_tensor(state: dict) -> torch.Tensor:
    tensors = [t for s in state["opt_d"]["state"].values() for t in s.values() if t.dim()]
    return max(tensors, key=torch.Tensor.numel)


def test_a_checkpoint_with_flipped_bytes_in_its_optimizer_state_is_refused(
    trained, tmp_path, cache_dir
):
    damaged = tmp_path / "damaged"
    shutil.copytree(trained, damaged)
    path = damaged / "checkpoints" / "last.pt"
    flip_bytes_of(path, largest_optimizer_tensor(torch.load(path, weights_only=True)))
    torch.load(path, weights_only=True)  # still unpickles: only the checksum tells

    with pytest.raises(UserError) as refused:
        read_checkpoint(path, what="resume")
    text = str(refused.value)
    assert f"{path} is damaged: its contents do not match the checksum written with it" in text
    assert "on disk or in a copy" in text and "\n" not in text
    assert "Restore it" in text and "another run" in text and "start the run again" in text
    # a resume stops there, before it trains a step or saves a checkpoint
    with pytest.raises(UserError, match="do not match the checksum"):
        train(make_cfg("train.steps=12", f"resume={damaged}", cache_dir=cache_dir), tmp_path / "r")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_an_intact_checkpoint_is_a_plain_dict_with_its_sha256(trained):
    path = trained / "checkpoints" / "last.pt"
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw["sha256"], str) and len(raw["sha256"]) == 64
    state = load_checkpoint(trained)
    assert "sha256" not in state and state.keys() == raw.keys() - {"sha256"}
    assert raw["sha256"] == digest(state)
    for key, value in raw["gen"].items():
        assert torch.equal(value, state["gen"][key])


@pytest.mark.parametrize("arch", ["dcgan", "seed"])
def test_a_checkpoint_written_before_checksums_loads(arch):
    path = OLD_RUNS / arch / "checkpoints" / "last.pt"
    assert "sha256" not in torch.load(path, weights_only=True)
    assert read_checkpoint(path, what="resume")["step"] > 0


def test_save_checkpoint_writes_the_digest_of_the_state_it_is_given(tmp_path):
    """bf16, 0-d and non-contiguous tensors, int keys, tuples and plain values: the digest of
    what torch.load returns is the digest of what was saved."""
    weight = torch.randn(6, 4)
    state = {
        "step": 3,
        "bf16": torch.randn(5, 3).to(torch.bfloat16),
        "scalar": torch.tensor(2.0),
        "view": weight.t(),
        "opt": {"state": {0: {"step": torch.tensor(1.0)}}, "groups": [{"betas": (0.5, 0.9)}]},
        "config": {"name": "x", "lr": 2e-4, "none": None, "flag": True},
    }
    folder = RunFolder(tmp_path)
    folder.checkpoint_path.parent.mkdir()
    folder.save_checkpoint(state)
    raw = torch.load(folder.checkpoint_path, weights_only=True)
    assert raw.pop("sha256") == digest(state) == digest(raw)
    raw["bf16"][0, 0] += 1
    assert digest(raw) != digest(state)


def tiny_generator_file(path: Path) -> Path:
    cfg = ModelConfig(gen_features=4, disc_features=4, dim_z=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_generator(path, dataclasses.asdict(cfg), Generator(cfg), step=5, ema=False)
    return path


def test_a_generator_pt_with_flipped_bytes_is_refused(tmp_path, capsys):
    path = tiny_generator_file(tmp_path / "checkpoints" / "generator.pt")
    load_generator(path)  # intact: loads
    record = torch.load(path, weights_only=True)
    flip_bytes_of(path, max(record["state_dict"].values(), key=torch.Tensor.numel))
    with pytest.raises(UserError) as refused:
        load_generator(path)
    text = str(refused.value)
    assert f"{path} is damaged: its contents do not match the checksum written with it" in text
    assert "Restore it" in text and "another run's generator.pt" in text and "\n" not in text
    assert sample_main([str(tmp_path), "--out", str(tmp_path / "grid.png")]) == 2
    err = capsys.readouterr().err
    assert "do not match the checksum" in err and err.count("\n") == 1
    assert not (tmp_path / "grid.png").exists()


def test_a_generator_pt_written_before_checksums_loads(tmp_path):
    path = tiny_generator_file(tmp_path / "generator.pt")
    record = torch.load(path, weights_only=True)
    assert record.pop("sha256") == digest(record)
    torch.save(record, path)
    gen = load_generator(path)
    for key, value in record["state_dict"].items():
        assert torch.equal(gen.state_dict()[key], value)
