"""The adversarial losses (`optim.loss`) and D's gradient penalties, all on D's raw outputs.

D returns one number per image. Each loss reads it its own way:

- `bce`: the output is a logit, D(x) = sigmoid(output). D minimises -log D(x) - log(1 - D(G(z))),
  G minimises -log D(G(z)) (the non-saturating loss of the GAN and DCGAN papers).
- `hinge` (Lim & Ye 2017; Miyato et al. 2018): D minimises relu(1 - out(x)) + relu(1 + out(G(z))),
  G minimises -out(G(z)).
- `lsgan` (Mao et al. 2017): D regresses its output to 1 on real and 0 on fake images,
  (out(x) - 1)^2 / 2 + out(G(z))^2 / 2; G minimises (out(G(z)) - 1)^2 / 2.
- `wgan-gp` (Gulrajani et al. 2017): the critic minimises out(G(z)) - out(x) + gp_weight * GP,
  G minimises -out(G(z)); usually with several critic updates per G update (optim.n_critic=5).

Whatever the loss, the score's D means are the batch means of sigmoid(output) (docs/design.md,
"The score"), so `score.eps` bounds the output to |output| <= logit(1 - eps) (3.48 at eps 0.03):
for bce that is D's probability; for the others, a D whose outputs run past that bound on real
or on fake images has won outright (docs/score.md says what the band means for each loss).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def bce_disc(out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), the article's BCELoss on real and fake labels."""
    real = F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
    return real + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))


def bce_gen(out_fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the non-saturating generator loss of the GAN and DCGAN papers."""
    return F.binary_cross_entropy_with_logits(out_fake, torch.ones_like(out_fake))


def hinge_disc(out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - out_real).mean() + F.relu(1 + out_fake).mean()


def lsgan_disc(out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out_real - 1) ** 2).mean() + 0.5 * (out_fake**2).mean()


def lsgan_gen(out_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out_fake - 1) ** 2).mean()


def wgan_disc(out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
    """The critic's Wasserstein estimate, negated; the gradient penalty is added by the step."""
    return out_fake.mean() - out_real.mean()


def score_gen(out_fake: torch.Tensor) -> torch.Tensor:
    """-out(G(z)): G of the hinge and Wasserstein losses."""
    return -out_fake.mean()


Loss = tuple[
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]
]
# optim.loss -> (D's loss from its outputs on real and fake images, G's loss from D's outputs on
# G's images); gan/config.py's LOSSES lists the same names
LOSSES: dict[str, Loss] = {
    "bce": (bce_disc, bce_gen),
    "hinge": (hinge_disc, score_gen),
    "lsgan": (lsgan_disc, lsgan_gen),
    "wgan-gp": (wgan_disc, score_gen),
}


def gradient_penalty(
    disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP's (||grad D(x_hat)|| - 1)^2 at x_hat uniformly between paired real and fake
    images (Gulrajani et al. 2017, eq. 3), batch mean; differentiable for D's update."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(out_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): ||grad D(x)||^2 on real images, batch mean; `real` must have
    required grad before D saw it. The caller scales it by r1_gamma / 2 (and the lazy interval)."""
    (grad,) = torch.autograd.grad(out_real.sum(), real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()
