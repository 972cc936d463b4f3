"""Training images decoded once into a uint8 cache: the built-in pumpkins, or every image file
under `data.root` (EXIF-rotated, converted to 8-bit RGB, transparency composited, resized and
centre-cropped), as one array (N, 3, S, S) cached under `data.cache_dir`, keyed by the source
and the size. gan/data/augment.py does the rest on the device (docs/design.md, "Data flow").
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gan.config import DataConfig
from gan.data import pumpkins
from gan.errors import UserError
from gan.files import atomic_write

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# the most pixels a file may have, read from its header before decoding: a 40-megapixel photo
# (about 7700x5200) still decodes, at a peak of about 0.6 GB (the RGBA copies of compositing);
# a larger image would cost gigabytes to end up at model.image_size (PIL itself only warns at
# 89 M). A larger JPEG is decoded at 1/2 to 1/8 scale instead (libjpeg's draft), if that fits.
MAX_PIXELS = 40_000_000
# modes that PIL's convert("RGB") and convert("RGBA") map to 8-bit RGB correctly
_8BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
# 16-bit grey (PNG, TIFF) and "I", as PIL reads a 16-bit PGM: values 0-65535
_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# part of the folder cache key: bumped when decode_image's pixels change, so that a cache
# decoded by older code is not reused
_DECODE_VERSION = 2


class UnusableImage(ValueError):
    """A file that decode_image will not use (a broken symlink, too many pixels, a pixel mode
    without an 8-bit RGB meaning); the message says why."""


def load_images(cfg: DataConfig, image_size: int) -> torch.Tensor:
    """All training images as a uint8 tensor (N, 3, S, S), from the cache when it is current;
    a damaged cache file (a full disk, a copy cut short) is named and built again."""
    cache_dir = Path(os.path.expanduser(cfg.cache_dir))
    if cfg.name == "pumpkins":
        source = Path(pumpkins.__file__).read_bytes()
        key = hashlib.sha1(source).hexdigest()[:12]
        path = (
            cache_dir / f"pumpkins-{key}-seed{cfg.data_seed}-n{cfg.num_images}-{image_size}px.npy"
        )

        def build() -> np.ndarray:
            log.info(
                "Generating %d built-in pumpkins at %d px into %s", cfg.num_images, image_size, path
            )
            return pumpkins.generate(cfg.num_images, image_size, cfg.data_seed)

    else:
        root = Path(os.path.expanduser(str(cfg.root)))
        files = list_image_files(root)
        path = cache_dir / f"folder-{_folder_key(root, files, image_size, cfg)}.npy"

        def build() -> np.ndarray:
            log.info(
                "Decoding %d images under %s at %d px into %s", len(files), root, image_size, path
            )
            return decode_folder(root, files, image_size, cfg)

    if path.exists():
        try:
            return torch.from_numpy(np.load(path))
        except (ValueError, EOFError, OSError) as e:
            log.warning("The data cache %s is damaged (%s): building it again", path, e)
    images = build()
    _save_atomic(path, images)
    return torch.from_numpy(images)


def list_image_files(root: Path) -> list[Path]:
    """Every image file under `root`, recursively, sorted; a clear error if there is none.
    A broken symlink with an image's name is listed too, so that decoding names it (or counts
    it as skipped) instead of leaving it out unseen."""
    if not root.is_dir():
        raise UserError(
            f"data.root={str(root)!r} is not a folder. Point data.root at a folder of images "
            f"(png, jpg, jpeg, webp or bmp, searched recursively), e.g. "
            f"`python run.py data=folder data.root=~/pictures/pumpkins`."
        )
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and (p.is_file() or _is_broken_link(p))
    )
    if not files:
        raise UserError(
            f"data.root={str(root)!r} holds no images: no file ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} anywhere below it. Add images, or point data.root "
            f"at the folder that has them."
        )
    return files


def _is_broken_link(p: Path) -> bool:
    return p.is_symlink() and not p.exists()


def _folder_key(root: Path, files: list[Path], image_size: int, cfg: DataConfig) -> str:
    """Changes when a file is added, removed or modified, or the decoding settings change."""
    h = hashlib.sha1(
        f"{_DECODE_VERSION}|{image_size}|{list(cfg.background)}|{cfg.on_corrupt}".encode()
    )
    for f in files:
        # a broken symlink has no target to stat: its own entry, and mending it changes the key
        st = f.lstat() if _is_broken_link(f) else f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return h.hexdigest()[:16]


def decode_folder(root: Path, files: list[Path], image_size: int, cfg: DataConfig) -> np.ndarray:
    images, skipped = [], []
    for f in files:
        try:
            images.append(decode_image(f, image_size, tuple(cfg.background)))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            why = str(e) if isinstance(e, UnusableImage) else f"{type(e).__name__}: {e}"
            if cfg.on_corrupt != "skip":
                raise UserError(
                    f"Cannot decode image {str(f)!r} ({why}). Remove or replace the file, or "
                    f"pass data.on_corrupt=skip to leave such files out (python -m gan.data: "
                    f"--on-corrupt skip)."
                ) from e
            skipped.append(f"{f} ({why})")
    if skipped:
        log.warning(
            "Skipped %d corrupt image(s) under %s (data.on_corrupt=skip): %s%s",
            len(skipped),
            root,
            "; ".join(skipped[:5]),
            "; ..." if len(skipped) > 5 else "",
        )
    if not images:
        raise UserError(
            f"data.root={str(root)!r}: none of its {len(files)} image files could "
            f"be decoded. Check the files, or point data.root elsewhere."
        )
    return np.stack(images)


def decode_image(path: Path, size: int, background: tuple[int, ...]) -> np.ndarray:
    """One file -> (3, size, size) uint8: EXIF-rotated, converted to 8-bit RGB, transparency
    composited onto `background`, resized so the short side is `size`, centre-cropped.
    UnusableImage for a broken symlink, more than MAX_PIXELS or a mode it cannot convert."""
    if _is_broken_link(path):
        raise UnusableImage(f"a broken symlink, to {os.readlink(path)!r}")
    with warnings.catch_warnings():
        # MAX_PIXELS, checked from the header below, is the limit that applies here
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        file = Image.open(path)
    with file:
        _limit_pixels(file, size)
        img = _to_rgb(ImageOps.exif_transpose(file), background)
        img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def _limit_pixels(img: Image.Image, size: int) -> None:
    """Refuse an opened, not yet decoded image above MAX_PIXELS; a JPEG is first drafted to the
    smallest scale whose short side still has `size` pixels."""
    if img.width * img.height > MAX_PIXELS:
        img.draft(img.mode, (size, size))
    if img.width * img.height > MAX_PIXELS:
        raise UnusableImage(
            f"{img.width}x{img.height} = {img.width * img.height:,} pixels, above the limit of "
            f"{MAX_PIXELS:,} (MAX_PIXELS in gan/data.py): save a smaller copy"
        )


def _to_rgb(img: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """Any mode PIL opens -> 8-bit RGB, transparent pixels composited onto `background`."""
    if img.mode in _16BIT_MODES:
        img = _16bit_to_8bit(img)
    elif img.mode not in _8BIT_MODES:
        raise UnusableImage(
            f"pixel mode {img.mode}, which pumpgan does not convert to 8-bit RGB: save it as an "
            f"8- or 16-bit PNG or a JPEG"
        )
    if img.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        canvas = Image.new("RGBA", img.size, (*background, 255))
        img = Image.alpha_composite(canvas, img)
    return img.convert("RGB")


def _16bit_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit grey -> L, or LA where a tRNS value marks transparent pixels. Each value keeps its
    high byte, v >> 8 (65535 -> 255, 32896 -> 128), as PIL reads 16-bit RGB, RGBA and LA PNGs:
    a grey and a colour copy of one picture then agree. (PIL's convert clips at 255.)"""
    v = np.asarray(img)
    if img.mode == "I" and (v.min() < 0 or v.max() > 65535):
        raise UnusableImage(
            f"pixel mode I with values {v.min()} to {v.max()}, outside 16 bits (0-65535), "
            f"which pumpgan does not convert to 8-bit RGB: save it as an 8- or 16-bit PNG"
        )
    grey = Image.fromarray((v >> 8).astype(np.uint8))
    key = img.info.get("transparency")
    if key is not None:
        grey.putalpha(Image.fromarray(np.where(v == key, 0, 255).astype(np.uint8)))
    return grey


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Concurrent trials may build the same cache: each writes its own temp file, then renames."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file, not a name: np.save would append ".npy" to one
            np.save(f, array, allow_pickle=False)

    atomic_write(path, write)
