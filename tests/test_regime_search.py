"""bench/regime_search.py: the paper's-shape verdict and the overrides it hands to launch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sweeper.overrides import parse_override

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rs() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "regime_search", ROOT / "bench" / "regime_search.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["regime_search"] = mod
    spec.loader.exec_module(mod)
    return mod


def fig(start_acc: float, start_asr: float, best_acc: float | None) -> dict[str, float | None]:
    rel = None if best_acc is None else (best_acc - start_acc) / start_acc
    return {"start_acc": start_acc, "start_asr": start_asr, "best_acc": best_acc,
            "best_asr": None if best_acc is None else 4.0, "best_lr": 1e-3, "best_epoch": 3,
            "rel": rel}  # fmt: skip


def test_the_paper_shape(rs: ModuleType) -> None:
    # MMCL loses 5 of 60 points (-8.3%); MMCL+SSL loses 25: 20 points more.
    gap, shape = rs.verdict({"mmcl": fig(60, 95, 55), "mmcl_ssl": fig(60, 97, 35)})
    assert gap == pytest.approx(20.0) and shape == "yes"
    # MMCL+SSL never reaches ASR <= 5: the shape too, with no gap figure.
    assert rs.verdict({"mmcl": fig(60, 95, 55), "mmcl_ssl": fig(60, 97, None)}) == (None, "yes")


def test_what_breaks_the_shape_is_named(rs: ModuleType) -> None:
    gap, shape = rs.verdict({"mmcl": fig(60, 95, 50), "mmcl_ssl": fig(60, 80, 40)})
    # -16.7% for MMCL, 10 points more for MMCL+SSL, and its start ASR under 90.
    assert gap == pytest.approx(10.0)
    assert shape == "no (start ASR < 90; MMCL drop > 10%; gap < 15)"
    assert rs.verdict({"mmcl": fig(60, 95, None), "mmcl_ssl": fig(60, 95, 30)}) == (
        None, "MMCL never cleans")  # fmt: skip
    assert rs.verdict({"mmcl": fig(60, 95, 55)}) == (None, "incomplete")


def test_overrides_reach_launch_as_the_same_values(rs: ModuleType) -> None:
    overrides = {"clean.grid.lr": [1e-5, 4e-3], "embedded.synthetic": {"n_classes": 20, "seed": 1},
                 "pretrain.trial.optim.epochs": 20, "embedded.poison_fraction": 0.1}  # fmt: skip
    parsed = [parse_override(a) for a in rs.override_args(overrides)]
    assert {".".join(keys): value for keys, value in parsed} == overrides


def test_the_gap_must_hold_in_points_and_in_relative_change(rs: ModuleType) -> None:
    # MMCL 60 -> 57 (-5%, 3 points); MMCL+SSL 100 -> 81: 16 points more, but -19% is only
    # 14 points of relative change more: not the shape.
    gap, shape = rs.verdict({"mmcl": fig(60, 95, 57), "mmcl_ssl": fig(100, 95, 81)})
    assert gap == pytest.approx(16.0) and shape == "no (gap < 15)"
    # 100 -> 79: 18 points and 16 relative points more.
    assert rs.verdict({"mmcl": fig(60, 95, 57), "mmcl_ssl": fig(100, 95, 79)})[1] == "yes"
