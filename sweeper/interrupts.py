"""SIGINT and SIGTERM stop a sweep in order; a second signal forces the stop.

The first signal only records itself: Ray Tune's loop sees it through the stage's stopper
(`ray_backend`), stops every trial, and returns; the driver then records the trials that were
running as `interrupted` and exits 130 (SIGINT) or 143 (SIGTERM) with the `resume` command.
Outside a Tune loop the driver checks `requested()` between steps. A second signal raises
`ForcedStop` wherever the driver is, which ends the same way without waiting for the trials.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from sweeper.errors import SweeperError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state: dict[str, int | None] = {"signum": None}


class SweepInterrupted(SweeperError):
    """The sweep was stopped by a signal; `exit_code` is 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class ForcedStop(BaseException):
    """A second signal: stop now. A BaseException, so Tune's `except Exception` lets it by."""


def is_forced(err: BaseException | None) -> bool:
    """`err` is a `ForcedStop`, or was caused by one: raised from the handler while Ray was
    inside a compiled call, it comes out as that call's SystemError with it as the cause."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, ForcedStop):
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def requested() -> int | None:
    """The signal that asked the sweep to stop, or None."""
    return _state["signum"]


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state["signum"] is not None:
        raise ForcedStop(signum)
    _state["signum"] = signum
    print(
        f"\n{signal_name(signum)}: stopping the sweep; running trials are recorded as "
        "interrupted (signal again to stop at once)",
        file=sys.stderr,
        flush=True,
    )


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Install the handlers for the body (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in _SIGNALS}
    _state["signum"] = None
    for s in _SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state["signum"] = None


def raise_if_requested(message: str) -> None:
    """Between steps of the driver: stop here if a signal came."""
    signum = requested()
    if signum is not None:
        raise SweepInterrupted(message, signum)
