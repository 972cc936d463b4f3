"""DCGAN generator and discriminator (Radford et al. 2016), generalised by width and image size.

Both nets are stacks of stride-2 blocks between a 4x4 map and the image: 32 px has three blocks,
64 px four, 128 px five. Two layouts (`model.arch`):

- `dcgan`: G's hidden widths are gen_features x 8, 4, 2, 1 (at 64 px), D's disc_features x 1, 2,
  4, 8: the two nets are of similar size, which keeps the game balanced.
- `seed`: the PumpGAN article's pair: G's widths are gen_features x 32, 16, 8, 4, D's
  disc_features x 1, 1, 2, 4. Its D is tiny next to its G.

D returns one logit per image, computed in fp32 even under bf16 autocast; the loss applies the
sigmoid (BCE-with-logits is the article's Sigmoid + BCELoss, computed stably), and D(x) is the
sigmoid of the logit.

Some of G's layers are computed differently from the library's kernels where that is faster on
a CPU (same parameters, same checkpoints, tested equal): its first layer as a matrix product
(`Project`), and under CPU bf16 autocast the weight gradient of its first two stride-2 blocks
(`UpConv` on a 4x4 or 8x8 input) and the forward of its last layer (`ToRGB`) as GEMMs; and, with
`cpu_kernels`, each BatchNorm + activation of G and D as gan/kernels.c's fused kernel, D's
first layer's input gradient (`FromRGB`) and the weight gradient of its stride-2 blocks on 8x8
inputs (`DownConv`) as GEMMs and kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan import kernels
from gan.config import ModelConfig


def num_blocks(image_size: int) -> int:
    """Hidden blocks between the 4x4 map and the image: 3 at 32 px, 4 at 64, 5 at 128."""
    return int(math.log2(image_size)) - 2


def gen_widths(cfg: ModelConfig) -> list[int]:
    unit = 4 if cfg.arch == "seed" else 1
    k = num_blocks(cfg.image_size)
    return [cfg.gen_features * unit * 2 ** (k - 1 - i) for i in range(k)]


def disc_widths(cfg: ModelConfig) -> list[int]:
    k = num_blocks(cfg.image_size)
    if cfg.arch == "seed":
        return [cfg.disc_features] + [cfg.disc_features * 2**i for i in range(k - 1)]
    return [cfg.disc_features * 2**i for i in range(k)]


def _weight_grad_by_gemm(x: torch.Tensor, grad: torch.Tensor, kernel: bool) -> torch.Tensor:
    """The weight gradient of conv_transpose2d(x, w, stride=2, padding=1) with a 4x4 kernel, as
    one matrix product: grad_w[i, o, ky, kx] = sum over (b, y, x) of x[b, i, y, x] *
    grad[b, o, 2y + ky - 1, 2x + kx - 1]; the windows of `grad` gathered by gan/kernels.c's
    `up_windows` when `kernel` (bf16 channels-last grad: one pass, 1.5-2x faster than pad +
    unfold + copy), else by those."""
    c_in, c_out = x.shape[1], grad.shape[1]
    rows = x.permute(0, 2, 3, 1).reshape(-1, c_in)  # (B*H*W, C_in); a view in channels-last
    if kernel and grad.dtype == torch.bfloat16:
        cols = kernels.up_windows(grad.contiguous(memory_format=torch.channels_last))
    else:  # every output window that one input pixel touches: (B, H, W, C_out, 4, 4)
        windows = F.pad(grad, (1, 1, 1, 1)).permute(0, 2, 3, 1).unfold(1, 4, 2).unfold(2, 4, 2)
        cols = windows.permute(0, 1, 2, 4, 5, 3).reshape(rows.shape[0], 16 * c_out)
    return (rows.t() @ cols).view(c_in, 4, 4, c_out).permute(0, 3, 1, 2)


class _SmallUpConv(torch.autograd.Function):
    """conv_transpose2d (4x4 kernel, stride 2, padding 1) whose weight gradient is one GEMM.

    On a 4x4 input (G's first stride-2 block) oneDNN's bf16 weight gradient is slow: measured on
    2 Zen 4 cores at batch 128, 58 -> 25 ms (512 -> 256 channels), 329 -> 100 ms (1024 -> 512),
    1400 -> 420 ms (2048 -> 1024). On an 8x8 input it is a little faster too (256 -> 128: 26 ->
    24 ms alone, a 3% faster training step at widths 16 and 32 with the seed nets, steps of both
    alternating in one process); from 16x16 up oneDNN is as fast or faster, and in fp32 the GEMM
    only pays from 1024 channels, so the rest stays on the library's path."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, kernel: bool):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.kernel = kernel
        return F.conv_transpose2d(x, weight, stride=2, padding=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = F.conv2d(grad, weight, stride=2, padding=1) if ctx.needs_input_grad[0] else None
        grad_w = _weight_grad_by_gemm(x, grad, ctx.kernel) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None


# output pixel (2i + a, 2j + b) of a 4x4, stride-2, padding-1 transposed convolution sums kernel
# tap a + 1 at input row i with tap 3 at row i - 1 (a = 0), or tap 0 at row i + 1 (a = 1): per
# phase a, (tap at the same row, other tap, that tap's row offset); the same for columns
_PHASE_TAPS = ((1, 3, -1), (2, 0, 1))


def _add_shifted(dst: torch.Tensor, src: torch.Tensor, dy: int, dx: int) -> None:
    """dst[..., i, j] += src[..., i + dy, j + dx] wherever src has that pixel; dy, dx in -1..1."""
    h, w = dst.shape[-2:]
    dst[..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] += src[
        ..., max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)
    ]


def conv_transpose_by_gemm(x: torch.Tensor, weight: torch.Tensor, kernel: bool) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride=2, padding=1) with a 4x4 kernel, as one GEMM that
    computes every tap of every input pixel, then the sum of four taps per output pixel, in
    fp32: by gan/kernels.c's `to_rgb_phases` when `kernel` (bf16 channels-last x), else as four
    shifted adds per output phase. For few output channels (G's last layer, D's first layer's
    input gradient), where oneDNN's bf16 kernel runs at ~60 GFLOP/s; with few input channels
    too (16 -> 3) only with the kernel (3.6 ms against oneDNN's 4.7; the shifted adds take 6.0).
    Channels-last output in x's dtype."""
    b, c_in, h, w = x.shape
    c_out = weight.shape[1]
    cols = weight.permute(0, 2, 3, 1).reshape(c_in, 16 * c_out)  # (C_in, (ky, kx, C_out))
    if kernel and x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last):
        rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c_in)  # a view
        return kernels.to_rgb_phases((rows @ cols).view(b, h, w, 4, 4, c_out))
    pixels = x.permute(1, 0, 2, 3).reshape(c_in, b * h * w)  # a view for channels-last x
    acc = torch.promote_types(x.dtype, torch.float32)  # fp32 sums of bf16 taps
    taps = (cols.t() @ pixels).view(4, 4, c_out, b, h, w).to(acc)
    phases = torch.empty(2, 2, c_out, b, h, w, dtype=acc, device=x.device)
    for a, (ky, ky2, dy) in enumerate(_PHASE_TAPS):
        for c, (kx, kx2, dx) in enumerate(_PHASE_TAPS):
            phase = phases[a, c]  # output pixels (2i + a, 2j + c)
            phase.copy_(taps[ky, kx])
            _add_shifted(phase, taps[ky2, kx], dy, 0)
            _add_shifted(phase, taps[ky, kx2], 0, dx)
            _add_shifted(phase, taps[ky2, kx2], dy, dx)
    # interleave the phases into a channels-last (B, C_out, 2H, 2W), in memory (B, H, a, W, c, C)
    out = torch.empty(b, h, 2, w, 2, c_out, dtype=x.dtype, device=x.device)
    out.copy_(phases.permute(3, 4, 0, 5, 1, 2))
    return out.view(b, 2 * h, 2 * w, c_out).permute(0, 3, 1, 2)


