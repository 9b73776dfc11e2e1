"""The two pieces of Ray's end-of-run noise the sweeper silences, each at its source, and
only those: other unraisable exceptions and Tune's other slow-step warnings still show."""

from __future__ import annotations

import gc
import logging
import os
import sys
import weakref

import pytest

from sweeper import ray_backend


class _Obj:
    pass


def _unraisable_from_a_weakref_callback(exc: BaseException) -> None:
    """What a SIGTERM during GC does in a Ray worker: an exception raised inside a weakref
    callback, which Python cannot raise anywhere and hands to sys.unraisablehook."""
    obj = _Obj()

    def callback(_: object) -> None:
        raise exc

    ref = weakref.ref(obj, callback)
    del obj
    gc.collect()
    assert ref() is None


def test_sigterm_exit_in_a_worker_prints_nothing_other_errors_still_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    _unraisable_from_a_weakref_callback(SystemExit(1))
    assert "SystemExit" in capsys.readouterr().err  # Python's own report, without the hook

    ray_backend._quiet_sigterm_exit()
    ray_backend._quiet_sigterm_exit()  # a reused actor runs the trial function again
    _unraisable_from_a_weakref_callback(SystemExit(1))
    assert capsys.readouterr().err == ""
    _unraisable_from_a_weakref_callback(ValueError("a real bug"))
    err = capsys.readouterr().err
    assert "ValueError: a real bug" in err and err.count("Exception ignored") == 1


def test_tunes_slow_step_threshold_is_raised_before_tune_reads_it() -> None:
    from ray.tune.utils.util import warn_if_slow

    # sweeper.ray_backend (imported above) sets it unless the user did: 10 s, not 0.5.
    assert os.environ["TUNE_WARN_THRESHOLD_S"] == "10"
    assert warn_if_slow.DEFAULT_THRESHOLD == 10.0


def test_only_the_store_flush_slow_warning_is_dropped() -> None:
    from ray.tune.utils.util import warn_if_slow

    ray_backend._quiet_tune_warnings()
    ray_backend._quiet_tune_warnings()  # one filter, however many stages
    tune_util = logging.getLogger("ray.tune.utils.util")
    assert sum(isinstance(f, ray_backend._StoreFlushIsNotSlow) for f in tune_util.filters) == 1
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    tune_util.addHandler(handler)
    try:
        for name in ("callbacks.on_step_end", "on_step_begin"):
            # Tune's own message, as warn_if_slow formats it.
            tune_util.warning(warn_if_slow.DEFAULT_MESSAGE.format(name=name, duration=1.5))
    finally:
        tune_util.removeHandler(handler)
    assert seen == [
        "The `on_step_begin` operation took 1.500 s, which may be a performance bottleneck."
    ]
