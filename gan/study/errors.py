"""The refusals of a study, each said in one paragraph (exit 2): a sweep whose settings cannot
run, a study continued with other settings than it started with, and a study to confirm that is
missing or has no complete trial."""

from __future__ import annotations

from hydra.errors import CompactHydraException


class StudyRefused(CompactHydraException):
    """A sweep whose study settings cannot run (said in one paragraph, exit 2)."""


class ChangedStudy(StudyRefused):
    """A sweep whose search space or fixed settings differ from those its study started with."""


class NoStudy(CompactHydraException):
    """The study to confirm is missing or has no complete trial."""
