"""checkpoints/best.pt: the G of the lowest SWD a run measured during training (`eval.every`),
in generator.pt's format, so that `gan.sample RUN --which best` makes its images. GANs often
make their best images before the end of a run: generator.pt is the last G, best.pt the best.

The evaluations during training compare one count of images (eval.num_images_during, or
eval.num_images): values of one kind, so the lowest is the best. At the end the best G's SWD is
measured again on eval.num_images (`Best.summary`), so that summary.json's `best.swd` compares
with the run's own `quality.swd`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gan.nets.generator_file import save_generator
from gan.run.quality import SWD


class Best:
    """The best G so far: its step, its SWD during training and its weights (on the CPU, for
    the end-of-run SWD and the checkpoint a resumed run continues from)."""

    def __init__(self, path: Path, model_cfg: Any, ema: bool) -> None:
        self.path, self.model_cfg, self.ema = path, model_cfg, ema
        self.step: int | None = None
        self.swd = math.inf
        self.weights: dict[str, torch.Tensor] | None = None

    def offer(self, step: int, swd: float, gen: torch.nn.Module) -> bool:
        """Keep `gen` (and write best.pt) when its SWD is the lowest so far; a NaN never is."""
        if not swd < self.swd:
            return False
        self.step, self.swd = step, swd
        self.weights = {k: v.detach().cpu().clone() for k, v in gen.state_dict().items()}
        save_generator(self.path, self.model_cfg, gen, step, self.ema, swd=swd)
        return True

    def state_dict(self) -> dict[str, Any] | None:
        """What checkpoints/last.pt keeps of it (None before the first evaluation)."""
        if self.step is None:
            return None
        return {"step": self.step, "swd": self.swd, "gen": self.weights}

    def load_state_dict(self, state: dict[str, Any] | None, gen: torch.nn.Module) -> None:
        """A resumed run's best so far, and its best.pt written again into the new folder."""
        if state is None:
            return
        shaped = copy.deepcopy(gen)
        shaped.load_state_dict(state["gen"])
        self.offer(int(state["step"]), float(state["swd"]), shaped)

    def summary(
        self,
        evaluation: Callable[[torch.nn.Module], SWD],
        gen: torch.nn.Module,
        last_step: int,
        end: SWD | None,
    ) -> dict[str, Any] | None:
        """summary.json's `best`: the step, the SWD during training that chose it and that of
        the final evaluation's images (`end`: the SWD of `gen` at the run's `last_step`, reused
        when the best is that G; else the best G is measured again)."""
        if self.step is None or self.weights is None:
            return None
        if end is not None and self.step == last_step:
            final = end
        else:
            best = copy.deepcopy(gen)
            best.load_state_dict(self.weights)
            final = evaluation(best)
        return {
            "step": self.step,
            "swd": final["swd"],
            "swd_during": self.swd,
            "swd_images": final["swd_images"],
        }
