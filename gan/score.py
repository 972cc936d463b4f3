"""The stability score (DESIGN.md section 3).

A step is healthy when both discriminator means, D(x) and D(G(z)) (before D's update), lie in
[eps, 1 - eps]. The run collapses at the first step that ends a window of `patience` consecutive
unhealthy steps; a NaN or inf loss collapses at once. The score is collapsed_at / steps, or 1.0
for a run that never collapses: the fraction of the budget during which D neither won nor lost
outright.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass


def _side(name: str, value: float, eps: float) -> str | None:
    if value < eps:
        return f"{name} < eps"
    if value > 1 - eps:
        return f"{name} > 1-eps"
    return None


@dataclass
class ScoreTracker:
    """Streaming score: feed it steps in order; its fields are all a checkpoint needs."""

    eps: float
    patience: int
    run_length: int = 0  # consecutive unhealthy steps ending at the last step seen
    collapsed_at: int | None = None
    reason: str | None = None

    def update(self, step: int, d_real: float, d_fake: float, losses: Iterable[float] = ()) -> bool:
        """Account for step `step` (1-based); return True when this step is the collapse."""
        if self.collapsed_at is not None:
            return False
        bad_loss = [v for v in losses if not math.isfinite(v)]
        if bad_loss or not (math.isfinite(d_real) and math.isfinite(d_fake)):
            self.collapsed_at, self.reason = step, "non-finite loss"
            return True
        sides = [
            s for s in (_side("D(x)", d_real, self.eps), _side("D(G(z))", d_fake, self.eps)) if s
        ]
        self.run_length = self.run_length + 1 if sides else 0
        if self.run_length >= self.patience:
            self.collapsed_at = step
            self.reason = " and ".join(sides) + f" for {self.patience} steps"
            return True
        return False

    def score(self, steps: int) -> float:
        """Fraction of the `steps` budget before the collapse (1.0 if none)."""
        return 1.0 if self.collapsed_at is None else self.collapsed_at / steps

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> ScoreTracker:
        return cls(**state)


def score_trace(
    d_real: Iterable[float],
    d_fake: Iterable[float],
    losses: Iterable[Iterable[float]] | None = None,
    *,
    eps: float,
    patience: int,
) -> ScoreTracker:
    """Run the tracker over whole traces (one value per step, step 1 first)."""
    tracker = ScoreTracker(eps=eps, patience=patience)
    d_real, d_fake = list(d_real), list(d_fake)
    step_losses = list(losses) if losses is not None else [()] * len(d_real)
    for t, (r, f, ls) in enumerate(zip(d_real, d_fake, step_losses, strict=True), start=1):
        if tracker.update(t, r, f, ls):
            break
    return tracker
