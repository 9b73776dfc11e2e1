"""The paper's selection rules on hand-made rows (PAPER_NOTES, "Model selection after
pre-training"; D.13's screen pick), and one screen pick per start model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results.store import StoreWriter
from sweeper.plan import StagePlan, TrialPlan
from sweeper.selection import pick_screened, select_pretrained
from sweeper.stages import pick_screen


def row(epoch: int, acc: float, asr: float = 50.0, ckpt: bool = True, **kw: Any) -> dict[str, Any]:
    return {"epoch": epoch, "clean_acc": acc, "asr": asr,
            "checkpoint": f"e{epoch}.pt" if ckpt else None, **kw}  # fmt: skip


PAPER = {"mmcl": {"rule": "max_acc"}, "ssl": {"rule": "closest_acc", "reference": "mmcl"}}


def test_mmcl_keeps_its_most_accurate_epoch_never_epoch_0() -> None:
    runs = {"mmcl": [row(0, 99.0), row(1, 20.0), row(2, 31.0), row(3, 30.0)]}
    assert select_pretrained(runs, PAPER)["mmcl"]["epoch"] == 2


def test_mmcl_ties_go_to_the_earlier_epoch_and_rows_without_weights_are_skipped() -> None:
    runs = {"mmcl": [row(1, 20.0), row(2, 31.0), row(3, 31.0), row(4, 40.0, ckpt=False)]}
    assert select_pretrained(runs, PAPER)["mmcl"]["epoch"] == 2


def test_mmcl_ssl_takes_the_accuracy_closest_to_the_mmcl_models() -> None:
    runs = {
        "mmcl": [row(1, 10.0), row(2, 23.76), row(3, 22.0)],
        # |22.0 - 23.76| = 1.76 and |25.0 - 23.76| = 1.24: epoch 4, though 30 is higher.
        "ssl": [row(1, 22.0), row(2, 30.0), row(3, 12.0), row(4, 25.0)],
    }
    chosen = select_pretrained(runs, PAPER)
    assert chosen["mmcl"]["epoch"] == 2 and chosen["ssl"]["epoch"] == 4


def test_mmcl_ssl_ties_in_distance_go_to_the_earlier_epoch() -> None:
    runs = {"mmcl": [row(1, 20.0)], "ssl": [row(1, 10.0), row(2, 18.0), row(3, 22.0)]}
    assert select_pretrained(runs, PAPER)["ssl"]["epoch"] == 2


def test_mmcl_ssl_without_its_reference_falls_back_to_the_highest_accuracy() -> None:
    runs = {"ssl": [row(1, 10.0), row(2, 18.0), row(3, 15.0)]}
    assert select_pretrained(runs, PAPER)["ssl"]["epoch"] == 2


def test_screen_pick_is_strictly_below_the_asr_limit_and_ties_go_to_lower_asr() -> None:
    rows = [
        row(0, 60.0, 15.0, trial_id="a"),  # ASR 15 is not < 15
        row(0, 50.0, 14.0, trial_id="b"),
        row(0, 50.0, 3.0, trial_id="c"),
        row(0, 49.0, 0.0, trial_id="d"),
    ]
    assert pick_screened(rows, max_asr=15)["trial_id"] == "c"
    assert pick_screened(rows, max_asr=15.5)["trial_id"] == "a"
    assert pick_screened(rows, max_asr=0) is None


def _screen_trial(start: str, shrink: float) -> TrialPlan:
    tid = f"screen-{start}-shrink={shrink}"
    return TrialPlan(tid, "screen", "screen", "shrink_perturb", start, {"shrink": shrink},
                     {"model": {}}, start)  # fmt: skip


def test_one_screen_pick_per_start_model(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store", "two-starts")
    trials = [_screen_trial(s, k) for s in ("mmcl", "mmcl_ssl") for k in (0.5, 0.9)]
    # The MMCL model's perturbations are all more accurate than the MMCL+SSL model's: a
    # single pick over all rows would hand the MMCL model to both objectives' cleaning.
    acc = {
        ("mmcl", 0.5): 60.0,
        ("mmcl", 0.9): 70.0,
        ("mmcl_ssl", 0.5): 40.0,
        ("mmcl_ssl", 0.9): 30.0,
    }
    writer.append_epochs(
        [
            {"stage": "screen", "trial_id": t.trial_id, "method": t.method, "objective": t.start,
             "epoch": 0, "clean_acc": acc[(t.start, t.params["shrink"])], "asr": 1.0,
             "checkpoint": str(tmp_path / f"{t.trial_id}.pt"), "p_shrink": t.params["shrink"]}
            for t in trials
        ]
    )  # fmt: skip
    stage = StagePlan("screen", tuple(trials), {"cpu": 1}, {"max_asr": 15}, None, 0)
    picks = pick_screen(stage, writer)
    assert set(picks) == {"mmcl", "mmcl_ssl"}
    assert picks["mmcl"]["checkpoint"].endswith("screen-mmcl-shrink=0.9.pt")
    assert picks["mmcl_ssl"]["checkpoint"].endswith("screen-mmcl_ssl-shrink=0.5.pt")
    assert picks["mmcl_ssl"]["params"] == {"shrink": 0.5}
