"""Optional speed-ups for built nets: layers swapped in place for subclasses that compute the same
thing faster on a CPU, in pure PyTorch.

`apply(gen, disc)` changes the class of some of gan/nets/models.py's layers; each swapped layer
keeps its parameters, its state_dict keys and its checkpoints, and `print(gen)` names the class that
runs. `hardware.fast_layers=false` leaves every layer the library's (gan/run/hardware.py decides).
What each swap gains in a training step, and how that was measured: docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan.nets.models import Discriminator, Generator


class _UpConvGemmGrad(torch.autograd.Function):
    """conv_transpose2d(x, w, stride=2, padding=1), 4x4 kernel, whose weight gradient is one
    GEMM: grad_w[i, o, ky, kx] = sum over (b, y, x) of x[b, i, y, x] * g[b, o, 2y+ky-1, 2x+kx-1]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        return F.conv_transpose2d(x, weight, stride=2, padding=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight, stride=2, padding=1)
        if ctx.needs_input_grad[1]:
            c_in, c_out = x.shape[1], grad.shape[1]
            rows = x.permute(0, 2, 3, 1).reshape(-1, c_in)  # (B*H*W, C_in)
            # the 4x4 output window each input pixel touches: (B, H, W, C_out, 4, 4)
            windows = F.pad(grad, (1, 1, 1, 1)).permute(0, 2, 3, 1).unfold(1, 4, 2).unfold(2, 4, 2)
            cols = windows.permute(0, 1, 2, 4, 5, 3).reshape(rows.shape[0], 16 * c_out)
            grad_w = (rows.t() @ cols).view(c_in, 4, 4, c_out).permute(0, 3, 1, 2)
        return grad_x, grad_w


class GemmGradUpConv(nn.ConvTranspose2d):
    """G's stride-2 block, ConvTranspose2d(c_in, c_out, 4, 2, 1), with its weight gradient as one
    GEMM on inputs up to `max_side` (the library's is slow on few, wide pixels)."""

    max_side = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.shape[-1] > self.max_side:
            return super().forward(x)
        device = x.device.type
        if not torch.is_autocast_enabled(device):
            return _UpConvGemmGrad.apply(x, self.weight)
        # under autocast in its dtype, as autocast runs the library's conv_transpose2d: the
        # Function computes in its inputs' one dtype (the weight's gradient flows back through
        # the cast to its fp32 parameter)
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return _UpConvGemmGrad.apply(x.to(dtype), self.weight.to(dtype))


def swap(module: nn.Module, cls: type[nn.Module]) -> None:
    """Make `module` an instance of `cls`, a subclass of its class that adds no state."""
    assert issubclass(cls, type(module)), (cls, type(module))
    module.__class__ = cls


def _gemm_grad(gen: Generator, disc: Discriminator) -> None:
    for layer in gen.net[1:]:
        if type(layer) is nn.ConvTranspose2d and layer.out_channels != 3:  # not the to-RGB layer
            swap(layer, GemmGradUpConv)


# the swaps, by the name summary.json records (`fast_layers`) and ab_step.py's --a-fast takes
SWAPS: dict[str, Callable[[Generator, Discriminator], None]] = {
    "gemm_grad": _gemm_grad,
}


def apply(gen: Generator, disc: Discriminator, names: list[str] | None = None) -> list[str]:
    """Swap the fast layers (all of SWAPS, or `names`) into built nets; returns the names."""
    names = list(SWAPS) if names is None else names
    for name in names:
        SWAPS[name](gen, disc)
    return names
