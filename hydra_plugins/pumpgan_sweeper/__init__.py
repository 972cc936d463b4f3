"""Registers pumpgan's sweeper with Hydra, which discovers plugins in the `hydra_plugins`
namespace package. The implementation lives in gan/sweep.py."""

from gan.study.sweeper import StudySweeper

__all__ = ["StudySweeper"]
