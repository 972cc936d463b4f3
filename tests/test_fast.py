"""gan/fast.py's swapped layers compute what the library's layers compute, keep the weights and
checkpoints, and a run with them trains as one without."""

import copy

import pytest
import torch
from torch import nn

from gan.config import ModelConfig
from gan.nets import fast
from gan.nets.models import Discriminator, Generator


def pair(layer: nn.Module, cls: type[nn.Module]) -> tuple[nn.Module, nn.Module]:
    """(a copy of `layer` swapped to `cls`, `layer`), both fp64, same weights."""
    swapped = copy.deepcopy(layer)
    fast.swap(swapped, cls)
    return swapped.double(), layer.double()


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    ("layer", "cls", "side"),
    [
        (nn.ConvTranspose2d(12, 8, 4, 2, 1, bias=False), fast.GemmGradUpConv, 4),
        (nn.ConvTranspose2d(12, 8, 4, 2, 1, bias=False), fast.GemmGradUpConv, 8),
    ],
    ids=["gemm-grad-4x4", "gemm-grad-8x8"],
)
def test_swapped_layers_compute_the_library_convolution(layer, cls, side, fmt):
    """In fp64 they agree with the library's layer to rounding, forward and both gradients,
    and keep the memory format."""
    swapped, library = pair(layer, cls)
    for m in (swapped, library):
        m.to(memory_format=fmt)
    x = torch.randn(3, layer.in_channels, side, side, dtype=torch.float64)
    x = x.contiguous(memory_format=fmt).requires_grad_()
    y, y_ref = swapped(x), library(x)
    assert y.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, swapped.weight], grad)
    want = torch.autograd.grad(y_ref, [x, library.weight], grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gemm_weight_gradient_passes_gradcheck():
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast._UpConvGemmGrad.apply, (x, w))


def test_apply_keeps_weights_and_state_dict_and_shows_in_print():
    cfg = ModelConfig(arch="seed", gen_features=2, disc_features=2, dim_z=8, image_size=64)
    gen, disc = Generator(cfg), Discriminator(cfg)
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    params = [id(p) for p in gen.parameters()]
    assert fast.apply(gen, disc) == list(fast.SWAPS)
    assert type(gen.net[0]) is nn.ConvTranspose2d  # G's first layer (1x1 -> 4x4) stays
    # every stride-2 block of G takes the swap; it keeps the library's path above 8x8 inputs
    assert [type(m) for m in gen.net if isinstance(m, nn.ConvTranspose2d)][1:-1] == [
        fast.GemmGradUpConv
    ] * 3
    assert type(gen.net[-2]) is nn.ConvTranspose2d  # the to-RGB layer stays
    assert [id(p) for p in gen.parameters()] == params
    assert list(gen.state_dict()) == list(before)
    for k, v in gen.state_dict().items():
        assert torch.equal(v, before[k])
    assert "GemmGradUpConv(64, 32, kernel_size=(4, 4)" in repr(gen)


def test_a_net_with_swaps_trains_like_the_plain_one():
    """Same init, same batches: G's outputs after a few Adam steps agree to float rounding."""
    cfg = ModelConfig(arch="dcgan", gen_features=4, disc_features=4, dim_z=8, image_size=32)
    outs = []
    for swapped in (False, True):
        torch.manual_seed(0)
        gen, disc = Generator(cfg), Discriminator(cfg)
        if swapped:
            fast.apply(gen, disc)
        opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
        z = torch.randn(8, 8, 1, 1)
        for _ in range(3):
            opt.zero_grad()
            disc(gen(z)).mean().backward()
            opt.step()
        outs.append(gen(z).detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_under_bf16_autocast_the_swap_computes_in_bf16_as_the_library(fmt):
    """Under autocast the swap casts as autocast casts the library's conv_transpose2d: a bf16
    output equal to the library's, and gradients that agree to bf16 rounding, the weight's
    arriving in fp32 on the fp32 parameter."""
    layer = nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False).to(memory_format=fmt)
    swapped = copy.deepcopy(layer)
    fast.swap(swapped, fast.GemmGradUpConv)
    x = torch.randn(8, 32, 8, 8).contiguous(memory_format=fmt).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_ref = swapped(x), layer(x)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, swapped.weight], grad)
    want = torch.autograd.grad(y_ref, [x, layer.weight], grad)
    assert got[1].dtype == torch.float32
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
