"""A batch on the device: which images (BatchSampler, whose state a checkpoint keeps), scaled to
[-1, 1] and augmented (augment=seed's flip and RandomAffine, on the device, no PIL)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gan.config import AugmentConfig


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
