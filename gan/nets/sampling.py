"""Images from G: in training mode, as the PyTorch DCGAN example samples (BatchNorm normalises
by the batch), in batches of nearly equal sizes, leaving G's running statistics as they were.
The run's grids and SWD (gan/run) and gan.sample all make their images here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

BATCH = 64  # images made at a time by default


def batch_sizes(n: int, batch_size: int = BATCH) -> list[int]:
    """n split into nearly equal batches of at most batch_size: G normalises by the batch, so
    no image is left to a batch of a few."""
    k = -(-n // batch_size)
    return [n // k + (i < n % k) for i in range(k)]


@torch.no_grad()
def sample(gen: torch.nn.Module, noise: torch.Tensor) -> torch.Tensor:
    """G(noise) on the CPU, in training mode as the DCGAN example does, leaving BatchNorm's
    running statistics untouched so that sampling never changes the training state."""
    saved = [b.clone() for b in gen.buffers()]
    images = gen(noise).float().cpu()
    for b, s in zip(gen.buffers(), saved, strict=True):
        b.copy_(s)
    return images


def images_of(gen: torch.nn.Module, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """G's images of each batch of noise (`sample`), made as they are asked for."""
    device = next(gen.parameters()).device
    for z in batches:
        yield sample(gen, z.to(device))


def generate(gen: torch.nn.Module, z: torch.Tensor, batch_size: int = BATCH) -> torch.Tensor:
    """G(z) on the CPU, in batches of nearly equal sizes of at most batch_size."""
    return torch.cat(list(images_of(gen, z.split(batch_sizes(len(z), batch_size)))))