class _ToRGB(torch.autograd.Function):
    """G's last layer (to 3 channels) with its forward by `conv_transpose_by_gemm`: measured on
    2 Zen 4 cores at batch 128, 64 px output, bf16: 13 -> 8 ms (64 input channels), 24-30 ->
    12-14 ms (128), 44-46 -> 17-20 ms (256). The backward is the library's, fast here."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, kernel: bool):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return conv_transpose_by_gemm(x, w, kernel)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x, grad_w = _library_grads(grad, x, weight, True, ctx.needs_input_grad[:2])
        return grad_x, grad_w, None


def _library_grads(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    transposed: bool,
    which: tuple[bool, ...],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The library's input and weight gradients (those `which` asks for, else None) of a 4x4,
    stride-2, padding-1 convolution, or transposed convolution, without bias."""
    if not any(which):
        return None, None
    # (grad, input, weight, bias sizes, stride, padding, dilation, transposed, output padding,
    # groups, which gradients)
    args = ([2, 2], [1, 1], [1, 1], transposed, [0, 0], 1, [*which, False])
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(grad, x, weight, None, *args)
    return grad_x, grad_w


class _DownConv(torch.autograd.Function):
    """conv2d (4x4 kernel, stride 2, padding 1) with one of its gradients from gan/kernels.c,
    the other the library's:

    - `input_by_gemm` (D's first layer): the input gradient, a transposed convolution to 3
      channels, by `conv_transpose_by_gemm`: on 2 Zen 4 cores at batch 128, 64 px, bf16: 4.7 ->
      3.6 ms (16 channels), 7.2 -> 4.2 ms (32), 12.6 -> 5.1 ms (64). The G step needs it.
    - else (D's stride-2 blocks on small inputs): the weight gradient as one GEMM of the output
      gradient with the input's windows (`up_windows`, the windows G's weight gradient uses),
      where oneDNN's bf16 weight gradient takes ~1 ms whatever the size (8x8 input: 1.2 -> 0.7
      ms at 32 -> 64 channels, 4.4 -> 2.9 at 64 -> 128)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, input_by_gemm: bool):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.input_by_gemm = input_by_gemm
        return F.conv2d(x, w, stride=2, padding=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        need_x, need_w = ctx.needs_input_grad[:2]
        gemm_x, gemm_w = need_x and ctx.input_by_gemm, need_w and not ctx.input_by_gemm
        grad_x, grad_w = _library_grads(
            grad, x, weight, False, (need_x and not gemm_x, need_w and not gemm_w)
        )
        if gemm_x:
            grad_x = conv_transpose_by_gemm(grad, weight, kernel=True)
        if gemm_w:
            c_out, c_in = weight.shape[:2]
            rows = grad.permute(0, 2, 3, 1).reshape(-1, c_out)  # (B*H*W, C_out), a view
            windows = kernels.up_windows(x.contiguous(memory_format=torch.channels_last))
            grad_w = (rows.t() @ windows).view(c_out, 4, 4, c_in).permute(0, 3, 1, 2)
        return grad_x, grad_w, None


def _cpu_bf16(x: torch.Tensor) -> bool:
    """True under CPU bf16 autocast for a CPU tensor: where the GEMM paths below pay."""
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


class UpConv(nn.ConvTranspose2d):
    """G's stride-2 block: nn.ConvTranspose2d(c_in, c_out, 4, 2, 1) (same weights, same
    checkpoints), taking the GEMM weight gradient of `_SmallUpConv` under CPU bf16 autocast on
    inputs up to `gemm_max_side` (4x4 and 8x8), its windows gathered by gan/kernels.c when
    `cpu_kernels`."""

    # the largest input side (under CPU bf16) that takes _SmallUpConv's GEMM weight gradient
    gemm_max_side = 8

    def __init__(self, c_in: int, c_out: int, cpu_kernels: bool = True) -> None:
        super().__init__(c_in, c_out, 4, 2, 1, bias=False)
        self.cpu_kernels = cpu_kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.shape[-1] > self.gemm_max_side or not _cpu_bf16(x):
            return super().forward(x)
        kernel = self.cpu_kernels and kernels.available()
        with torch.autocast("cpu", enabled=False):
            return _SmallUpConv.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), kernel)


class ToRGB(nn.ConvTranspose2d):
    """G's last layer: nn.ConvTranspose2d(c_in, 3, 4, 2, 1) (same weights, same checkpoints),
    forward by one GEMM under CPU bf16 autocast (`_ToRGB`)."""

    def __init__(self, c_in: int, c_out: int = 3, cpu_kernels: bool = True) -> None:
        super().__init__(c_in, c_out, 4, 2, 1, bias=False)
        self.cpu_kernels = cpu_kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not _cpu_bf16(x):
            return super().forward(x)
        kernel = self.cpu_kernels and kernels.available()
        with torch.autocast("cpu", enabled=False):
            return _ToRGB.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), kernel)


class FromRGB(nn.Conv2d):
    """D's first layer: nn.Conv2d(3, c_out, 4, 2, 1) (same weights, same checkpoints), its input
    gradient by gan/kernels.c (`_DownConv`) under CPU bf16 autocast on channels-last input."""

    def __init__(self, c_out: int, cpu_kernels: bool = True) -> None:
        super().__init__(3, c_out, 4, 2, 1, bias=False)
        self.cpu_kernels = cpu_kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        cl = x.is_contiguous(memory_format=torch.channels_last)
        if not (self.cpu_kernels and cl and _cpu_bf16(x) and kernels.available()):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return _DownConv.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), True)


class DownConv(nn.Conv2d):
    """D's stride-2 block after the first: nn.Conv2d(c_in, c_out, 4, 2, 1) (same weights, same
    checkpoints), taking `_DownConv`'s GEMM weight gradient under CPU bf16 autocast with
    `cpu_kernels` on channels-last inputs up to `gemm_max_side`."""

    # the largest input side that takes _DownConv's GEMM weight gradient
    gemm_max_side = 8

    def __init__(self, c_in: int, c_out: int, cpu_kernels: bool = True) -> None:
        super().__init__(c_in, c_out, 4, 2, 1, bias=False)
        self.cpu_kernels = cpu_kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        small = x.shape[-1] <= self.gemm_max_side
        if not (small and self.cpu_kernels and _cpu_bf16(x) and kernels.available()):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return _DownConv.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), False)


class Project(nn.ConvTranspose2d):
    """G's first layer, nn.ConvTranspose2d(dim_z, c_out, 4, 1, 0) on a 1x1 input, computed as
    the matrix product it is: 2.5-3x faster than the convolution kernel on the CPU (measured
    fp32 and bf16, 128-2048 channels, forward + backward at batch 128)."""

    def __init__(self, dim_z: int, c_out: int) -> None:
        super().__init__(dim_z, c_out, 4, 1, 0, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        w = self.weight  # (dim_z, C, 4, 4)
        if w.is_contiguous():  # (B, C*4*4) -> (B, C, 4, 4)
            return (z.flatten(1) @ w.flatten(1)).view(-1, w.shape[1], 4, 4)
        # channels-last: (B, 4*4*C) -> (B, 4, 4, C), seen as a channels-last (B, C, 4, 4)
        cols = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)
        return (z.flatten(1) @ cols).view(-1, 4, 4, w.shape[1]).permute(0, 3, 1, 2)


_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


def run_layers(layers: nn.Sequential, x: torch.Tensor, cpu_kernels: bool) -> torch.Tensor:
    """layers(x), with each BatchNorm2d and the (leaky) ReLU after it computed as one
    `kernels.batch_norm_act` when `cpu_kernels` (gan/kernels.c's kernel in CPU bf16
    channels-last training, the library's layers otherwise). The layers stay as they are, and
    so do the checkpoints."""
    i = 0
    while i < len(layers):
        layer, after = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if cpu_kernels and isinstance(layer, nn.BatchNorm2d) and isinstance(after, _ACTIVATIONS):
            slope = after.negative_slope if isinstance(after, nn.LeakyReLU) else 0.0
            x = kernels.batch_norm_act(x, layer, slope)
            i += 2
        else:
            x = layer(x)
            i += 1
    return x


class Generator(nn.Module):
    """z (B, dim_z, 1, 1) -> image (B, 3, S, S) in [-1, 1]. `cpu_kernels`: gan/kernels.c's
    kernels where they apply (`run_layers`, `ToRGB`); False: the library's throughout."""

    def __init__(self, cfg: ModelConfig, cpu_kernels: bool = True) -> None:
        super().__init__()
        self.cpu_kernels = cpu_kernels
        widths = gen_widths(cfg)
        # (B, dim_z, 1, 1) -> (B, widths[0], 4, 4)
        layers: list[nn.Module] = [
            Project(cfg.dim_z, widths[0]),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        # each block doubles the side: 4 -> 8 -> ... -> S/2
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [
                UpConv(c_in, c_out, cpu_kernels),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        # (B, widths[-1], S/2, S/2) -> (B, 3, S, S)
        layers += [ToRGB(widths[-1], cpu_kernels=cpu_kernels), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return run_layers(self.net, z, self.cpu_kernels)


class Discriminator(nn.Module):
    """image (B, 3, S, S) -> one logit per image (B,). `cpu_kernels`: see `run_layers`."""

    def __init__(self, cfg: ModelConfig, cpu_kernels: bool = True) -> None:
        super().__init__()
        self.cpu_kernels = cpu_kernels
        widths = disc_widths(cfg)
        # (B, 3, S, S) -> (B, widths[0], S/2, S/2); no BatchNorm on the input block (DCGAN)
        layers: list[nn.Module] = [
            FromRGB(widths[0], cpu_kernels),
            nn.LeakyReLU(0.2, True),
        ]
        # each block halves the side: S/2 -> ... -> 4
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [
                DownConv(c_in, c_out, cpu_kernels),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]
        # (B, widths[-1], 4, 4) -> (B, 1, 1, 1)
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = run_layers(self.net[:-1], x, self.cpu_kernels)  # (B, widths[-1], 4, 4)
        # the head in fp32 even under bf16 autocast: its logits are what the loss and the score
        # read, and it is a tiny layer
        with torch.autocast(x.device.type, enabled=False):
            return self.net[-1](features.float()).view(-1)


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
