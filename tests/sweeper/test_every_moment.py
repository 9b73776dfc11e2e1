"""`sweeper status` and `sweeper report` answer at every moment of a sweep: before its first
row, with pre-training rows only, part-way through cleaning; and the one success rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from results.best import best_of_rows, is_success
from results.store import StoreWriter
from sweeper.cli import main
from tests.results.conftest import trajectory, write_sweep  # noqa: F401  (a fixture)


def _status_out(capsys: pytest.CaptureFixture[str], store: Path, sweep: str) -> str:
    assert main(["status", sweep, "--store", str(store)]) == 0
    return capsys.readouterr().out


def test_a_sweep_with_no_rows_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    StoreWriter(store, "fresh")  # what `launch` has made before any trial reports
    out = _status_out(capsys, store, "fresh")
    assert "0 epoch rows" in out and "no trial has started yet" in out, out
    assert main(["report", "fresh", "--store", str(store)]) == 0
    assert "report:" in capsys.readouterr().out
    page = (store / "fresh" / "report.html").read_text()
    assert "No cleaning epochs in these sweeps yet." in page


def test_a_sweep_with_pretraining_rows_only(
    write_sweep: Callable[..., Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = trajectory("pretrain-mmcl", [10, 30, 40], [10, 80, 95], stage="pretrain")
    trials = [
        {"trial_id": "pretrain-mmcl", "stage": "pretrain", "method": "mmcl", "status": "running"}
    ]
    store = write_sweep("early", rows, trials)
    sweep_dir = store / "early"
    out = _status_out(capsys, store, "early")
    assert "3 epoch rows" in out and "pretrain: 1 running" in out, out
    assert "no cleaned candidate at ASR<=5% yet" in out
    assert main(["report", "early", "--store", str(store)]) == 0  # was an IndexError
    page = (sweep_dir / "report.html").read_text()
    assert "No cleaning epochs in these sweeps yet." in page


def test_status_follows_the_threshold_and_never_counts_epoch_0(
    write_sweep: Callable[..., Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Epoch 0 (the start) is at ASR 0 with the highest accuracy: never a candidate.
    rows = trajectory("clean-a", [60, 50, 55], [0, 4, 8]) + trajectory("clean-b", [60, 52], [0, 7])
    store = write_sweep("mid", rows)
    out = _status_out(capsys, store, "mid")
    assert "best clean_acc at ASR<=5%: 50.00 (clean-a, epoch 1" in out, out
    assert main(["status", "mid", "--store", str(store), "--threshold", "7.5"]) == 0
    assert "best clean_acc at ASR<=7.5%: 52.00 (clean-b, epoch 1" in capsys.readouterr().out


def test_best_of_rows_on_hand_made_rows() -> None:
    def r(t: str, e: int, acc: float, asr: float) -> dict[str, object]:
        return {"trial_id": t, "epoch": e, "clean_acc": acc, "asr": asr}

    rows = [r("a", 0, 90, 0), r("a", 1, 70, 5.0), r("b", 1, 70, 3), r("b", 2, 71, 5.01)]
    # 90 is the start (epoch 0); 71 is over the threshold; the tie at 70 goes to lower ASR.
    assert best_of_rows(rows) == r("b", 1, 70, 3)
    assert best_of_rows(rows, threshold=5.01) == r("b", 2, 71, 5.01)
    assert best_of_rows(rows, threshold=2) is None
    assert is_success(r("a", 1, 10, 5.0)) and not is_success(r("a", 0, 10, 0))
    assert not is_success({"epoch": 1, "clean_acc": float("nan"), "asr": 1.0})
