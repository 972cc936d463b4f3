"""DCGAN generator and discriminator (Radford et al. 2016), generalised by width and image size.

Both nets are stacks of stride-2 blocks between a 4x4 map and the image: 32 px has three blocks,
64 px four, 128 px five. Two layouts (`model.arch`):

- `dcgan`: G's hidden widths are gen_features x 8, 4, 2, 1 (at 64 px), D's disc_features x 1, 2,
  4, 8: the two nets are of similar size, which keeps the game balanced.
- `seed`: the PumpGAN article's pair: G's widths are gen_features x 32, 16, 8, 4, D's
  disc_features x 1, 1, 2, 4. Its D is tiny next to its G.

D returns one logit per image; the loss applies the sigmoid (BCE-with-logits is the article's
Sigmoid + BCELoss, computed stably), and D(x) is the sigmoid of the logit. gan/nets/fast.py may swap
some layers for subclasses that compute the same thing faster; the weights stay these.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.nn.utils.parametrize import is_parametrized

from gan.config import ModelConfig


def gen_widths(cfg: ModelConfig) -> list[int]:
    """Channels of G's hidden blocks, from the 4x4 map up: each block doubles the side."""
    blocks = int(math.log2(cfg.image_size)) - 2  # 3 at 32 px, 4 at 64, 5 at 128
    unit = 4 if cfg.arch == "seed" else 1
    return [cfg.gen_features * unit * 2 ** (blocks - 1 - i) for i in range(blocks)]


def disc_widths(cfg: ModelConfig) -> list[int]:
    """Channels of D's hidden blocks, from the image down: each block halves the side."""
    blocks = int(math.log2(cfg.image_size)) - 2
    if cfg.arch == "seed":
        return [cfg.disc_features] + [cfg.disc_features * 2**i for i in range(blocks - 1)]
    return [cfg.disc_features * 2**i for i in range(blocks)]


class Generator(nn.Module):
    """z (B, dim_z, 1, 1) -> image (B, 3, S, S) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dim_z = cfg.dim_z  # the noise length G takes
        widths = gen_widths(cfg)
        # (B, dim_z, 1, 1) -> (B, widths[0], 4, 4)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.dim_z, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        # (B, c_in, s, s) -> (B, c_out, 2s, 2s), up to (B, widths[-1], S/2, S/2)
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        # (B, widths[-1], S/2, S/2) -> (B, 3, S, S)
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """image (B, 3, S, S) -> one output per image (B,): a logit for the bce loss.

    batchnorm: BatchNorm in the hidden blocks (DCGAN). With `model.spectral_norm` every conv's
    weight is divided by its largest singular value (Miyato et al. 2018) and there is no
    BatchNorm, as in their SN-GAN; gan/run/train.py also leaves BatchNorm out for wgan-gp, whose
    per-image gradient penalty it would mix across the batch (Gulrajani et al. 2017)."""

    def __init__(self, cfg: ModelConfig, batchnorm: bool = True) -> None:
        super().__init__()
        widths = disc_widths(cfg)
        batchnorm = batchnorm and not cfg.spectral_norm

        def conv(c_in: int, c_out: int, stride: int, padding: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride, padding, bias=False)
            return nn.utils.parametrizations.spectral_norm(layer) if cfg.spectral_norm else layer

        # (B, 3, S, S) -> (B, widths[0], S/2, S/2); no BatchNorm on the input block (DCGAN)
        layers: list[nn.Module] = [conv(3, widths[0], 2, 1), nn.LeakyReLU(0.2, True)]
        # (B, c_in, s, s) -> (B, c_out, s/2, s/2), down to (B, widths[-1], 4, 4)
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [
                conv(c_in, c_out, 2, 1),
                *([nn.BatchNorm2d(c_out)] if batchnorm else []),
                nn.LeakyReLU(0.2, True),
            ]
        # (B, widths[-1], 4, 4) -> (B, 1, 1, 1)
        layers.append(conv(widths[-1], 1, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net[:-1](x)  # (B, widths[-1], 4, 4)
        # the head in fp32 even under bf16 autocast: the loss and the score read its logits
        with torch.autocast(x.device.type, enabled=False):
            return self.net[-1](features.float()).view(-1)


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            # a spectral-normed conv keeps its raw weight as `original`
            weight = m.weight
            if is_parametrized(m, "weight"):
                parametrizations = cast(nn.ModuleDict, m.parametrizations)
                weight = cast(torch.Tensor, parametrizations["weight"].original)
            nn.init.normal_(weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
