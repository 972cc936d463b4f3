"""DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020): the same random transforms on real AND generated images, every time D sees
either (D's step and G's), written as tensor arithmetic so that G's gradient flows through them.
D then never sees an un-augmented image, so it cannot tell real from fake by the augmentation,
and the augmentation cannot leak into G's images (which `augment=seed`'s real-only transforms
can: a G may learn to make rotated pumpkins).

Policy: `augment.diffaugment`, a comma-separated list of the paper's three transforms, e.g.
"color,translation,cutout" (`augment=diffaugment`):

- color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5), per image;
- translation: a shift of up to 1/8 of the side in x and y, per image, the border filled with 0;
- cutout: one square of half the side, at a random centre per image, set to 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

POLICIES = ("color", "translation", "cutout")


def parse(policy: str) -> list[str]:
    """ "color, translation" -> ["color", "translation"]; "" -> []."""
    return [p.strip() for p in policy.split(",") if p.strip()]


def diff_augment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """x (B, C, H, W), images in [-1, 1], transformed by `policy` with fresh random draws."""
    for name in policy:
        x = TRANSFORMS[name](x)
    return x


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]

    def draw(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * (hi - lo) + lo

    x = x + draw(-0.5, 0.5)  # brightness
    gray = x.mean(1, keepdim=True)
    x = (x - gray) * draw(0.0, 2.0) + gray  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * draw(0.5, 1.5) + mean  # contrast


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    # output pixel (y, x) reads input pixel (y + dy, x + dx) of the input padded by one zero
    # row and column all round; reads outside the image land on the padding
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (
        (rows >= cy - ch // 2)
        & (rows < cy - ch // 2 + ch)
        & (cols >= cx - cw // 2)
        & (cols < cx - cw // 2 + cw)
    )  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}
