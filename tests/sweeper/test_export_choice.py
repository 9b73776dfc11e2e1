"""Which model `sweeper export` takes, and its errors, on hand-made stores (no sweep runs).

The real export, loaded back by open_clip alone, is tests/sweeper/test_notebook_export.py.
"""

# The hand-made stores are tests/results/conftest.py's fixtures, imported by name.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from results.store import read_epochs
from sweeper.errors import ExportError, SpecError
from sweeper.model_export import Choice, check_out, choose, kept_checkpoint, write_folder
from tests.results.conftest import make_trajectory, paper_store, write_sweep  # noqa: F401
from trainers.errors import CheckpointError


def test_best_is_the_highest_accuracy_at_asr_under_the_threshold(paper_store: Path) -> None:
    epochs = read_epochs(paper_store)
    got = choose(epochs, "cc6m", threshold=5.0)
    # Over both objectives: MMCL's 24.04 at ASR 4.0 beats MMCL+SSL's 13.05 at 4.9.
    assert (got.candidate.trial_id, got.candidate.epoch) == ("mmcl-b", 2)
    assert got.relative_change == pytest.approx((24.04 - 23.76) / 23.76)
    assert got.reference == {
        "kind": "start",
        "clean_acc": 23.76,
        "asr": 99.98,
        "trial_id": "mmcl-b",
    }
    assert got.candidate.checkpoint == "/ckpt/mmcl-b/epoch_2.pt"
    # At 3.5%: only mmcl-b's epoch 3 (23.0 at 3.0) qualifies.
    strict = choose(epochs, "cc6m", threshold=3.5).candidate
    assert (strict.trial_id, strict.epoch) == ("mmcl-b", 3)
    with pytest.raises(
        ExportError, match=r"no cleaned candidate at ASR <= 1% .*--trial T --epoch E"
    ):
        choose(epochs, "cc6m", threshold=1.0)


def test_a_chosen_epoch_with_its_relative_change(paper_store: Path) -> None:
    epochs = read_epochs(paper_store)
    got = choose(epochs, "cc6m", threshold=5.0, trial="ssl-b", epoch=1)
    # Not a success (ASR 97), but chosen: exported with its own relative change.
    assert (got.candidate.clean_acc, got.candidate.asr) == (23.0, 97.0)
    assert got.relative_change == pytest.approx((23.0 - 23.86) / 23.86)
    assert got.selected_by == "--trial ssl-b --epoch 1"
    start = choose(epochs, "cc6m", threshold=5.0, trial="ssl-b", epoch=0)
    assert (start.candidate.epoch, start.relative_change) == (0, None)
    with pytest.raises(ExportError, match=r"no trial 'ssl-z': pass one of mmcl-a, mmcl-b"):
        choose(epochs, "cc6m", threshold=5.0, trial="ssl-z", epoch=1)
    with pytest.raises(
        ExportError, match=r"trial ssl-b of sweep cc6m has no epoch 9: .* 0, 1, 2, 3"
    ):
        choose(epochs, "cc6m", threshold=5.0, trial="ssl-b", epoch=9)


def test_shrink_perturb_change_is_measured_from_the_unperturbed_model(
    write_sweep: Callable[..., Path], make_trajectory: Callable[..., Any]
) -> None:
    origin = make_trajectory("screen-mmcl-origin", [40.0], [90.0], stage="screen", shrink=1.0)
    clean = make_trajectory("clean-a", [30.0, 36.0], [80.0, 2.0], shrink=0.5, lr=1e-4)
    epochs = read_epochs(write_sweep("sp", origin + clean))
    got = choose(epochs, "sp", threshold=5.0)
    assert got.relative_change == pytest.approx((36.0 - 40.0) / 40.0)  # not from 30.0
    assert got.reference is not None and got.reference["clean_acc"] == 40.0
    assert got.reference["kind"].startswith("origin")


def test_a_checkpoint_not_kept_or_gone_is_named_with_the_fix(
    write_sweep: Callable[..., Path], make_trajectory: Callable[..., Any], tmp_path: Path
) -> None:
    rows = make_trajectory("clean-a", [30.0, 36.0, 35.0], [80.0, 2.0, 3.0])
    rows[0]["checkpoint"] = rows[1]["checkpoint"] = None
    rows[2]["checkpoint"] = "sp/checkpoints/clean-a/last.pt"  # relative to the store
    store = write_sweep("sp", rows)
    epochs = read_epochs(store)
    best = choose(epochs, "sp", threshold=5.0)
    assert best.candidate.epoch == 1
    with pytest.raises(
        ExportError,
        match=r"trial clean-a epoch 1 of sweep sp kept no checkpoint \(this trial kept epoch\(s\) "
        r"2: export one with --trial clean-a --epoch 2\).*clean.trial.save=every",
    ):
        kept_checkpoint(best, epochs, store)
    last = choose(epochs, "sp", threshold=5.0, trial="clean-a", epoch=2)
    with pytest.raises(ExportError, match=r"sp/checkpoints/clean-a/last.pt, is not there"):
        kept_checkpoint(last, epochs, store)
    (store / "sp/checkpoints/clean-a").mkdir(parents=True)
    (store / "sp/checkpoints/clean-a/last.pt").write_bytes(b"not a checkpoint")
    assert kept_checkpoint(last, epochs, store) == store / "sp/checkpoints/clean-a/last.pt"


def test_nothing_is_left_in_out_when_writing_fails(
    write_sweep: Callable[..., Path], make_trajectory: Callable[..., Any], tmp_path: Path
) -> None:
    store = write_sweep("sp", make_trajectory("clean-a", [30.0, 36.0], [80.0, 2.0]))
    choice: Choice = choose(read_epochs(store), "sp", threshold=5.0)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "exports" / "model"
    with pytest.raises(CheckpointError, match="could not be read"):
        write_folder(choice, bad, store / "sp", out)
    assert list((tmp_path / "exports").iterdir()) == []  # no out, no temporary folder
    (tmp_path / "exports" / "x").write_text("")
    check_out(tmp_path / "new")  # a new folder is fine
    with pytest.raises(ExportError, match="is not an empty folder"):
        check_out(tmp_path / "exports")


def test_sweeper_launch_refuses_bad_input_before_anything_runs(tmp_path: Path) -> None:
    import sweeper
    from sweeper.api import override_strings

    spec = Path(__file__).resolve().parents[2] / "search_spaces" / "demo.yaml"
    store = tmp_path / "store"
    with pytest.raises(SpecError, match=r"clean\.grid\.lr"):
        sweeper.launch(spec, overrides={"clean.grid.lr": [-1.0]}, store=store)
    with pytest.raises(SpecError, match="not one string"):
        sweeper.launch(spec, overrides="clean.grid.lr=[1e-4]", store=store)
    with pytest.raises(SpecError, match=r"override 'x': inf is not a YAML value"):
        override_strings({"x": float("inf")})
    assert not store.exists()
    assert override_strings({"a.b": [1e-5, 2e-3], "profile": "real", "c": None}) == [
        "a.b=[1e-05, 0.002]",
        'profile="real"',
        "c=null",
    ]
