"""pumpgan's sweeper: moved to gan/study/sweeper.py. Study files written for earlier pumpgan
versions name `hydra.sweeper._target_: gan.sweep.StudySweeper`, which keeps working."""

from gan.study.sweeper import StudySweeper, StudySweeperConf

__all__ = ["StudySweeper", "StudySweeperConf"]
