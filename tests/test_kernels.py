"""gan/kernels.c against the library: BatchNorm + activation, G's last layer's phase sums, and
the windows of G's GEMM weight gradient."""

import copy
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan import kernels
from gan.config import AugmentConfig, ModelConfig
from gan.data import real_batch
from gan.models import (
    Discriminator,
    DownConv,
    FromRGB,
    Generator,
    _weight_grad_by_gemm,
    conv_transpose_by_gemm,
    init_weights,
)

CL = torch.channels_last

if kernels.kernel() is None:  # no gcc here: the library's path is all there is
    pytest.skip("gan/kernels.c could not be built on this machine", allow_module_level=True)


def close(got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    """Equal to within `rel` of the largest value (bf16 keeps about 3 significant digits)."""
    scale = want.float().abs().max().item()
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=rel * scale)


def library_bn_act(x: torch.Tensor, bn: nn.BatchNorm2d, slope: float) -> torch.Tensor:
    y = bn(x)
    return F.leaky_relu(y, slope) if slope else F.relu(y)


@pytest.mark.parametrize(
    ("shape", "slope"),
    [
        ((16, 32, 8, 8), 0.0),  # G's blocks: BatchNorm + ReLU
        ((16, 16, 16, 16), 0.2),  # D's: BatchNorm + LeakyReLU(0.2); rows taken 16 at a time
        ((7, 3, 5, 5), 0.2),  # few channels, rows that do not group evenly
        ((4, 24, 3, 3), 0.0),
    ],
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_act_matches_the_library(shape, slope, momentum):
    """Output, input gradient, weight and bias gradients and running statistics agree with
    nn.BatchNorm2d + (Leaky)ReLU on the same bf16 channels-last input, to bf16 rounding (the
    kernel sums in fp32/fp64, the library in fp32), over two steps."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(shape[1], momentum=momentum)
    nn.init.normal_(bn.weight, 1.0, 0.3)
    nn.init.normal_(bn.bias, 0.0, 0.3)
    fused = copy.deepcopy(bn)
    for _ in range(2):
        # a large mean next to the spread: the statistics must not lose it
        x = (torch.randn(shape) * 2 + 5).to(torch.bfloat16).contiguous(memory_format=CL)
        assert kernels.applies(x, fused)
        grad = torch.randn(shape).to(torch.bfloat16).contiguous(memory_format=CL)
        outs = []
        for layer, run in ((bn, library_bn_act), (fused, kernels.batch_norm_act)):
            xi = x.clone().requires_grad_()
            y = run(xi, layer, slope)
            y.backward(grad)
            outs.append((y, xi.grad))
        (y_ref, dx_ref), (y, dx) = outs
        assert y.dtype == dx.dtype == torch.bfloat16
        assert y.is_contiguous(memory_format=CL) and dx.is_contiguous(memory_format=CL)
        assert "_BatchNormAct" in y.grad_fn.name()
        close(y, y_ref, 1e-2)
        close(dx, dx_ref, 2e-2)
    for name in ("weight", "bias"):
        close(getattr(fused, name).grad, getattr(bn, name).grad, 2e-3)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        close(getattr(fused, name), getattr(bn, name), 1e-3)


def test_batch_norm_act_without_running_stats_and_parameter_grads():
    """track_running_stats=False, and the G step's D (no weight gradients wanted)."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8, track_running_stats=False).requires_grad_(False)
    x = torch.randn(4, 8, 6, 6).to(torch.bfloat16).contiguous(memory_format=CL)
    xi = x.clone().requires_grad_()
    kernels.batch_norm_act(xi, bn, 0.2).sum().backward()
    xr = x.clone().requires_grad_()
    library_bn_act(xr, bn, 0.2).sum().backward()
    close(xi.grad, xr.grad, 2e-2)
    assert bn.weight.grad is None


def test_batch_norm_act_propagates_nan():
    """A NaN in the input makes its channel NaN, as the library's does: non-finite losses are
    caught by the training loop, not hidden here."""
    bn = nn.BatchNorm2d(4)
    x = torch.randn(2, 4, 4, 4).to(torch.bfloat16).contiguous(memory_format=CL)
    x[1, 2, 3, 0] = float("nan")
    y = kernels.batch_norm_act(x, bn, 0.0)
    assert y[:, 2].isnan().all() and not y[:, [0, 1, 3]].isnan().any()


@pytest.mark.parametrize(
    "x",
    [
        torch.randn(2, 4, 6, 6).to(torch.bfloat16),  # not channels-last
        torch.randn(2, 4, 6, 6).contiguous(memory_format=CL),  # fp32
    ],
    ids=["contiguous", "fp32"],
)
def test_batch_norm_act_elsewhere_is_the_library(x):
    bn = nn.BatchNorm2d(4)
    assert not kernels.applies(x, bn)
    torch.testing.assert_close(kernels.batch_norm_act(x, bn, 0.2), library_bn_act(x, bn, 0.2))
    bn.eval()
    assert not kernels.applies(x.to(torch.bfloat16).contiguous(memory_format=CL), bn)


@pytest.mark.parametrize(("c_in", "side"), [(16, 8), (5, 3), (8, 20)])  # 20: AVX-512 groups
def test_to_rgb_kernel_equals_the_shifted_sums(c_in, side):
    """G's last layer: the kernel's phase sums are the torch version's, bit for bit (same fp32
    sums in the same order), on a non-square input."""
    torch.manual_seed(0)
    x = torch.randn(3, c_in, side, side + 1).to(torch.bfloat16).contiguous(memory_format=CL)
    w = (torch.randn(c_in, 3, 4, 4) * 0.1).to(torch.bfloat16)
    y = conv_transpose_by_gemm(x, w, kernel=True)
    assert y.is_contiguous(memory_format=CL)
    assert torch.equal(y, conv_transpose_by_gemm(x, w, kernel=False))
    close(y, F.conv_transpose2d(x.double(), w.double(), stride=2, padding=1), 1e-2)


@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (2, 16, 8, 8), (1, 3, 2, 2)])
def test_up_windows_weight_gradient_equals_the_torch_version(shape):
    """G's GEMM weight gradient with the windows gathered by the kernel is the torch version's
    bit for bit (the same GEMM of the same values), on non-square inputs too, and matches
    the library's transposed-convolution weight gradient."""
    torch.manual_seed(0)
    b, c_in, h, w = shape
    x = torch.randn(b, c_in, h, w).to(torch.bfloat16).contiguous(memory_format=CL)
    grad = torch.randn(b, 7, 2 * h, 2 * w).to(torch.bfloat16).contiguous(memory_format=CL)
    got = _weight_grad_by_gemm(x, grad, kernel=True)
    assert torch.equal(got, _weight_grad_by_gemm(x, grad, kernel=False))
    weight = torch.zeros(c_in, 7, 4, 4, dtype=torch.float64, requires_grad=True)
    y = F.conv_transpose2d(x.double(), weight, stride=2, padding=1)
    (want,) = torch.autograd.grad(y, weight, grad.double())
    close(got, want, 1e-2)


