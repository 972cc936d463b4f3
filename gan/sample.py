"""Images from a trained generator: a grid, a folder of PNGs, or a latent walk.

    uv run python -m gan.sample RUN_DIR --n 64 --out grid.png     # one grid
    uv run python -m gan.sample RUN_DIR --n 500 --out samples/    # a folder of PNGs
    uv run python -m gan.sample RUN_DIR --interpolate 3 7 --n 10 --out walk.png
    uv run python -m gan.sample RUN_DIR --which best              # G at the lowest SWD seen
    uv run python -m gan.sample RUN_DIR --export g.onnx           # G for onnxruntime
    uv run python -m gan.sample RUN_DIR --export g.safetensors    # weights + g.json

Every run ends by writing `checkpoints/generator.pt`: G's weights (the EMA's, with train.ema)
and its model config, all a program needs to make images with torch and gan/nets/ alone,
none of pumpgan's training code:

    from gan.sample import load_generator
    gen = load_generator("outputs/DATE/TIME/checkpoints/generator.pt")
    images = gen(torch.randn(16, gen.dim_z, 1, 1))   # (16, 3, S, S) in [-1, 1]

G is used as in training, normalising by the statistics of the batch it makes (as the PyTorch
DCGAN example samples), so make images in batches of more than a few.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from gan.errors import UserError
from gan.nets.export import FORMATS
from gan.nets.generator_file import (
    generator_from,
    load_generator,
    read_generator,
    save_generator,
)
from gan.nets.sampling import BATCH, batch_sizes, generate, images_of

# gan.sample is what a user imports (README): its names from gan/nets stay importable from here
__all__ = ["BATCH", "batch_sizes", "generate", "images_of", "load_generator", "save_generator"]

GRID_LIMIT = 4096  # images in one .png grid: a grid is put together in memory
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed's range (a negative seed aliases a large one)


WHICH = {"last": "generator.pt", "best": "best.pt"}  # --which: the file in checkpoints/


def generator_file(run_or_file: Path, which: str = "last") -> Path:
    """A run folder's G (`which`: the last, or the best of its evaluations), or a file as is."""
    if not run_or_file.is_dir():
        return run_or_file
    path = run_or_file / "checkpoints" / WHICH[which]
    if path.is_file():
        return path
    if which == "best":
        raise UserError(
            f"{run_or_file} has no checkpoints/best.pt: a run keeps its best G only when it "
            f"measures the SWD during training (eval.every > 0, e.g. `python run.py "
            f"eval.every=250`; the default study does). Use --which last for its last G."
        )
    raise UserError(
        f"{run_or_file} has no checkpoints/generator.pt: a run writes it when it ends "
        f"(completed, collapsed or interrupted); pass a run folder that ended."
    )


def noise(n: int, dim_z: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim_z, 1, 1, generator=torch.Generator().manual_seed(seed))


def noise_batches(n: int, dim_z: int, seed: int) -> Iterator[torch.Tensor]:
    """n noise vectors of `seed`, a batch at a time."""
    rng = torch.Generator().manual_seed(seed)
    for size in batch_sizes(n):
        yield torch.randn(size, dim_z, 1, 1, generator=rng)


