"""Images from a trained generator: a grid, a folder of PNGs, or a latent walk.

    uv run python -m gan.sample RUN_DIR --n 64 --out grid.png     # one grid
    uv run python -m gan.sample RUN_DIR --n 500 --out samples/    # a folder of PNGs
    uv run python -m gan.sample RUN_DIR --interpolate 3 7 --n 10 --out walk.png

Every run ends by writing `checkpoints/generator.pt`: G's weights (the EMA's, with train.ema)
and its model config, all a program needs to make images with torch and gan/models.py alone,
none of pumpgan's training code:

    from gan.sample import load_generator
    gen = load_generator("outputs/DATE/TIME/checkpoints/generator.pt")
    images = gen(torch.randn(16, gen.dim_z, 1, 1))   # (16, 3, S, S) in [-1, 1]

G is used as in training, normalising by the statistics of the batch it makes (as the PyTorch
DCGAN example samples), so make images in batches of more than a few.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

from gan.config import ModelConfig, UserError
from gan.models import Generator

FORMAT = "pumpgan-generator-1"


def save_generator(path: Path, model_cfg: Any, gen: torch.nn.Module, step: int, ema: bool) -> None:
    """checkpoints/generator.pt: {format, model (the model config), state_dict, step, ema}."""
    from gan.runfolder import atomic_write  # the writer's side only

    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = {k: v for k, v in dict(model_cfg).items() if k in fields}
    state = {k: v.detach().cpu().contiguous() for k, v in gen.state_dict().items()}
    record = {"format": FORMAT, "model": model, "state_dict": state, "step": step, "ema": ema}
    atomic_write(path, lambda tmp: torch.save(record, tmp))


def load_generator(path: str | Path, device: str = "cpu") -> Generator:
    """A generator.pt as a Generator on `device`, in training mode (batch statistics); its
    noise length is `gen.dim_z`."""
    path = Path(path)
    try:
        record = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: pass a run folder or its generator.pt") from None
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: say which
        raise UserError(f"{path} cannot be read as a generator ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(f"{path} is not a pumpgan generator file (format {FORMAT})")
    cfg = ModelConfig(**record["model"])
    gen = Generator(cfg).to(device)
    gen.load_state_dict(record["state_dict"])
    return gen.train()


def generator_file(run_or_file: Path) -> Path:
    if run_or_file.is_dir():
        path = run_or_file / "checkpoints" / "generator.pt"
        if not path.is_file():
            raise UserError(
                f"{run_or_file} has no checkpoints/generator.pt: a run writes it when it ends "
                f"(completed, collapsed or interrupted); pass a run folder that ended."
            )
        return path
    return run_or_file


def noise(n: int, dim_z: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim_z, 1, 1, generator=torch.Generator().manual_seed(seed))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a (t=0) to b (t=1): points of a Gaussian's typical norm all
    along the way, where a straight line would pass nearer the origin."""
    a, b = a.flatten(), b.flatten()
    omega = torch.arccos((a / a.norm()).dot(b / b.norm()).clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a + (torch.sin(t * omega) / so)[:, None] * b


@torch.no_grad()
def generate(gen: Generator, z: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """G(z) in batches of nearly equal sizes (BatchNorm normalises by the batch), on the CPU."""
    device = next(gen.parameters()).device
    chunks = z.tensor_split(max(1, -(-len(z) // batch_size)))
    return torch.cat([gen(c.to(device)).float().cpu() for c in chunks])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan.sample",
        description="Images from a trained generator (a run folder's checkpoints/generator.pt).",
    )
    parser.add_argument("run", type=Path, help="a run folder, or a generator.pt file")
    parser.add_argument("--n", type=int, default=64, help="images (frames for --interpolate)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("samples.png"),
        help="a .png: one grid; anything else: a folder of one PNG per image",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument(
        "--interpolate",
        type=int,
        nargs=2,
        metavar=("SEED_A", "SEED_B"),
        help="a latent walk from the noise of SEED_A to that of SEED_B in --n frames",
    )
    parser.add_argument("--nrow", type=int, default=8, help="images per row of a grid")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        if args.n < 1:
            raise UserError(f"--n {args.n}: ask for at least one image")
        gen = load_generator(generator_file(args.run), args.device)
        if args.interpolate:
            a, b = (noise(1, gen.dim_z, s) for s in args.interpolate)
            z = slerp(a, b, torch.linspace(0, 1, args.n)).view(args.n, gen.dim_z, 1, 1)
            nrow = args.n if args.out.suffix == ".png" and args.n <= 16 else args.nrow
        else:
            z, nrow = noise(args.n, gen.dim_z, args.seed), args.nrow
        images = generate(gen, z)
        write(images, args.out, nrow)
    except UserError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    what = "grid" if args.out.suffix == ".png" else "folder"
    print(f"{len(images)} images of {images.shape[-1]} px -> {args.out} ({what})")
    return 0


def write(images: torch.Tensor, out: Path, nrow: int) -> None:
    from gan.runfolder import save_grid

    if out.suffix == ".png":
        out.parent.mkdir(parents=True, exist_ok=True)
        save_grid(images, out, nrow=nrow)
        return
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        save_grid(image[None], out / f"{i:05d}.png", nrow=1, padding=0)


if __name__ == "__main__":
    sys.exit(main())
