"""optim.schedule: Adam's settings changed at given steps of a run, piecewise constant.

    python run.py 'optim.schedule=[{step: 1000, gen_lr: 1e-4}, {step: 3000, beta1: 0.3}]'

From each entry's `step` on (the step about to be trained, counted from 0), its keys replace the
values before it; the run's optim.gen_lr, disc_lr, beta1 and beta2 hold until the first entry.
Changing them at step N trains exactly as a run stopped at N and resumed with the new values
(`resume=RUN optim.gen_lr=...`, which also sets them on the loaded optimizers), so a schedule
replays a sequence of resumed segments in one run: what population-based training hands back.
"""

from __future__ import annotations

from typing import Any

import torch

from gan.config import SCHEDULE_KEYS as KEYS


class Schedule:
    """The optim values in effect at each step, applied to a run's two Adams."""

    def __init__(self, optim: Any) -> None:
        self.base = {k: float(getattr(optim, k)) for k in KEYS}
        entries = [dict(e) for e in getattr(optim, "schedule", None) or []]
        self.changes = {int(e.pop("step")): {k: float(v) for k, v in e.items()} for e in entries}

    def values_at(self, step: int) -> dict[str, float]:
        """gen_lr, disc_lr, beta1, beta2 for training step `step` (0-based)."""
        values = dict(self.base)
        for start in sorted(self.changes):
            if start <= step:
                values.update(self.changes[start])
        return values

    def due(self, step: int) -> bool:
        """Whether an entry starts at `step`."""
        return step in self.changes

    def apply(
        self, step: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer
    ) -> dict[str, float]:
        """Set the values in effect at `step` on both optimizers' param groups; returns them."""
        v = self.values_at(step)
        betas = (v["beta1"], v["beta2"])
        for opt, lr in ((opt_g, v["gen_lr"]), (opt_d, v["disc_lr"])):
            for group in opt.param_groups:
                group.update(lr=lr, betas=betas)
        return v