@pytest.mark.parametrize(
    ("layer", "side", "function"),
    [(FromRGB(16), 32, "_DownConv"), (DownConv(12, 16), 8, "_DownConv")],
    ids=["from-rgb", "down-conv-8x8"],
)
def test_d_layers_under_bf16_autocast_match_the_library(layer, side, function):
    """D's first layer takes its input gradient, its stride-2 blocks on 8x8 inputs their weight
    gradient, from a GEMM and gan/kernels.c under CPU bf16 autocast; output and both gradients
    agree with nn.Conv2d's to bf16 rounding."""
    torch.manual_seed(0)
    library = nn.Conv2d(layer.in_channels, layer.out_channels, 4, 2, 1, bias=False)
    library.weight.data.copy_(layer.weight.data)
    x = torch.randn(8, layer.in_channels, side, side).contiguous(memory_format=CL)
    got = []
    for m in (layer, library):
        xm = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m.to(memory_format=CL)(xm)
        assert (function in y.grad_fn.name()) == (m is layer)
        (y.float() ** 2).sum().backward()
        got.append((y, xm.grad, m.weight.grad))
    for a, b in zip(*got, strict=True):
        close(a, b, 2e-2)


@pytest.mark.parametrize("side", [64, 24])  # AVX-512 blocks of 16 pixels, and a scalar tail
@pytest.mark.parametrize("which", ["seed", "half", "none"])
def test_real_batch_kernel_is_the_library_path(side, which, seed_augment):
    """The batch D sees, by kernels.warp_u8 in one pass, is the library's convert + augment +
    channels-last from the same random draws (to float rounding); without augmentation it is
    the images scaled to [-1, 1], exactly at power-of-two sizes (where pixel centres are exact
    binary fractions)."""
    half = replace(seed_augment, affine_p=0.5, degrees=30)
    cfg = {"seed": seed_augment, "half": half, "none": AugmentConfig()}
    images = torch.randint(0, 256, (32, 3, side, side), dtype=torch.uint8)
    torch.manual_seed(0)
    got = real_batch(images, cfg[which], CL, kernel=True)
    torch.manual_seed(0)
    want = real_batch(images, cfg[which], CL, kernel=False)
    assert got.dtype == torch.float32 and got.is_contiguous(memory_format=CL)
    if which == "none" and side == 64:
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_warp_far_outside_or_nan_is_black():
    images = torch.full((3, 3, 16, 16), 255, dtype=torch.uint8)
    theta = torch.tensor([[1.0, 0, 5], [0, 1, 0]]).repeat(3, 1, 1)  # shifted off the image
    theta[1, 0, 0] = float("nan")
    theta[2, 1, 2] = -1e30
    assert torch.equal(kernels.warp_u8(images, theta), torch.full((3, 3, 16, 16), -1.0))


