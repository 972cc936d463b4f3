"""Writing files so that a reader, a kill or a power cut sees the old file or the new one, never
half of one: every file pumpgan replaces (summary.json, checkpoints, grids, curves.png, the data
cache, trials.csv) goes through `atomic_write`; `save_grid` writes a grid of images as a PNG so.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call write(tmp) on a temp file beside `path`, flush it to disk, then rename it over
    `path`: a reader, a kill or a power cut sees the old file or the new one, never half of one.
    The file gets the mode of any new file (0666 less the umask), readable in a shared outputs/."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~UMASK)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, str(path)) from e  # name the file, not the temp
        raise
    sync_dir(path.parent)


def sync_dir(path: Path) -> None:
    """Make a rename in `path` durable (where the file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] as one PNG, `nrow` per row, on a black frame; returns the
    grid as a uint8 (3, H', W') tensor.
    (torchvision.utils.save_image does the same, but importing it costs seconds per run.)"""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, _, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = torch.zeros(
        3, rows * (h + padding) + padding, cols * (w + padding) + padding, dtype=torch.uint8
    )
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))
    return grid
