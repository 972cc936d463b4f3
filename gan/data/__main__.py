"""`python -m gan.data`: preview a data set as the model will see it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan.config import DataConfig
from gan.data.images import load_images
from gan.errors import UserError
from gan.files import save_grid


def main(argv: list[str] | None = None) -> None:
    """Preview a data set as the model will see it: `python -m gan.data --out grid.png`."""
    parser = argparse.ArgumentParser(
        prog="python -m gan.data",
        description=main.__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--root", help="a folder of images (default: the built-in pumpkins)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--num", type=int, default=64, help="images in the grid")
    parser.add_argument("--out", default="data_preview.png", help="PNG file to write")
    parser.add_argument("--cache-dir", default=DataConfig.cache_dir)
    parser.add_argument(
        "--on-corrupt",
        choices=["error", "skip"],
        default=DataConfig.on_corrupt,
        help="an image that cannot be decoded: stop with its name, or leave it out (as "
        "data.on_corrupt in a run)",
    )
    args = parser.parse_args(argv)
    cfg = DataConfig(
        name="folder" if args.root else "pumpkins",
        root=args.root,
        cache_dir=args.cache_dir,
        on_corrupt=args.on_corrupt,
    )
    try:
        images = load_images(cfg, args.size)[: args.num]
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    save_grid(images.float() / 127.5 - 1, Path(args.out))
    print(f"{args.out}: {len(images)} of {cfg.name} images at {args.size} px")


if __name__ == "__main__":
    main(sys.argv[1:])
