"""checkpoints/last.pt: what it holds (`training_state`: G, D, both optimizers, the step, the
wall time, the RNG states and the config; the sampler's, the score's and the fixed noise's state
besides), reading it back (`read_checkpoint`, checked against its checksum) and restoring a
resumed run from it (`restore`, `carry_over`)."""

from __future__ import annotations

import csv
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gan.checksum import unseal
from gan.data import BatchSampler
from gan.errors import UserError
from gan.nets.models import Discriminator, Generator
from gan.run.folder import RunFolder
from gan.run.score import ScoreTracker


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise UserError(
            f"resume={str(run_dir)!r}: no checkpoint at {path}. Pass the run folder of a run "
            f"that saved one (it writes checkpoints/last.pt every train.checkpoint_every steps)."
        )
    return read_checkpoint(path, what=f"resume={str(run_dir)!r}")


def read_checkpoint(path: Path, what: str) -> dict[str, Any]:
    """torch.load(path, weights_only=True), with a damaged file (one that cannot be read, or whose
    contents do not match the checksum written with them) or one that holds more than tensors
    and plain values (a pickled payload, which weights_only refuses to run) named in one clear
    UserError instead of torch's traceback or a run that goes on from damaged state. A file
    written before checksums has none and is read as before."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(
            f"{what}: {path} was refused: it holds objects other than tensors and plain values, "
            f"which pumpgan never writes and will not run (torch.load weights_only=True: "
            f"{str(e).splitlines()[0]}). Resume from a run folder pumpgan wrote."
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise UserError(
            f"{what}: {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}): the "
            f"file is damaged or truncated, e.g. by a full disk or a copy cut short. Restore it, "
            f"or start the run again."
        ) from None
    if isinstance(state, dict) and not unseal(state):
        raise UserError(
            f"{what}: {path} is damaged: its contents do not match the checksum written with "
            f"it, so the file changed on disk or in a copy after the run saved it. Restore it "
            f"from a good copy, resume from another run, or start the run again."
        )
    if not isinstance(state, dict) or "step" not in state:
        raise UserError(f"{what}: {path} is not a pumpgan checkpoint (no training step in it).")
    return state


def training_state(
    cfg: DictConfig,
    step: int,
    wall_s: float,
    gen: Generator,
    disc: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
) -> dict[str, Any]:
    """What checkpoints/last.pt holds besides the sampler's, the score's and the noise's state."""
    return {
        "step": step,
        "wall_s": wall_s,
        "gen": gen.state_dict(),
        "disc": disc.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "rng": get_rng_state(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def restore(
    state: dict[str, Any],
    gen: Generator,
    disc: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    sampler: BatchSampler,
    cfg: DictConfig,
) -> tuple[ScoreTracker, torch.Tensor]:
    """Load a checkpoint into the run's objects; returns its score tracker and fixed noise."""
    try:
        gen.load_state_dict(state["gen"])
        disc.load_state_dict(state["disc"])
    except RuntimeError as e:
        raise UserError(
            f"resume={cfg.resume!r}: the checkpoint's nets do not fit this run's model "
            f"({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}). A "
            f"resumed run keeps the model of the run it continues: drop model overrides."
        ) from None
    # the optimizers' states keep the learning rates and betas they were saved with; train()
    # then sets the config's (optim.*, or optim.schedule's at the resumed step: Schedule.apply),
    # so what the config shows is what trains
    opt_g.load_state_dict(state["opt_g"])
    opt_d.load_state_dict(state["opt_d"])
    sampler.load_state_dict(state["sampler"])
    tracker = ScoreTracker.from_state_dict(state["score"])
    s = cfg.score  # the same for the score's settings (its streak so far is the checkpoint's)
    tracker.eps, tracker.patience, tracker.min_diversity = s.eps, s.patience, s.min_diversity
    set_rng_state(state["rng"])
    return tracker, state["fixed_noise"]


def get_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def carry_over(source: Path, folder: RunFolder, step: int) -> list[list[Any]]:
    """A resumed run's history up to the checkpoint's step: its metrics rows (returned), its
    evaluations (eval.csv) and sample grids (copied)."""
    rows = []
    if (source / "metrics.csv").is_file():
        with open(source / "metrics.csv", newline="") as f:
            rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= step]
    folder.samples_dir.mkdir(parents=True, exist_ok=True)
    if (source / "eval.csv").is_file():
        with open(source / "eval.csv", newline="") as f:
            header, *evals = list(csv.reader(f))
        with open(folder.eval_path, "w", newline="") as f:
            csv.writer(f).writerows([header, *(r for r in evals if r and int(r[0]) <= step)])
    for png in sorted((source / "samples").glob("step_*.png")):
        if int(png.stem.removeprefix("step_")) <= step:
            shutil.copy2(png, folder.samples_dir / png.name)
    return rows
