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
    """Every image file under `root`, recursively, sorted; a clear error if there is none."""
    if not root.is_dir():
        raise UserError(
            f"data.root={str(root)!r} is not a folder. Point data.root at a folder of images "
            f"(png, jpg, jpeg, webp or bmp, searched recursively), e.g. "
            f"`python run.py data=folder data.root=~/pictures/pumpkins`."
        )
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise UserError(
            f"data.root={str(root)!r} holds no images: no file ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} anywhere below it. Add images, or point data.root "
            f"at the folder that has them."
        )
    return files


def _folder_key(root: Path, files: list[Path], image_size: int, cfg: DataConfig) -> str:
    """Changes when a file is added, removed or modified, or the decoding settings change."""
    h = hashlib.sha1(f"{image_size}|{list(cfg.background)}|{cfg.on_corrupt}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return h.hexdigest()[:16]


def decode_folder(root: Path, files: list[Path], image_size: int, cfg: DataConfig) -> np.ndarray:
    images, corrupt = [], []
    for f in files:
        try:
            images.append(decode_image(f, image_size, tuple(cfg.background)))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            if cfg.on_corrupt != "skip":
                raise UserError(
                    f"Cannot decode image {str(f)!r} ({type(e).__name__}: {e}). Remove or "
                    f"replace the file, or pass data.on_corrupt=skip to leave such files out."
                ) from e
            corrupt.append(f)
    if corrupt:
        log.warning(
            "Skipped %d corrupt image(s) under %s (data.on_corrupt=skip), first: %s",
            len(corrupt),
            root,
            corrupt[0],
        )
    if not images:
        raise UserError(
            f"data.root={str(root)!r}: none of its {len(files)} image files could "
            f"be decoded. Check the files, or point data.root elsewhere."
        )
    return np.stack(images)


def decode_image(path: Path, size: int, background: tuple[int, ...]) -> np.ndarray:
    """One file -> (3, size, size) uint8: EXIF-rotated, alpha composited onto `background`,
    resized so the short side is `size`, centre-cropped."""
    with Image.open(path) as file:
        img: Image.Image = ImageOps.exif_transpose(file)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            canvas = Image.new("RGBA", img.size, (*background, 255))
            img = Image.alpha_composite(canvas, img)
        img = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


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
