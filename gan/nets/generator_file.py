"""checkpoints/generator.pt: G alone, with its model config and a checksum of its contents,
written by every run that ends and read by gan.sample (and by programs without pumpgan's
training code: torch, gan/nets/models.py and this file are enough)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from gan.checksum import sealed, unseal
from gan.config import ModelConfig
from gan.errors import UserError
from gan.files import atomic_write
from gan.nets.models import Generator

FORMAT = "pumpgan-generator-1"


def save_generator(
    path: Path, model_cfg: Any, gen: torch.nn.Module, step: int, ema: bool, **more: Any
) -> None:
    """checkpoints/generator.pt (and best.pt): {format, model (the model config), state_dict,
    step, ema, `more` (best.pt: its swd), sha256 (`digest` of the rest)}."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = {k: v for k, v in dict(model_cfg).items() if k in fields}
    state = {k: v.detach().cpu().contiguous() for k, v in gen.state_dict().items()}
    record = {"format": FORMAT, "model": model, "state_dict": state, "step": step, "ema": ema}
    record.update(more)
    atomic_write(path, lambda tmp: torch.save(sealed(record), tmp))


def load_generator(path: str | Path, device: str = "cpu") -> Generator:
    """A generator.pt as a Generator on `device`, in training mode (batch statistics); its
    noise length is `gen.dim_z`."""
    return generator_from(read_generator(path, device), device)


def generator_from(record: dict[str, Any], device: str = "cpu") -> Generator:
    """The Generator of a generator.pt's record (`read_generator`), in training mode."""
    gen = Generator(ModelConfig(**record["model"])).to(device)
    gen.load_state_dict(record["state_dict"])
    return gen.train()


def read_generator(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """A generator.pt's record (`save_generator`), checked against its checksum."""
    path = Path(path)
    try:
        record = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: pass a run folder or its generator.pt") from None
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: say which
        raise UserError(f"{path} cannot be read as a generator ({type(e).__name__}: {e})") from None
    if isinstance(record, dict) and not unseal(record):
        raise UserError(
            f"{path} is damaged: its contents do not match the checksum written with it, so the "
            f"file changed on disk or in a copy after the run wrote it. Restore it from a good "
            f"copy, or use another run's generator.pt (every run writes one when it ends)."
        )
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(f"{path} is not a pumpgan generator file (format {FORMAT})")
    return record
