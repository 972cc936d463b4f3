"""Ctrl-C and SIGTERM that cannot get lost.

Python's own SIGINT handler raises KeyboardInterrupt in whatever code the main thread is running.
When that code is a finalizer (a `__del__`, a weakref callback run by the garbage collector,
as SQLAlchemy's registry has while a study is being opened), Python prints "Exception ignored
in ..." and carries on: the Ctrl-C is lost, and a sweep started with `train.steps=100000` trained
its first trial to the end (seen in 1 of 10 sweeps interrupted 2-14 s after their start).

`handler` raises KeyboardInterrupt as before and also records the signal; long loops call
`check()`, which raises it again if it was swallowed. Code that handles a KeyboardInterrupt
calls `clear()`, so that a later run in the same process (a notebook, a test) starts afresh.
Inside `deferred()` the handler only records the signal, and the block's end raises it: the
training loop runs inside one, so a signal ends a run at a step boundary (gan/run/train.py).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_pending: int | None = None  # the signal of an interrupt not yet handled
_deferring = 0  # depth of `deferred()` blocks


def handler(signum: int, frame: Any) -> None:
    global _pending
    _pending = signum
    if not _deferring:
        raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def deferred(raise_at_end: bool = True) -> Iterator[None]:
    """A signal that arrives in the block is only recorded (`pending()` says so): for work that
    must not be cut in half (a metrics chunk written but not marked written would be written
    twice; a training loop stops at a step boundary). When the outermost such block ends, the
    KeyboardInterrupt is raised, unless raise_at_end is False (the caller checks `pending()`)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and raise_at_end:
        check()


def install() -> None:
    """SIGINT and SIGTERM (a scheduler's kill, `kill PID`) call `handler`, for good. Only the
    main thread can install signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def installed() -> Iterator[None]:
    """`install()` for the duration of the block, the previous handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    install()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def pending() -> bool:
    return _pending is not None


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived whose KeyboardInterrupt nobody handled."""
    if _pending is not None:
        raise KeyboardInterrupt(f"signal {_pending}")


def clear() -> None:
    """The pending interrupt has been handled."""
    global _pending
    _pending = None
