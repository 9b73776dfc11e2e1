"""Fixtures for the results tests: small stores written with the real StoreWriter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from results.store import StoreWriter

Rows = list[dict[str, Any]]


def trajectory(
    trial_id: str,
    acc: Sequence[float],
    asr: Sequence[float],
    *,
    method: str = "cleanclip",
    objective: str | None = "mmcl",
    loss: Sequence[float | None] | None = None,
    stage: str = "clean",
    **params: Any,
) -> Rows:
    """Rows of one trial: epoch i has accuracy acc[i] and ASR asr[i] (epoch 0 = start)."""
    rows = []
    for epoch, (a, s) in enumerate(zip(acc, asr, strict=True)):
        row = {
            "stage": stage,
            "trial_id": trial_id,
            "method": method,
            "objective": objective,
            "epoch": epoch,
            "clean_acc": a,
            "clean_top5": min(100.0, a + 10),
            "asr": s,
            "loss": None if loss is None else loss[epoch],
            "checkpoint": f"/ckpt/{trial_id}/epoch_{epoch}.pt",
        }
        row.update({f"p_{k}": v for k, v in params.items()})
        rows.append(row)
    return rows


@pytest.fixture
def make_trajectory() -> Callable[..., Rows]:
    return trajectory


@pytest.fixture
def write_sweep(tmp_path: Path) -> Callable[..., Path]:
    """write_sweep(sweep_id, rows, trials=None) -> store path (tmp_path / "store")."""
    store = tmp_path / "store"

    def write(sweep_id: str, rows: Rows, trials: Rows | None = None) -> Path:
        writer = StoreWriter(store, sweep_id)
        writer.append_epochs(rows)
        if trials:
            writer.append_trials(trials)
        return store

    return write


@pytest.fixture
def paper_store(write_sweep: Callable[..., Path]) -> Path:
    """A sweep shaped like the paper's CC6M study: MMCL cleans well, MMCL+SSL does not.

    MMCL: start 23.76/99.98; best under 5% is trial mmcl-b epoch 2 (24.04 at 4.0).
    MMCL+SSL: start 23.86/99.45; only candidate under 5% is 13.05 (ssl-a epoch 3).
    """
    rows = (
        trajectory(
            "mmcl-a",
            [23.76, 22.0, 21.5, 21.0],
            [99.98, 40.0, 6.0, 4.5],
            loss=[None, 2.0, 1.5, 1.2],
            lr=1e-5,
        )
        + trajectory(
            "mmcl-b",
            [23.76, 23.9, 24.04, 23.0],
            [99.98, 30.0, 4.0, 3.0],
            loss=[None, 2.1, 1.7, 1.9],
            lr=3e-5,
        )
        + trajectory(
            "ssl-a",
            [23.86, 20.0, 16.0, 13.05],
            [99.45, 80.0, 30.0, 4.9],
            objective="mmcl_ssl",
            loss=[None, 2.0, 1.0, 1.5],
            lr=1e-5,
        )
        + trajectory(
            "ssl-b",
            [23.86, 23.0, 22.0, 21.0],
            [99.45, 97.0, 98.0, 96.0],
            objective="mmcl_ssl",
            loss=[None, 2.0, 1.9, 1.8],
            lr=3e-5,
        )
        + trajectory(
            "pre-mmcl",
            [1.0, 10.0, 20.0, 23.76],
            [0.0, 50.0, 99.0, 99.98],
            method="mmcl",
            stage="pretrain",
        )
        + trajectory(
            "pre-ssl",
            [1.0, 12.0, 23.86, 24.5],
            [0.0, 40.0, 99.45, 99.9],
            method="mmcl_ssl",
            objective="mmcl_ssl",
            stage="pretrain",
        )
    )
    trials = [
        {
            "trial_id": "pre-mmcl",
            "stage": "pretrain",
            "method": "mmcl",
            "objective": "mmcl",
            "status": "completed",
            "selected_epoch": 3,
        },
        {
            "trial_id": "pre-ssl",
            "stage": "pretrain",
            "method": "mmcl_ssl",
            "objective": "mmcl_ssl",
            "status": "completed",
            "selected_epoch": 2,
        },
    ]
    return write_sweep("cc6m", rows, trials)
