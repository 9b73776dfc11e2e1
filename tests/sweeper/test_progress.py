"""The progress line's epoch k/N and stage ETA, on hand-made event sequences."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from results.store import StoreWriter
from sweeper.events import StoreEvents
from sweeper.progress import StageProgress, format_eta, planned_epochs


def test_no_timed_epoch_yet_says_estimating() -> None:
    p = StageProgress("clean", total=2)
    # No trial started: the epochs to come are not known, and the stage is not done.
    assert p.eta_s() is None and not p.finished()
    p.started("clean-a", planned=4)
    assert p.eta_s() is None
    p.epoch("clean-a", 0, wall_s=3.0)  # the start model's evaluation: nothing trained yet
    assert p.eta_s() is None
    assert format_eta(p.eta_s()) == "ETA estimating"
    assert p.running_text() == "a epoch 0/4"


def test_eta_from_epochs_done_and_their_wall_time() -> None:
    # Two trials of 4 epochs side by side, a third still to start. Trial a: epochs 1-2 took
    # 20 s (wall 5 -> 25); trial b: epoch 1 took 10 s (wall 4 -> 14). 30 s over 3 epochs:
    # 10 s an epoch. Left: a 2, b 3, c 4 = 9 epochs, 2 at a time: 45 s.
    p = StageProgress("clean", total=3)
    p.started("clean-a", planned=4)
    p.started("clean-b", planned=4)
    for tid, epoch, wall in [("clean-a", 0, 5.0), ("clean-b", 0, 4.0), ("clean-a", 1, 15.0)]:
        p.epoch(tid, epoch, wall)
    p.epoch("clean-b", 1, 14.0)
    p.epoch("clean-a", 2, 25.0)
    assert p.seconds_per_epoch() == pytest.approx(10.0)
    assert p.epochs_left() == 9
    assert p.eta_s() == pytest.approx(45.0)
    assert format_eta(p.eta_s()) == "ETA ~45s"
    assert p.running_text() == "a epoch 2/4, b epoch 1/4"


def test_finished_trials_leave_nothing_and_the_last_one_runs_alone() -> None:
    p = StageProgress("pretrain", total=2)
    p.started("pretrain-mmcl", planned=3)
    p.started("pretrain-ssl", planned=3)
    p.epoch("pretrain-mmcl", 0, 0.0)
    p.epoch("pretrain-mmcl", 3, 60.0)  # 20 s an epoch
    p.ended("pretrain-mmcl", "completed")
    p.epoch("pretrain-ssl", 0, 0.0)
    # Two slots were seen; one trial is left with 3 epochs: 3 x 20 / 2 = 30 s. The slots
    # stay at the most seen (the next stage's trials would fill them again).
    assert p.epochs_left() == 3
    assert p.eta_s() == pytest.approx(30.0)
    p.ended("pretrain-ssl", "failed")
    assert p.finished() and p.epochs_left() == 0 and p.eta_s() == 0.0
    assert p.running_text() == ""


def test_a_resumed_trial_is_timed_from_its_first_report() -> None:
    # Resumed at epoch 5 of 8 (its clock restarted at 0): epochs 6 and 7 took 2 x 30 s.
    p = StageProgress("clean", total=3, finished_before=2)
    p.started("clean-c", planned=8)
    p.epoch("clean-c", 5, 1.0)
    p.epoch("clean-c", 7, 61.0)
    assert p.seconds_per_epoch() == pytest.approx(30.0)
    assert p.epochs_left() == 1  # the two finished before are not counted again
    assert p.running_text() == "c epoch 7/8"


def test_many_running_trials_stay_on_one_short_line() -> None:
    p = StageProgress("clean", total=6)
    for i in range(6):
        p.started(f"clean-t{i}", planned=2)
    assert p.running_text() == (
        "t0 starting (0/2), t1 starting (0/2), t2 starting (0/2), t3 starting (0/2), +2 more"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "ETA ~0s"), (59.4, "ETA ~59s"), (61, "ETA ~1m01s"), (3725, "ETA ~1h02m")],
)
def test_format_eta(seconds: float, text: str) -> None:
    assert format_eta(seconds) == text


def test_planned_epochs_of_each_kind() -> None:
    assert planned_epochs({"stage": "clean", "config": {"optim": {"epochs": 7}}}) == 7
    assert planned_epochs({"stage": "screen", "entry": "screen", "config": {}}) == 0


def test_store_events_print_a_few_lines_not_a_flood(tmp_path: Path) -> None:
    """The driver's line: counts changes print at once, epoch-only changes at most every
    `detail_s` (0 here would print every tick; a large one holds them back)."""
    out = io.StringIO()
    ev = StoreEvents(StoreWriter(tmp_path, "s-1"), "clean", total=2, out=out, detail_s=1e9)
    payload = {
        "trial_id": "clean-a",
        "stage": "clean",
        "method": "cleanclip",
        "params": {"lr": 0.1},
        "config": {"optim": {"epochs": 2}},
    }
    ev.started("clean-a", payload)
    ev.tick()
    for epoch, wall in [(0, 1.0), (1, 3.0)]:
        ev.epoch("clean-a", payload, {"epoch": epoch, "wall_s": wall, "clean_acc": 50, "asr": 90})
        ev.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines  # the epochs changed only the detail: held back
    assert lines[0].startswith("[clean] 0/2 done, 1 running, 0 failed | a starting (0/2) | ")
    assert "ETA estimating" in lines[0]
    ev.progress(force=True)
    # 1 epoch in 2 s; left: a's 1 and the unstarted trial's 2 = 3 epochs, 1 slot: 6 s.
    assert " | a epoch 1/2 | ETA ~6s | no candidate at ASR<=5% yet | " in out.getvalue()
    ev.progress(force=True)  # the stage's closing line, same as the last: not again
    assert len(out.getvalue().splitlines()) == 2
