"""The per-step numbers of a run (loss_d, loss_g, d_real, d_fake, d_fake_after): kept on the
device, read back every `train.log_every` steps (one host sync), then written to metrics.csv,
scored, shown (a progress bar or log lines) and put in summary.json."""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import nullcontext
from typing import Any

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gan.config import TrainConfig
from gan.run import interrupts
from gan.run.folder import RunFolder
from gan.run.score import ScoreTracker

log = logging.getLogger("gan.run.train")

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")


class StepLog:
    """The per-step stats of a run: kept on the device, read back every `train.log_every` steps
    (one host sync), then written to metrics.csv, scored, shown (a progress bar or log lines)
    and put in summary.json."""

    def __init__(
        self,
        folder: RunFolder,
        tracker: ScoreTracker,
        train_cfg: TrainConfig,
        device: torch.device,
        start_step: int,
        wall_before: float,
        show_bar: bool,
    ) -> None:
        self.folder, self.tracker, self.train_cfg = folder, tracker, train_cfg
        self.start_step, self.wall_before, self.show_bar = start_step, wall_before, show_bar
        self.stats = torch.zeros(train_cfg.log_every, len(STAT_NAMES), device=device)
        self.pending = 0  # steps whose stats sit in `stats`, not yet read back
        self.t0, self.last_flush_t = time.perf_counter(), 0.0
        self.plain_every = max(train_cfg.log_every, train_cfg.steps // 20)
        self.bar = tqdm(
            total=train_cfg.steps,
            initial=start_step,
            disable=not show_bar,
            unit="step",
            # a terminal that reports no size (0 columns) gets 80, not an invisible bar
            ncols=shutil.get_terminal_size().columns,
            leave=True,
        )

    def redirect_logging(self) -> Any:
        """Log lines printed above the bar instead of through it."""
        return logging_redirect_tqdm() if self.show_bar else nullcontext()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def rate(self, step: int) -> float:
        """Images per second since this process started training: the progress line's."""
        return (step - self.start_step) * self.train_cfg.batch_size / max(self.elapsed(), 1e-9)

    def record(self, stats: torch.Tensor) -> None:
        self.stats[self.pending] = stats
        self.pending += 1

    def full(self) -> bool:
        return self.pending == len(self.stats)

    @interrupts.deferred()
    def flush(self, step: int) -> None:
        """Read back the pending steps' stats, write them, score them. A signal in here takes
        effect at its end: a chunk half written would be written again."""
        if self.pending == 0:
            return
        now, pending = self.elapsed(), self.pending
        values = self.stats[:pending].float().cpu().tolist()
        first, rows, collapsed = step - pending + 1, [], False
        for k, row in enumerate(values):
            # time_s is measured per chunk; steps inside a chunk are interpolated
            span = now - self.last_flush_t
            time_s = self.wall_before + self.last_flush_t + span * (k + 1) / pending
            rows.append([first + k, round(time_s, 4), *row])
            collapsed |= self.tracker.update(first + k, row[2], row[3], row[:2])
        self.folder.append_metrics(rows)
        self.pending, self.last_flush_t = 0, now
        if collapsed:
            log.warning("Collapse at step %d: %s", self.tracker.collapsed_at, self.tracker.reason)
        self.show(step, values[-1], len(values))
        wall_s = self.wall_before + now
        self.folder.update_summary(
            steps_done=step,
            wall_s=round(wall_s, 3),
            images_per_s=round(throughput(step, self.train_cfg.batch_size, wall_s), 2),
            collapsed_at=self.tracker.collapsed_at,
            reason=self.tracker.reason,
        )

    def show(self, step: int, last: list[float], chunk: int) -> None:
        loss_d, loss_g, d_real, d_fake, _ = last
        line = (
            f"loss_d {loss_d:.3f}  loss_g {loss_g:.3f}  D(x) {d_real:.3f}  D(G(z)) {d_fake:.3f}  "
            f"{self.rate(step):.0f} img/s"
        )
        self.bar.set_postfix_str(line, refresh=False)
        self.bar.update(step - self.bar.n)
        total = self.train_cfg.steps
        if not self.show_bar and (step % self.plain_every < chunk or step == total):
            log.info("step %d/%d  %s", step, total, line)

    def close(self) -> None:
        self.bar.close()


def throughput(steps_done: int, batch_size: int, wall_s: float) -> float:
    """summary.json's images_per_s: steps_done x batch_size / wall_s, both counted over the
    whole run, the runs it resumed included (a resume keeps the batch size)."""
    return steps_done * batch_size / max(wall_s, 1e-9)