def test_models_with_cpu_kernels_are_as_close_to_fp32_as_the_library():
    """The same G and D (same checkpoint keys) in bf16 channels-last with cpu_kernels on and
    off, against fp32: images, logits and the gradients of G's and D's first and last layers
    are no further from fp32 with the kernels than without (bf16 alone moves G's gradients by
    up to ~25% of their largest value at this tiny width; the kernels must not add to that)."""
    cfg = ModelConfig(arch="seed", gen_features=4, disc_features=4, dim_z=16, image_size=32)
    results = {}
    for name, own, bf16 in (("fp32", False, False), ("library", False, True), ("own", True, True)):
        torch.manual_seed(1)
        gen, disc = Generator(cfg, own), Discriminator(cfg, own)
        init_weights(gen)
        init_weights(disc)
        gen.to(memory_format=CL)
        disc.to(memory_format=CL)
        z = torch.randn(16, 16, 1, 1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fake = gen(z)
            logits = disc(fake)
        logits.sum().backward()
        layers = (gen.net[0], gen.net[-2], disc.net[0], disc.net[-1])
        results[name] = [fake, logits, *(m.weight.grad for m in layers)]
        keys = results.setdefault("keys", gen.state_dict().keys())
        assert gen.state_dict().keys() == keys
    for i, want in enumerate(results["fp32"]):
        scale = want.abs().max()
        error = {
            k: ((results[k][i].float() - want).abs().max() / scale).item()
            for k in ("library", "own")
        }
        assert error["own"] <= 1.25 * error["library"] + 5e-3, (i, error)


def test_without_a_compiler_the_library_serves():
    """No gcc: a warning, kernel() is None, and training-mode layers still run."""
    code = (
        "import torch; from gan import kernels; from gan.models import Generator; "
        "from gan.config import ModelConfig; assert kernels.kernel() is None; "
        "g = Generator(ModelConfig(gen_features=4, dim_z=8, image_size=32)).to(memory_format="
        "torch.channels_last)\nwith torch.autocast('cpu', dtype=torch.bfloat16): "
        "print(g(torch.randn(2, 8, 1, 1)).shape)"
    )
    env = {**os.environ, "CC": "/nonexistent/gcc"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([2, 3, 32, 32])" in out.stdout
    assert "no C compiler" in out.stderr
