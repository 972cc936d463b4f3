"""Training images: decoded once into a uint8 cache, then batched and augmented as tensors.

Data flow (DESIGN.md section 5): images on disk, or the built-in pumpkin generator -> one uint8
array (N, 3, S, S) cached under `data.cache_dir`, keyed by the source and the size -> moved to the
device once -> per batch: random indices, scaling to [-1, 1], flips and affine warps on the
device. No per-image PIL work happens during training.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from gan import pumpkins
from gan.config import AugmentConfig, DataConfig, UserError
from gan.runfolder import atomic_write

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
                    f"pass data.on_corrupt=skip to leave such files out."
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


class BatchSampler:
    """Shuffled batches without replacement within an epoch; its state fits in a checkpoint."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        """Indices of the next batch (CPU int64); batch_size may exceed n (then repeats)."""
        chunks, need = [], self.batch_size
        while need:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.generator), 0
            take = min(need, self.n - self.pos)
            chunks.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(chunks)

    def state_dict(self) -> dict:
        return {"rng": self.generator.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["rng"])
        self.perm, self.pos = state["perm"], state["pos"]


def real_batch(
    images: torch.Tensor, cfg: AugmentConfig, memory_format: torch.memory_format
) -> torch.Tensor:
    """The batch D sees: uint8 images (B, 3, S, S) -> [-1, 1] -> `augment`ed -> memory_format."""
    x = augment(images.float().div_(127.5).sub_(1), cfg)
    return x.contiguous(memory_format=memory_format)


def augment(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Random flips and affine warps of a batch x (B, 3, S, S) in [-1, 1], on x's device.

    The affine part follows torchvision's RandomAffine (rotation, translation as a fraction of
    the side, zoom, x-shear, all uniform), with the border filled black as there. A flip of an
    image that is also warped is folded into its warp (the warp then samples the mirrored
    coordinates), so with every image warped (affine_p = 1, the seed's) the batch is resampled
    once and nothing else. No host sync (which images flip is not read back)."""
    flip, theta, apply = _draw_maps(x.shape[0], cfg, x.device)
    if cfg.affine_p >= 1:
        return _warp(x, theta)
    if cfg.affine_p > 0:
        x = torch.where(apply[:, None, None, None], _warp(x, theta), x)
    if cfg.hflip > 0:
        x = torch.where((flip & ~apply)[:, None, None, None], x.flip(-1), x)
    return x


def _draw_maps(
    b: int, cfg: AugmentConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`augment`'s random draws, in its order: which images flip (B,), each image's map (B, 2, 3)
    (its affine map if it is warped, else the identity) with its flip folded in, which images
    are warped (B,)."""
    no = torch.zeros(b, dtype=torch.bool, device=device)
    flip = torch.rand(b, device=device) < cfg.hflip if cfg.hflip > 0 else no
    theta = torch.eye(2, 3, device=device).repeat(b, 1, 1)
    apply = no
    if cfg.affine_p > 0:
        affine = _random_affine(b, cfg, device)
        apply = torch.rand(b, device=device) < cfg.affine_p
        theta = torch.where(apply[:, None, None], affine, theta)
    # warp(flip(x)) samples x at (-u, v) where warp(x) samples it at (u, v)
    theta[:, 0] *= torch.where(flip, -1.0, 1.0)[:, None]
    return flip, theta, apply


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) in [-1, 1] resampled bilinearly at theta (B, 2, 3) times each output
    pixel's centre (in [-1, 1] units, as F.affine_grid with align_corners=False), black (-1)
    outside."""
    b, _, h, w = x.shape
    # pixel centres; the grid is built by broadcasting, which is cheaper on a CPU than
    # affine_grid's batched matrix product with 3 rows
    u = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
    v = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
    t = theta.to(x.dtype)[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    grid = t[:, :, 0] * u + t[:, :, 1] * v[:, None] + t[:, :, 2]  # (B, 2, H, W)
    grid = grid.permute(0, 2, 3, 1)  # (B, H, W, 2): (x, y) per output pixel
    warped = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.sub_(1)


def _random_affine(b: int, cfg: AugmentConfig, device: torch.device) -> torch.Tensor:
    """(B, 2, 3) matrices mapping output to input coordinates in [-1, 1] units."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, device=device) * (hi - lo) + lo

    angle = uniform(-cfg.degrees, cfg.degrees) * (math.pi / 180)
    shear = uniform(-cfg.shear, cfg.shear) * (math.pi / 180)
    scale = uniform(cfg.scale_min, cfg.scale_max)
    # translation as a fraction of the side; the normalised image spans 2 units
    tx = uniform(-cfg.translate_x, cfg.translate_x) * 2
    ty = uniform(-cfg.translate_y, cfg.translate_y) * 2
    # forward map: shear along x, rotate, scale, shift; grid_sample needs output -> input,
    # so the matrix is inverted
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rotate = torch.stack([cos, -sin, sin, cos], -1).view(b, 2, 2)
    shear_x = torch.stack([one, tan, zero, one], -1).view(b, 2, 2)
    fwd = torch.zeros(b, 3, 3, device=device)
    fwd[:, :2, :2] = scale[:, None, None] * rotate @ shear_x
    fwd[:, 0, 2], fwd[:, 1, 2], fwd[:, 2, 2] = tx, ty, 1
    return torch.linalg.inv(fwd)[:, :2, :]


def main(argv: list[str] | None = None) -> None:
    """Preview a data set as the model will see it: `python -m gan.data --out grid.png`."""
    import argparse

    from gan.runfolder import save_grid

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--root", help="a folder of images (default: the built-in pumpkins)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--num", type=int, default=64, help="images in the grid")
    parser.add_argument("--out", default="data_preview.png", help="PNG file to write")
    parser.add_argument("--cache-dir", default=DataConfig.cache_dir)
    args = parser.parse_args(argv)
    cfg = DataConfig(
        name="folder" if args.root else "pumpkins", root=args.root, cache_dir=args.cache_dir
    )
    try:
        images = load_images(cfg, args.size)[: args.num]
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    save_grid(images.float() / 127.5 - 1, Path(args.out))
    print(f"{args.out}: {len(images)} of {cfg.name} images at {args.size} px")


if __name__ == "__main__":
    main()
