"""The stability score (docs/design.md, "The score").

A step is healthy when both discriminator means, D(x) and D(G(z)) (before D's update), lie in
[eps, 1 - eps]. The run collapses at the first step that ends a window of `patience` consecutive
unhealthy steps; a NaN or inf loss collapses at once. The score is collapsed_at / steps, or 1.0
for a run that never collapses: the fraction of the budget during which D neither won nor lost
outright.

One extension, off by default (`score.min_diversity` = 0): the D means cannot see a G that makes
one image, or nothing, while D stays unsure (both are common at 1.0 in a wide learning-rate
study). With min_diversity > 0 the fixed-noise sample grids (step 0, every sample_every steps,
the final one) are checked too: a run whose D means never collapsed, but whose grids stay less
varied than min_diversity (relative to the data, see gan.run.quality.sample_quality) from
some sample point to the end of training, collapses at that sample point (at 0 if they never
varied). It is known only when training ends, so it never stops a run early.

Ranking runs against each other (`rank_key`) and telling a dead run from a live one
(`STALE_AFTER_S`) live here too: gan.compare and the sweeper (gan.study.sweeper) both use them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# a run not heard from for this long has lost its process: a `running` summary.json not
# rewritten (gan.compare notes it `stale?`), a RUNNING trial whose sweep renewed no heartbeat
# (the sweeper fails it and queues its parameters again)
STALE_AFTER_S = 600.0


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
    min_diversity: float = 0.0
    low_since: int | None = None  # first sample point of the current low-diversity stretch
    last_diversity: float | None = None

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

    def sample(self, step: int, diversity: float) -> None:
        """Account for the sample grid at `step` (0: before training)."""
        self.last_diversity = diversity
        if diversity >= self.min_diversity:
            self.low_since = None
        elif self.low_since is None:
            self.low_since = step

    def end_of_training(self) -> bool:
        """Apply the diversity rule once training has ended; True if it makes the collapse."""
        if self.min_diversity <= 0 or self.low_since is None or self.collapsed_at is not None:
            return False
        self.collapsed_at = self.low_since
        since = (
            "in every grid, from the untrained G's at step 0 to the end: G never made varied images"
            if self.low_since == 0
            else f"from step {self.low_since} to the end"
        )
        self.reason = (
            f"sample diversity < {self.min_diversity} {since} (last {self.last_diversity:.3f})"
        )
        return True

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


def rank_key(score: object, swd: object) -> tuple[bool, float, float]:
    """Sort key that puts the best run first: the higher score; among equal scores (often
    several at 1.0) the lower sliced Wasserstein distance of its samples to the data
    (summary.json quality.swd, gan/run/quality.py). Runs without a score come last, a missing SWD
    ranks below any. gan.compare's table and the sweeper's best trial both rank by it."""

    def finite(v: object) -> float | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        return float(v)

    s, d = finite(score), finite(swd)
    return s is None, -(s or 0.0), d if d is not None else math.inf
