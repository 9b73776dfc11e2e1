"""Checkpoint retention on hand-made rows: which checkpoints each policy keeps, pruning that
records before it deletes, and the store's reader showing a pruned checkpoint as null."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from results.pruned import read_pruned
from results.store import StoreWriter, read_epochs
from sweeper.cli import main
from sweeper.retention import best_per_group, keep_checkpoints, prune


def row(trial: str, epoch: int, acc: float, asr: float, **kw: Any) -> dict[str, Any]:
    base = {"trial_id": trial, "epoch": epoch, "clean_acc": acc, "asr": asr, "stage": "clean",
            "objective": "mmcl", "method": "cleanclip", "checkpoint": f"ck/{trial}-{epoch}.pt"}  # fmt: skip
    return base | kw


# Trial a: its epoch 2 (60, 4) and b's epoch 1 (70, 20) are the frontier of the group;
# a1 (50, 30) is dominated by b1, b2 (40, 25) by a2. c is another method: its own frontier.
ROWS = [
    row("a", 0, 80, 90),  # the start model: never a candidate
    row("a", 1, 50, 30),
    row("a", 2, 60, 4),
    row("b", 0, 80, 90),
    row("b", 1, 70, 20),
    row("b", 2, 40, 25),
    row("c", 1, 10, 50, method="l2"),
    row("c", 2, 5, 60, method="l2"),
]


def test_frontier_keeps_each_groups_pareto_candidates_and_the_best() -> None:
    keep = keep_checkpoints(ROWS, "frontier", selected=best_per_group(ROWS, 5.0))
    assert keep == {"ck/a-2.pt", "ck/b-1.pt", "ck/c-1.pt"}


def test_selected_keeps_only_what_the_stage_hands_on() -> None:
    # The success rule (ASR <= 5): a2 in cleanclip; nothing in l2.
    assert best_per_group(ROWS, 5.0) == {"ck/a-2.pt"}
    assert keep_checkpoints(ROWS, "selected", selected={"ck/a-2.pt"}) == {"ck/a-2.pt"}


def test_last_keeps_each_trials_last_and_all_keeps_everything() -> None:
    assert keep_checkpoints(ROWS, "last") == {"ck/a-2.pt", "ck/b-2.pt", "ck/c-2.pt"}
    assert keep_checkpoints(ROWS, "all") == {r["checkpoint"] for r in ROWS}


def test_a_running_trial_keeps_its_last_checkpoint_whatever_the_policy() -> None:
    keep = keep_checkpoints(ROWS[:5], "selected", running={"b"})
    assert keep == {"ck/b-1.pt"}


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="keep policy 'best'"):
        keep_checkpoints(ROWS, "best")


def test_prune_records_then_deletes_and_the_reader_nulls_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    writer = StoreWriter(store, "s1")
    rows = [row("a", 1, 50, 30), row("a", 2, 60, 4)]
    for r in rows:
        r["checkpoint"] = f"s1/checkpoints/{r['trial_id']}-{r['epoch']}.pt"
        (store / r["checkpoint"]).write_bytes(b"weights")
    outside = tmp_path / "user-start.pt"  # an absolute path: never the store's to delete
    outside.write_bytes(b"weights")
    rows.append(row("u", 1, 1, 99, checkpoint=str(outside)))
    writer.append_epochs(rows)

    gone = prune(rows, {"s1/checkpoints/a-2.pt"}, writer.sweep_dir, store)
    assert gone == ["s1/checkpoints/a-1.pt"]
    assert read_pruned(writer.sweep_dir) == {"s1/checkpoints/a-1.pt"}
    assert sorted(p.name for p in writer.checkpoints_dir.iterdir()) == ["a-2.pt"]
    assert outside.is_file()
    by_epoch = {
        (r["trial_id"], r["epoch"]): r["checkpoint"] for r in read_epochs(store).to_pylist()
    }
    assert by_epoch == {("a", 1): None, ("a", 2): "s1/checkpoints/a-2.pt", ("u", 1): str(outside)}
    assert prune(rows, {"s1/checkpoints/a-2.pt"}, writer.sweep_dir, store) == []  # once


def test_a_keep_value_that_is_no_policy_is_a_spec_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.sweeper.test_launch import tiny_spec

    spec = tiny_spec(tmp_path, clean={"keep": "best"})
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr()
    said = err.out + err.err
    assert "clean.keep" in said and "'frontier', 'selected', 'last' or 'all'" in said, said


def test_launch_refuses_a_plan_whose_checkpoints_cannot_fit_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from tests.sweeper.test_launch import tiny_spec

    spec = tiny_spec(tmp_path)
    store = tmp_path / "store"
    free = shutil.disk_usage(tmp_path).free
    # ViT-bigG-14's state dict is ~10 GB; keeping every one of 10**6 cleaning epochs cannot
    # fit any disk this test runs on.
    big = ["embedded.model=ViT-bigG-14", "clean.keep=all", "clean.trial.optim.epochs=1000000"]
    assert main(["launch", str(spec), "--store", str(store), *big]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if "may take" in ln]
    need = int(line.split("(")[1].split(" bytes")[0])
    assert need > free and "--ignore-disk" in line and str(tmp_path) in line, line
    assert not store.exists()  # refused before anything was written or started
