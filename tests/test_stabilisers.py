"""The stabilisers a study sweeps (losses, spectral norm, R1, EMA, DiffAugment) and gan.sample:
each on the formula it claims, then a few real CPU steps of it inside a run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan import config
from gan.config import ModelConfig
from gan.errors import UserError
from gan.nets import diffaugment
from gan.nets.losses import LOSSES, gradient_penalty, r1_penalty
from gan.nets.models import Discriminator, Generator, init_weights
from gan.nets.step import EMA, Objective
from gan.run.folder import read_metrics
from gan.run.train import train
from gan.sample import load_generator, slerp
from gan.sample import main as sample_main

from .conftest import ROOT

# loss_d and loss_g of the first 5 steps of `tiny_cfg("train.steps=5", ...)` (seed 0, fp32, CPU)
GOLDEN = {
    "hinge": (
        [1.690963, 1.436933, 1.2732, 0.966811, 0.85828],
        [0.225762, 0.217561, 0.279362, 0.303315, 0.300409],
    ),
    "lsgan": (
        [0.368211, 0.167873, 0.120667, 0.060998, 0.061406],
        [0.603156, 0.510159, 0.483106, 0.455012, 0.441814],
    ),
    "wgan-gp": (  # with optim.n_critic=2
        [9.96762276, 9.96309185, 9.95792007, 9.94894409, 9.94086552],
        [-6.485e-05, -0.00017212, -0.00022696, -0.00038265, -0.00056763],
    ),
}


@pytest.mark.parametrize("loss", list(GOLDEN))
def test_golden_losses(tiny_cfg, tmp_path, loss):
    extra = ["optim.n_critic=2"] if loss == "wgan-gp" else []
    train(tiny_cfg("train.steps=5", f"optim.loss={loss}", *extra), tmp_path / "run")
    m = read_metrics(tmp_path / "run" / "metrics.csv")
    want_d, want_g = GOLDEN[loss]
    torch.testing.assert_close(
        torch.tensor(m["loss_d"]), torch.tensor(want_d), rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(
        torch.tensor(m["loss_g"]), torch.tensor(want_g), rtol=1e-4, atol=1e-6
    )
    assert all(0 < v < 1 for v in m["d_real"] + m["d_fake"])  # sigmoid of D: the score's means


def test_each_loss_is_its_formula():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.5, -3.0])
    d, g = LOSSES["hinge"]
    assert d(real, fake).item() == pytest.approx((0 + 1.5) / 2 + (1.5 + 0) / 2)
    assert g(fake).item() == pytest.approx(1.25)
    d, g = LOSSES["lsgan"]
    assert d(real, fake).item() == pytest.approx(0.5 * (1 + 2.25) / 2 + 0.5 * (0.25 + 9) / 2)
    assert g(fake).item() == pytest.approx(0.5 * (0.25 + 16) / 2)
    d, g = LOSSES["wgan-gp"]
    assert d(real, fake).item() == pytest.approx(-1.25 - 0.75)
    assert set(LOSSES) == set(config.LOSSES)


def test_penalties_on_a_linear_critic():
    """For D(x) = <w, x>, grad D = w everywhere: GP = (|w| - 1)^2, R1 = |w|^2."""
    w = torch.randn(3, 4, 4)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((w.norm() - 1).item() ** 2)
    x = real.clone().requires_grad_(True)
    assert r1_penalty(critic(x), x).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def test_lazy_r1_runs_every_r1_every_steps():
    obj = Objective(r1_gamma=1.0, r1_every=4)
    assert [s for s in range(1, 13) if obj.r1_due(s)] == [1, 5, 9]
    assert not any(Objective(r1_gamma=0.0).r1_due(s) for s in range(1, 9))


@pytest.mark.parametrize("policy", [["color"], ["translation"], ["cutout"], diffaugment.POLICIES])
def test_diffaugment_lets_gradients_reach_g(policy):
    torch.manual_seed(0)
    cfg = ModelConfig(gen_features=4, disc_features=4, image_size=32)
    gen, disc = Generator(cfg), Discriminator(cfg)
    init_weights(gen)
    images = gen(torch.randn(8, cfg.dim_z, 1, 1))
    disc(diffaugment.diff_augment(images, list(policy))).sum().backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0 and p.grad.isfinite().all(), name


def test_diffaugment_transforms_do_what_they_say():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32) * 2 - 1
    cut = diffaugment.cutout(x)
    zeroed = (cut == 0).all(1).float().mean((1, 2))  # a 16x16 square, less what leaves the image
    assert zeroed.max().item() == pytest.approx(0.25) and zeroed.min() > 0
    moved = diffaugment.translation(x)
    assert moved.shape == x.shape
    assert (moved == 0).all(1).any()  # the border the shift uncovers
    # every image is its original shifted by at most 4 px in x and y
    for i in range(4):
        assert any(
            torch.equal(moved[i, :, 4:-4, 4:-4], x[i, :, 4 - dy : 28 - dy, 4 - dx : 28 - dx])
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )
    coloured = diffaugment.color(x)
    assert not torch.allclose(coloured.mean((1, 2, 3)), x.mean((1, 2, 3)))
    assert diffaugment.parse(" color , cutout,") == ["color", "cutout"]


def test_spectral_norm_bounds_d_and_drops_batchnorm():
    cfg = ModelConfig(gen_features=4, disc_features=8, image_size=32, spectral_norm=True)
    disc = Discriminator(cfg)
    init_weights(disc)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())
    for _ in range(30):  # power iterations run in training mode
        disc(torch.randn(4, 3, 32, 32))
    for m in disc.modules():
        if isinstance(m, torch.nn.Conv2d):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.05)
    plain = Discriminator(ModelConfig(gen_features=4, disc_features=8, image_size=32))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(
        isinstance(m, torch.nn.BatchNorm2d)
        for m in Discriminator(ModelConfig(), batchnorm=False).modules()
    )


def test_ema_is_the_moving_average_of_g():
    cfg = ModelConfig(gen_features=4, image_size=32)
    gen = Generator(cfg)
    ema = EMA(gen, decay=0.9)
    before = [p.clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(1.0)
    ema.update(gen)
    for b, e, g in zip(before, ema.model.parameters(), gen.parameters(), strict=True):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * g)
        assert not e.requires_grad


def test_every_stabiliser_trains_inside_a_run(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "train.steps=12",
        "optim.loss=hinge",
        "optim.n_critic=2",
        "optim.r1_gamma=0.1",
        "optim.r1_every=4",
        "model.spectral_norm=true",
        "augment=diffaugment",
        "train.ema=0.99",
        "eval.num_images=64",
    )
    train(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["status"] in ("completed", "collapsed") and summary["quality"]["swd"] > 0
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert "gen_ema" in state
    # n_critic=2: D took twice as many Adam steps as G
    assert state["opt_d"]["state"][0]["step"] == 2 * state["opt_g"]["state"][0]["step"] == 24
    # generator.pt holds the EMA's weights, not G's
    record = torch.load(tmp_path / "run/checkpoints/generator.pt", weights_only=True)
    assert record["ema"] and record["step"] == 12
    for key, value in state["gen_ema"].items():
        assert torch.equal(record["state_dict"][key], value)


def test_resume_with_ema_equals_one_run(tiny_cfg, tmp_path):
    common = ("train.ema=0.9", "eval.num_images=0")
    train(tiny_cfg("train.steps=20", *common), tmp_path / "whole")
    train(tiny_cfg("train.steps=10", *common), tmp_path / "first")
    train(tiny_cfg("train.steps=20", *common, f"resume={tmp_path / 'first'}"), tmp_path / "second")
    whole = torch.load(tmp_path / "whole/checkpoints/last.pt", weights_only=True)
    second = torch.load(tmp_path / "second/checkpoints/last.pt", weights_only=True)
    for key, value in whole["gen_ema"].items():
        assert torch.equal(value, second["gen_ema"][key]), key


def test_new_options_are_validated(tiny_cfg):
    for override, words in [
        ("optim.loss=wasserstein", "optim.loss='wasserstein' is not allowed"),
        ("optim.n_critic=0", "optim.n_critic=0"),
        ("train.ema=1.0", "train.ema=1.0"),
        ("augment.diffaugment=colour", "augment.diffaugment='colour'"),
    ]:
        with pytest.raises(UserError, match=words):
            config.validate(tiny_cfg(override))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir) -> Path:
    from .conftest import make_cfg

    run = tmp_path_factory.mktemp("sample") / "run"
    train(make_cfg("train.steps=10", "eval.num_images=0", cache_dir=cache_dir), run)
    return run


def size(png: Path) -> tuple[int, int]:
    with Image.open(png) as image:
        return image.size


def test_sample_writes_a_grid_a_folder_and_a_latent_walk(trained, tmp_path, capsys):
    assert sample_main([str(trained), "--n", "16", "--out", str(tmp_path / "grid.png")]) == 0
    assert size(tmp_path / "grid.png") == (8 * 34 + 2, 2 * 34 + 2)
    assert sample_main([str(trained), "--n", "5", "--out", str(tmp_path / "pngs")]) == 0
    pngs = sorted((tmp_path / "pngs").glob("*.png"))
    assert len(pngs) == 5 and size(pngs[0]) == (32, 32)
    walk = ["--interpolate", "3", "7", "--n", "6", "--out", str(tmp_path / "walk.png")]
    assert sample_main([str(trained), *walk]) == 0
    assert size(tmp_path / "walk.png") == (6 * 34 + 2, 34 + 2)  # one row
    assert sample_main([str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "has no checkpoints/generator.pt" in capsys.readouterr().err


def test_slerp_ends_at_both_seeds_and_keeps_the_norm():
    a, b = torch.randn(100), torch.randn(100)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    assert path.norm(dim=1).min() > 0.8 * min(a.norm(), b.norm())


GENERATOR_ONLY = """
import sys, torch
sys.modules["gan.run.train"] = None  # importing pumpgan's training code would fail here
sys.modules["gan.run.folder"] = None
from gan.sample import load_generator
gen = load_generator(sys.argv[1])
torch.manual_seed(0)
images = gen(torch.randn(8, gen.dim_z, 1, 1))
print(tuple(images.shape), float(images.min()) >= -1, float(images.max()) <= 1)
"""


def test_generator_pt_loads_without_the_training_code(trained):
    done = subprocess.run(
        [sys.executable, "-c", GENERATOR_ONLY, str(trained / "checkpoints/generator.pt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["(8,", "3,", "32,", "32)", "True", "True"], done.stderr
    gen = load_generator(trained / "checkpoints/generator.pt")
    state = torch.load(trained / "checkpoints/last.pt", weights_only=True)["gen"]
    for key, value in gen.state_dict().items():
        assert torch.equal(value, state[key]), key
