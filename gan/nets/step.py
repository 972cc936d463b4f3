"""What one training step computes: G and D built and initialised with their Adams
(`build_models`), the objective a config asks for (`Objective`: the loss, WGAN-GP's penalty, R1,
DiffAugment), the step itself (`train_step`: D updates, then one G update) and the moving
average of G's weights (`EMA`). Plain torch: gan/run/train.py runs it, gan/run/hardware.py times
it, benchmarks/ call it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gan.config import AugmentConfig, ModelConfig, OptimConfig
from gan.nets import diffaugment
from gan.nets.losses import LOSSES, gradient_penalty, r1_penalty
from gan.nets.models import Discriminator, Generator, init_weights


def build_models(
    model: ModelConfig, optim: OptimConfig, place: Callable[[Generator, Discriminator], None]
) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    """G and D with the DCGAN init, placed by `place` (a run's Hardware.place: device, layout,
    fast layers), and their Adams."""
    # WGAN-GP's critic has no BatchNorm: the penalty is per image (gan/nets/models.py)
    gen = Generator(model)
    disc = Discriminator(model, batchnorm=optim.loss != "wgan-gp")
    for net in (gen, disc):
        init_weights(net)  # on the CPU: the same weights whatever the device
    place(gen, disc)
    betas = (optim.beta1, optim.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=optim.gen_lr, betas=betas, fused=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=optim.disc_lr, betas=betas, fused=True)
    return gen, disc, opt_g, opt_d


@dataclass(frozen=True)
class Objective:
    """What a training step optimises, from the config: the loss (gan/nets/losses.py), WGAN-GP's
    penalty weight, R1 and DiffAugment."""

    loss: str = "bce"
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    r1_every: int = 16
    diffaugment: tuple[str, ...] = ()

    @classmethod
    def of(cls, o: OptimConfig, augment: AugmentConfig) -> Objective:
        policy = tuple(diffaugment.parse(augment.diffaugment))
        return cls(o.loss, o.gp_weight, o.r1_gamma, o.r1_every, policy)

    def r1_due(self, step: int) -> bool:
        """Lazy R1: on steps 1, 1 + r1_every, ... (the step about to run, counted from 1)."""
        return self.r1_gamma > 0 and (step - 1) % self.r1_every == 0


def train_step(
    gen: torch.nn.Module,
    disc: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor | Sequence[torch.Tensor],
    noise: torch.Tensor | Sequence[torch.Tensor],
    objective: Objective | str = "bce",
    r1_due: bool = False,
) -> torch.Tensor:
    """D updates (one per batch of `real` and `noise`: optim.n_critic), then one G update;
    returns (loss_d, loss_g, d_real, d_fake, d_fake_after) of the last D update and the G
    update, as a tensor on the device (no host sync); d_* are batch means of sigmoid(D)."""
    obj = Objective(objective) if isinstance(objective, str) else objective
    disc_loss, gen_loss = LOSSES[obj.loss]
    reals = [real] if isinstance(real, torch.Tensor) else list(real)
    noises = [noise] if isinstance(noise, torch.Tensor) else list(noise)

    def seen(x: torch.Tensor) -> torch.Tensor:  # what D sees: DiffAugment'ed, if on
        return diffaugment.diff_augment(x, obj.diffaugment) if obj.diffaugment else x

    # (1) D: on real images and on G's (detached), e.g. maximise log D(x) + log(1 - D(G(z)))
    for k, (x, z) in enumerate(zip(reals, noises, strict=True)):
        opt_d.zero_grad(set_to_none=True)
        r1 = r1_due and k == 0
        if r1:
            x = x.detach().requires_grad_(True)
        out_real = disc(seen(x))  # (B,) fp32, even under autocast
        fake = gen(z)  # (B, 3, S, S)
        out_fake = disc(seen(fake.detach()))
        loss_d = disc_loss(out_real, out_fake)
        if obj.loss == "wgan-gp":
            loss_d = loss_d + obj.gp_weight * gradient_penalty(disc, x, fake)
        if r1:
            loss_d = loss_d + obj.r1_gamma / 2 * obj.r1_every * r1_penalty(out_real, x)
        loss_d.backward()
        opt_d.step()

    # (2) G step: through the updated D, on the last D update's images; e.g. maximise
    # log D(G(z)); D's weights need no gradient here
    opt_g.zero_grad(set_to_none=True)
    disc.requires_grad_(False)
    out_after = disc(seen(fake))
    loss_g = gen_loss(out_after)
    loss_g.backward()
    disc.requires_grad_(True)
    opt_g.step()

    with torch.no_grad():
        means = [torch.sigmoid(o).mean() for o in (out_real, out_fake, out_after)]
        return torch.stack([loss_d.detach(), loss_g.detach(), *means])


class EMA:
    """An exponential moving average of G's weights (`train.ema`): after each G update,
    average = decay * average + (1 - decay) * weights; buffers (BatchNorm's statistics, which
    sampling does not use: it normalises by the batch) are copied."""

    def __init__(self, gen: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(gen).requires_grad_(False)

    @torch.no_grad()
    def update(self, gen: torch.nn.Module) -> None:
        average: list[torch.Tensor] = list(self.model.parameters())
        current: list[torch.Tensor] = list(gen.parameters())
        torch._foreach_lerp_(average, current, 1 - self.decay)
        for mine, theirs in zip(self.model.buffers(), gen.buffers(), strict=True):
            mine.copy_(theirs)
