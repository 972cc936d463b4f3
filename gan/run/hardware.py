"""Where and how a run computes: device, precision, memory layout, threads, allocator and the
optional fast layers, decided once from the `hardware` config group. `train()` and the
benchmarks both call `setup()` and `Hardware.place()`, so they run the same thing.

On a CPU, denormal floats (magnitudes below ~1.2e-38) are flushed to zero by default
(hardware.flush_denormal): x86 computes with them far more slowly. A guard: the default run was
found to make none (docs/performance.md).

precision=auto picks bf16 autocast with channels-last activations on CUDA; on a CPU it times a
few training steps of throwaway nets in fp32 and in bf16 channels-last and takes the faster,
and only where the CPU computes bf16 natively (AVX512-BF16 or AMX): elsewhere bf16 is emulated
and slower. tests/test_train.py shows bf16 scores and D means agree with fp32.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan.config import HardwareConfig, ModelConfig, OptimConfig
from gan.errors import UserError
from gan.nets import fast
from gan.nets.models import Discriminator, Generator
from gan.nets.step import build_models, train_step


@dataclass
class Hardware:
    device: torch.device
    bf16: bool
    channels_last: bool
    # names of gan/nets/fast.py's swaps applied by place() (empty: plain torch layers)
    fast_layers: list[str]
    # seconds per step of each setting precision=auto timed before choosing (empty: none timed)
    timings: dict[str, float] = field(default_factory=dict)
    # denormal floats flushed to zero on the CPU (set_flush_denormal, for the whole process)
    flush_denormal: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.preserve_format

    def autocast(self) -> AbstractContextManager:
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def place(self, gen: Generator, disc: Discriminator) -> None:
        """Move built nets to the device and layout, and swap in the fast layers."""
        for net in (gen, disc):
            net.to(self.device).to(memory_format=self.memory_format)
        fast.apply(gen, disc, self.fast_layers)

    def summary(self) -> dict:
        """What summary.json records about the hardware."""
        return {
            "device": str(self.device),
            "precision": "bf16" if self.bf16 else "fp32",
            "channels_last": self.channels_last,
            "precision_timings": self.timings,
            "fast_layers": self.fast_layers,
            "flush_denormal": self.flush_denormal,
            "threads": torch.get_num_threads(),
            "keep_freed_memory": keep_freed_memory(),
        }


def setup(cfg: HardwareConfig | DictConfig, model: ModelConfig, batch_size: int) -> Hardware:
    """Decide the hardware of a run (and set torch's threads and the allocator for the process)."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"hardware.device={cfg.device!r} but torch sees no CUDA GPU. Use "
                f"hardware=cpu (or hardware=auto to pick what is there)."
            )
        torch.backends.cudnn.benchmark = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    keep_freed_memory()
    # set either way, before any timing: a process that trains several runs (a study's trials)
    # gives each its own; False where the CPU cannot flush (not x86 with SSE3)
    flush = cfg.flush_denormal and device.type == "cpu"
    flush = torch.set_flush_denormal(flush) and flush
    hw = decide(cfg, device, model, batch_size)
    hw.flush_denormal = flush
    return hw


def decide(
    cfg: HardwareConfig | DictConfig, device: torch.device, model: ModelConfig, batch_size: int
) -> Hardware:
    """Precision, layout and fast layers on `device`: the config's, or with precision=auto the
    faster where there is a choice."""
    # the fast layers are CPU speed-ups; on a GPU the library's kernels are the fast ones
    fast_layers = list(fast.SWAPS) if cfg.fast_layers and device.type == "cpu" else []
    if cfg.precision != "auto":
        return Hardware(device, cfg.precision == "bf16", cfg.channels_last, fast_layers)
    if device.type == "cuda":
        return Hardware(device, True, True, fast_layers)
    if not cpu_has_bf16():
        return Hardware(device, False, False, fast_layers)
    timings = {
        name: time_cpu_steps(model, batch_size, bf16, fast_layers)
        for name, bf16 in (("fp32", False), ("bf16_channels_last", True))
    }
    bf16 = timings["bf16_channels_last"] < timings["fp32"]
    return Hardware(device, bf16, bf16, fast_layers, timings)


def time_cpu_steps(m: ModelConfig, batch_size: int, bf16: bool, fast_layers: list[str]) -> float:
    """Median seconds per training step of throwaway nets on random data, fp32 or bf16
    channels-last, outside the run's random stream (a second or two)."""
    hw = Hardware(torch.device("cpu"), bf16, bf16, fast_layers)
    with torch.random.fork_rng(devices=[]):
        gen, disc, opt_g, opt_d = build_models(m, OptimConfig(), hw.place)
        real = torch.rand(batch_size, 3, m.image_size, m.image_size) * 2 - 1
        real = real.contiguous(memory_format=hw.memory_format)
        noise = torch.randn(batch_size, m.dim_z, 1, 1)
        per_step = []
        for _ in range(5):  # the first two warm oneDNN up and are not counted
            start = time.perf_counter()
            with hw.autocast():
                train_step(gen, disc, opt_g, opt_d, real, noise, "bce").sum().item()
            per_step.append(time.perf_counter() - start)
    return round(statistics.median(per_step[2:]), 5)


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next step instead of returning it to the
    kernel; True if it now does (once per process, for the whole process).

    A training step frees and re-allocates the same large activation buffers every time. By
    default glibc serves big requests with fresh mmap pages and trims the heap, so each step
    page-faults and zero-fills them again. Here mmap is off for allocations (glibc still falls
    back to it when the heap cannot grow) and the heap is trimmed only beyond 2 GiB free, so RSS
    stays at its peak. Left alone when the environment already tunes the allocator
    (GLIBC_TUNABLES, MALLOC_*, LD_PRELOAD) or the C library is not glibc."""
    tuned = any(k == "GLIBC_TUNABLES" or k.startswith("MALLOC_") for k in os.environ)
    if tuned or os.environ.get("LD_PRELOAD") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's C library
    m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
    return bool(mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 2**31 - 1))
