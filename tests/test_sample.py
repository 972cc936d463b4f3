"""gan.sample on bad input: each is refused with exit code 2 and one paragraph, nothing written;
many images go to a folder a batch at a time."""

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from gan.config import ModelConfig
from gan.nets.models import Generator
from gan.sample import (
    BATCH,
    GRID_LIMIT,
    batch_sizes,
    images_of,
    main,
    noise_batches,
    save_generator,
    write_folder,
)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder holding only a tiny generator.pt (32 px)."""
    cfg = ModelConfig(gen_features=4, disc_features=4, dim_z=8)
    path = tmp_path / "run" / "checkpoints" / "generator.pt"
    path.parent.mkdir(parents=True)
    save_generator(path, dataclasses.asdict(cfg), Generator(cfg), step=5, ema=False)
    return tmp_path / "run"


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """gan.sample ARGS exits with 2 and one paragraph on stderr, which is returned."""
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("Error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and not captured.out
    return captured.err


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("n", [GRID_LIMIT + 1, 3_000_000])
def test_too_many_images_for_a_grid_are_refused_at_once(run, tmp_path, capsys, n):
    before = files_under(tmp_path)
    started = time.monotonic()
    err = refused(capsys, str(run), "--n", str(n), "--out", str(tmp_path / "new" / "grid.png"))
    assert time.monotonic() - started < 5
    assert f"--n {n} is too many for one grid" in err and f"at most {GRID_LIMIT} images" in err
    assert "Pass a folder as --out" in err
    assert files_under(tmp_path) == before and not (tmp_path / "new").exists()


def test_many_images_go_to_a_folder_in_batches(run, tmp_path, capsys):
    out = tmp_path / "pngs"
    assert main([str(run), "--n", "300", "--out", str(out)]) == 0
    assert "300 images of 32 px" in capsys.readouterr().out
    assert [p.name for p in files_under(out)] == [f"{i:05d}.png" for i in range(300)]
    assert batch_sizes(300) == [60] * 5  # nearly equal batches: none of a few images
    sizes = batch_sizes(3_000_000)
    assert sum(sizes) == 3_000_000 and max(sizes) <= BATCH and min(sizes) >= BATCH - 1


def test_a_folder_is_written_as_each_batch_is_made(run, tmp_path):
    """Only one batch of images exists at a time: a batch is made when the one before is
    written."""
    from gan.sample import load_generator

    gen = load_generator(run / "checkpoints" / "generator.pt")
    out = tmp_path / "pngs"
    out.mkdir()
    written_before_each_batch = []

    def noise():
        for z in noise_batches(200, gen.dim_z, seed=0):
            written_before_each_batch.append(len(files_under(out)))
            yield z

    assert write_folder(images_of(gen, noise()), out, 200) == 32
    assert written_before_each_batch == [0, 50, 100, 150]
    assert len(files_under(out)) == 200


@pytest.mark.parametrize("nrow", ["0", "-3"])
def test_nrow_below_one_is_refused(run, tmp_path, capsys, nrow):
    err = refused(capsys, str(run), "--nrow", nrow, "--out", str(tmp_path / "grid.png"))
    assert f"--nrow {nrow}: a grid has at least one image per row" in err
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--interpolate", "1", "2", "--n", "1"], "--n 1: a latent walk has at least two frames"),
        (["--interpolate", "-1", "2"], "seed -1: a seed is an integer from 0 to 2**64 - 1"),
        (["--interpolate", "1", str(2**64)], f"seed {2**64}: a seed is an integer from 0"),
        (["--interpolate", "4", "4"], "--interpolate 4 4: a walk from a seed to itself"),
        (["--seed", "-5"], "seed -5: a seed is an integer from 0 to 2**64 - 1"),
        (["--seed", str(2**64)], f"seed {2**64}: a seed is an integer from 0 to 2**64 - 1"),
    ],
    ids=["one-frame", "negative-seed-a", "huge-seed-b", "same-seeds", "negative", "huge"],
)
def test_seeds_and_walks_out_of_range_are_refused(run, tmp_path, capsys, args, words):
    err = refused(capsys, str(run), *args, "--out", str(tmp_path / "walk.png"))
    assert words in err
    assert not (tmp_path / "walk.png").exists()


def test_the_largest_seed_is_taken(run, tmp_path):
    walk = ["--interpolate", "0", str(2**64 - 1), "--n", "3"]
    assert main([str(run), *walk, "--out", str(tmp_path / "walk.png")]) == 0


def test_no_images_are_refused(run, tmp_path, capsys):
    err = refused(capsys, str(run), "--n", "0", "--out", str(tmp_path / "grid.png"))
    assert "--n 0: ask for at least one image" in err


@pytest.mark.parametrize("out", ["file/grid.png", "file/pngs", "file", "folder.png"])
def test_an_out_that_cannot_be_written_is_one_paragraph(run, tmp_path, capsys, out):
    """Tests run as root, whom no file mode stops: a path through a regular file does."""
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder.png").mkdir()
    err = refused(capsys, str(run), "--n", "4", "--out", str(tmp_path / out))
    assert f"--out {tmp_path / out} cannot be written" in err
    assert "Pass an --out in a folder you can write to" in err
    assert (tmp_path / "file").read_text() == "not a folder"
    assert not list((tmp_path / "folder.png").iterdir())


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 64)", "(default: samples.png)", "(default: 0)", "(default: 8)"):
        assert default in text
    assert "(default: cpu)" in text


def test_a_walk_to_a_folder_is_made_in_batches_too(run, tmp_path, capsys):
    out = tmp_path / "walk"
    assert main([str(run), "--interpolate", "3", "7", "--n", "100", "--out", str(out)]) == 0
    assert len(files_under(out)) == 100
    assert "100 images of 32 px" in capsys.readouterr().out


def test_the_noise_of_a_seed_is_the_same_in_batches_as_at_once():
    """The noise of a seed drawn a batch at a time is the noise drawn at once (as before)."""
    from gan.sample import noise

    batches = torch.cat(list(noise_batches(300, 100, seed=4)))
    assert torch.equal(batches, noise(300, 100, seed=4))