def walk_batches(n: int, dim_z: int, seed_a: int, seed_b: int) -> Iterator[torch.Tensor]:
    """n points from the noise of seed_a to that of seed_b (`slerp`), a batch at a time."""
    a, b = noise(1, dim_z, seed_a), noise(1, dim_z, seed_b)
    for t in torch.linspace(0, 1, n).split(batch_sizes(n)):
        yield slerp(a, b, t).view(len(t), dim_z, 1, 1)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a (t=0) to b (t=1): points of a Gaussian's typical norm all
    along the way, where a straight line would pass nearer the origin."""
    a, b = a.flatten(), b.flatten()
    omega = torch.arccos((a / a.norm()).dot(b / b.norm()).clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a + (torch.sin(t * omega) / so)[:, None] * b


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gan.sample",
        description="Images from a trained generator (a run folder's checkpoints/generator.pt).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="a run folder, or a generator.pt file")
    parser.add_argument(
        "--which",
        choices=list(WHICH),
        default="last",
        help="a run folder's G: the last (checkpoints/generator.pt) or the one of the lowest SWD "
        "measured during training (checkpoints/best.pt, written with eval.every)",
    )
    parser.add_argument("--n", type=int, default=64, help="images (frames for --interpolate)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("samples.png"),
        help=f"a .png: one grid (of at most {GRID_LIMIT} images); anything else: a folder of "
        f"one PNG per image",
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
    parser.add_argument("--device", default="cpu", help="where G runs: cpu, cuda, cuda:1, mps")
    parser.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="instead of images, G for programs without pumpgan: FILE.onnx (the whole G, for "
        "onnxruntime) or FILE.safetensors (its weights, with FILE.json saying how to run them)",
    )
    return parser


def check(args: argparse.Namespace) -> None:
    """Refuse what would fail, or fill the memory, before anything is made or written."""
    if args.n < 1:
        raise UserError(f"--n {args.n}: ask for at least one image")
    if args.export is not None and args.export.suffix not in FORMATS:
        raise UserError(
            f"--export {args.export}: the file's suffix picks the format, one of "
            f"{', '.join(FORMATS)} (e.g. --export g.onnx)"
        )
    if args.nrow < 1:
        raise UserError(f"--nrow {args.nrow}: a grid has at least one image per row")
    if is_grid(args.out) and args.n > GRID_LIMIT:
        raise UserError(
            f"--n {args.n} is too many for one grid (--out {args.out}): a grid is put together "
            f"in memory and holds at most {GRID_LIMIT} images. Pass a folder as --out (e.g. "
            f"--out samples/) to write one PNG per image, a batch at a time."
        )
    for seed in [args.seed, *(args.interpolate or [])]:
        if not 0 <= seed <= SEED_MAX:
            raise UserError(f"seed {seed}: a seed is an integer from 0 to 2**64 - 1")
    if args.interpolate and args.n < 2:
        raise UserError(f"--n {args.n}: a latent walk has at least two frames (SEED_A, SEED_B)")
    if args.interpolate and args.interpolate[0] == args.interpolate[1]:
        raise UserError(
            f"--interpolate {args.interpolate[0]} {args.interpolate[1]}: a walk from a seed to "
            f"itself stands still; pass two different seeds"
        )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check(args)
        if args.export is not None:
            print(export(generator_file(args.run, args.which), args.export))
            return 0
        gen = load_generator(generator_file(args.run, args.which), args.device)
        if args.interpolate:
            batches = walk_batches(args.n, gen.dim_z, *args.interpolate)
            nrow = args.n if is_grid(args.out) and args.n <= 16 else args.nrow
        else:
            batches, nrow = noise_batches(args.n, gen.dim_z, args.seed), args.nrow
        side = write(images_of(gen, batches), args.out, args.n, nrow)
    except UserError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    what = "grid" if is_grid(args.out) else "folder"
    print(f"{args.n} images of {side} px -> {args.out} ({what})")
    return 0


def export(source: Path, out: Path) -> str:
    """G of `source` (a generator.pt or best.pt) as `out` (`gan.nets.export`); what was written."""
    from gan.nets.export import OPSET, export_onnx, export_safetensors

    record = read_generator(source)
    gen = generator_from(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".onnx":
        export_onnx(gen, gen.dim_z, out)
        return f"{source} -> {out} (ONNX {OPSET}: input z (B, {gen.dim_z}, 1, 1), output image)"
    about: dict[str, Any] = {
        k: record[k] for k in ("format", "model", "step", "ema", "swd") if k in record
    }
    info = export_safetensors(gen, {**about, "source": str(source)}, out)
    return f"{source} -> {out} (weights) + {info} (the model config and its layers)"


def is_grid(out: Path) -> bool:
    return out.suffix == ".png"


def write(batches: Iterable[torch.Tensor], out: Path, n: int, nrow: int) -> int:
    """The images as one grid or a folder of PNGs; returns their side in pixels. The folder is
    created before the first image is made, so an --out that cannot be written is refused at
    once."""
    try:
        if is_grid(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            return write_grid(batches, out, nrow)
        out.mkdir(parents=True, exist_ok=True)
        return write_folder(batches, out, n)
    except OSError as e:
        raise UserError(
            f"--out {out} cannot be written ({e.strerror or e}: {e.filename or out}). Pass an "
            f"--out in a folder you can write to: each folder on its path must exist or be "
            f"creatable, and none of them may be a file."
        ) from None


def write_grid(batches: Iterable[torch.Tensor], out: Path, nrow: int) -> int:
    from gan.files import save_grid

    images = torch.cat(list(batches))
    save_grid(images, out, nrow=nrow)
    return images.shape[-1]


def write_folder(batches: Iterable[torch.Tensor], out: Path, n: int) -> int:
    """One PNG per image, a batch at a time: only one batch is ever held in memory. Names are
    numbers of one width, so that they sort in order."""
    from gan.files import save_grid

    width, i, side = max(5, len(str(n - 1))), 0, 0
    for batch in batches:
        for image in batch:
            save_grid(image[None], out / f"{i:0{width}d}.png", nrow=1, padding=0)
            i += 1
        side = batch.shape[-1]
    return side


if __name__ == "__main__":
    sys.exit(main())
