"""The Parquet store: atomic appends, one row per key, schema checks and clear errors."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results.errors import SchemaError, StoreError
from results.store import (
    EPOCH_COLUMNS,
    TRIAL_COLUMNS,
    StoreWriter,
    compact_sweep,
    list_sweeps,
    read_epochs,
    read_epochs_df,
    read_trials,
    read_trials_df,
)


def row(trial: str = "t0", epoch: int = 0, acc: float = 10.0, asr: float = 90.0, **extra):
    base = {
        "stage": "clean",
        "trial_id": trial,
        "method": "cleanclip",
        "epoch": epoch,
        "clean_acc": acc,
        "clean_top5": 20.0,
        "asr": asr,
    }
    return base | extra


def test_roundtrip_types_order_and_params(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    w.append_epochs([row("b", 1, p_lr=1e-5, p_shrink=0.9), row("a", 0, p_lr=2e-5, p_shrink=1)])
    t = read_epochs(tmp_path, ["s1"])
    names = [c.name for c in EPOCH_COLUMNS]
    assert t.column_names == names + ["p_lr", "p_shrink"]
    for c in EPOCH_COLUMNS:
        assert t.schema.field(c.name).type == c.type, c.name
    assert t["p_shrink"].type == pa.float64()  # int and float values -> float64
    assert t["trial_id"].to_pylist() == ["a", "b"]  # sorted by key
    assert t["sweep_id"].to_pylist() == ["s1", "s1"]
    assert t["host"].null_count == 0 and t["written_at"].null_count == 0
    assert t["objective"].to_pylist() == [None, None]  # missing optional column -> null
    assert list(read_epochs_df(tmp_path)["p_lr"]) == [2e-5, 1e-5]


def test_parts_with_different_params_are_unified(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    w.append_epochs([row("a", 0, p_lr=1e-5, p_source="kmeans")])
    w.append_epochs([row("b", 0, p_lr=3, p_flag=True)])
    t = read_epochs(tmp_path)
    assert t["p_lr"].type == pa.float64() and t["p_lr"].to_pylist() == [1e-5, 3.0]
    assert t["p_source"].to_pylist() == ["kmeans", None]
    assert t["p_flag"].to_pylist() == [None, True]


def test_latest_written_at_wins_per_key(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    w.append_epochs([row("a", 1, acc=1.0, written_at=t0 + timedelta(seconds=10))])
    # Written later, but stamped earlier (a slow host): the stamp decides, not the file.
    w.append_epochs([row("a", 1, acc=2.0, written_at=t0)])
    w.append_epochs([row("a", 2, acc=3.0, written_at=t0), row("a", 0, acc=9.0)])
    # A retried epoch with the same stamp: the later part file wins.
    w.append_epochs([row("a", 2, acc=4.0, written_at=t0)])
    t = read_epochs(tmp_path)
    assert t["epoch"].to_pylist() == [0, 1, 2]
    assert t["clean_acc"].to_pylist() == [9.0, 1.0, 4.0]


def test_trials_latest_state_and_json(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    base = {"trial_id": "t1", "stage": "clean", "method": "cleanclip"}
    w.append_trials([base | {"status": "running", "params": {"lr": 1e-5}}])
    w.append_trials([base | {"status": "completed", "params": {"lr": 1e-5}, "selected_epoch": 3}])
    t = read_trials(tmp_path)
    assert t.num_rows == 1
    assert [c.name for c in TRIAL_COLUMNS] == t.column_names
    rec = t.to_pylist()[0]
    assert rec["status"] == "completed" and rec["params"] == '{"lr": 1e-05}'
    assert rec["selected_epoch"] == 3
    assert read_trials_df(tmp_path)["status"].tolist() == ["completed"]
    with pytest.raises(SchemaError, match="status 'done'"):
        w.append_trials([base | {"status": "done"}])


def test_bad_rows_are_refused_with_the_column_named(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    with pytest.raises(SchemaError, match=r"unknown column 'learning_rate'.*p_<name>"):
        w.append_epochs([row(learning_rate=1e-5)])
    with pytest.raises(SchemaError, match="required column 'asr'"):
        w.append_epochs([{k: v for k, v in row().items() if k != "asr"}])
    with pytest.raises(SchemaError, match="stage 'finetune'"):
        w.append_epochs([row(stage="finetune")])
    with pytest.raises(SchemaError, match="'p_lr' mixes"):
        w.append_epochs([row(p_lr=1e-5), row(epoch=1, p_lr="high")])
    with pytest.raises(SchemaError, match="differs from this writer"):
        w.append_epochs([row(sweep_id="other")])
    with pytest.raises(SchemaError, match="'epoch'"):
        w.append_epochs([row(epoch="one")])
    assert w.append_epochs([]) is None
    assert not list((tmp_path / "s1" / "epochs").iterdir())  # nothing half-written


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "a b", "x..y"])
def test_sweep_ids_that_are_not_safe_directory_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SchemaError, match="not usable as a directory name"):
        StoreWriter(tmp_path, bad)


def test_layout_spec_and_temp_files_ignored(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    assert {p.name for p in w.sweep_dir.iterdir()} == {"epochs", "trials", "checkpoints"}
    assert w.checkpoints_dir == tmp_path / "s1" / "checkpoints"
    w.write_spec("grid: {lr: [1e-5]}\n")
    w.write_spec("grid: {lr: [2e-5]}\n")
    assert (w.sweep_dir / "spec.yaml").read_text() == "grid: {lr: [2e-5]}\n"
    path = w.append_epochs([row()])
    assert path is not None and path.name.startswith("part-") and path.suffix == ".parquet"
    # What a writer killed mid-write leaves: a hidden temp file, never read.
    (w.sweep_dir / "epochs" / ".part-9-9-deadbeef.parquet.tmp").write_bytes(b"PAR1 half")
    assert read_epochs(tmp_path).num_rows == 1
    assert not [p for p in w.sweep_dir.rglob("*.tmp") if "spec" in p.name]


def test_sweep_arguments_ids_and_paths(tmp_path: Path) -> None:
    StoreWriter(tmp_path, "b").append_epochs([row()])
    StoreWriter(tmp_path, "a").append_epochs([row()])
    assert list_sweeps(tmp_path) == ["a", "b"]
    assert read_epochs(tmp_path)["sweep_id"].to_pylist() == ["a", "b"]
    t = read_epochs(tmp_path / "nowhere", [tmp_path / "b"])  # a sweep path needs no store
    assert t["sweep_id"].to_pylist() == ["b"]
    with pytest.raises(StoreError, match=r"no sweep 'c' in store .*sweeps there: a, b"):
        read_epochs(tmp_path, ["c"])
    with pytest.raises(StoreError, match="is a store, not a sweep"):
        read_epochs(tmp_path, [tmp_path])


def test_not_a_store_empty_sweep_and_broken_parts(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        read_epochs(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="holds no sweeps: is this a sweeper store"):
        read_epochs(tmp_path / "plain")
    with pytest.raises(StoreError, match="is not a sweep directory"):
        read_epochs(tmp_path, [tmp_path / "plain"])
    StoreWriter(tmp_path, "empty")
    with pytest.raises(StoreError, match=r"empty/epochs has no part files: is this a sweeper"):
        read_epochs(tmp_path, ["empty"])
    with pytest.raises(StoreError, match="trials has no part files"):
        read_trials(tmp_path, ["empty"])
    assert read_trials(tmp_path, ["empty"], missing_ok=True).num_rows == 0


def test_part_file_missing_a_column_or_corrupt(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    w.append_epochs([row()])
    # A part written by another tool without the ASR column.
    foreign = pa.Table.from_pylist(
        [{k: v for k, v in row("z").items() if k != "asr"} | {"sweep_id": "s1"}]
    )
    pq.write_table(foreign, w.sweep_dir / "epochs" / "part-99999999999999999999-1-aaaa.parquet")
    with pytest.raises(
        SchemaError,
        match=r"part-99999999999999999999-1-aaaa.parquet lacks the required column 'asr'",
    ):
        read_epochs(tmp_path)
    (w.sweep_dir / "epochs" / "part-99999999999999999999-1-aaaa.parquet").write_bytes(b"junk")
    with pytest.raises(StoreError, match="damaged part file .*aaaa.parquet"):
        read_epochs(tmp_path)


def test_part_files_with_conflicting_param_types(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1")
    w.append_epochs([row("a", p_source="kmeans")])
    w.append_epochs([row("b", p_source=3)])
    with pytest.raises(SchemaError, match="'p_source' has types"):
        read_epochs(tmp_path)


def test_epoch_record_fields_fit_the_schema(tmp_path: Path) -> None:
    """What the trainers report (EpochRecord.to_dict) is accepted as is."""
    from trainers.reporter import EpochRecord

    rec = EpochRecord(epoch=0, clean_acc=10.0, clean_top5=30.0, asr=99.0, skipped=2)
    r = rec.to_dict() | {"stage": "clean", "trial_id": "t", "method": "cleanclip"}
    StoreWriter(tmp_path, "s").append_epochs([r])
    assert read_epochs(tmp_path)["skipped"].to_pylist() == [2]


def _append_slowly(store: str, n_parts: int) -> None:
    # Compacting every few appends races the reader on purpose: parts vanish under it.
    w = StoreWriter(store, "live", compact_every=7)
    for i in range(n_parts):
        w.append_epochs([row(f"t{i:03d}", e, p_lr=float(i)) for e in range(3)])
        time.sleep(0.005)


def test_reading_while_another_process_appends(tmp_path: Path) -> None:
    StoreWriter(tmp_path, "live").append_epochs([row("seed")])
    proc = mp.get_context("spawn").Process(target=_append_slowly, args=(str(tmp_path), 60))
    proc.start()
    counts = []
    try:
        while proc.is_alive() or not counts:
            t = read_epochs(tmp_path, ["live"])
            keys = list(zip(t["trial_id"].to_pylist(), t["epoch"].to_pylist(), strict=True))
            assert len(keys) == len(set(keys))
            assert (t.num_rows - 1) % 3 == 0  # whole parts only
            counts.append(t.num_rows)
    finally:
        proc.join(timeout=60)
    assert proc.exitcode == 0
    assert counts == sorted(counts)
    assert len(set(counts)) >= 3  # it did read while the parts were landing
    assert read_epochs(tmp_path, ["live"]).num_rows == 1 + 60 * 3
    assert len(list((tmp_path / "live" / "epochs").glob("part-*"))) < 20


def test_compaction_keeps_every_row_and_the_latest_wins(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s1", compact_every=None)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for i in range(30):
        w.append_epochs([row(f"t{i % 10}", i // 10, acc=float(i), p_lr=float(i), written_at=t0)])
    w.append_epochs([row("t0", 0, acc=99.0, p_other="x", written_at=t0)])  # re-reported later
    w.append_trials([{"trial_id": "t0", "stage": "clean", "method": "m", "status": "running"}])
    w.append_trials([{"trial_id": "t0", "stage": "clean", "method": "m", "status": "completed"}])
    before = read_epochs(tmp_path)
    assert compact_sweep(tmp_path, "s1") == 31 + 2
    after = read_epochs(tmp_path)
    assert after.drop_columns(["written_at"]).equals(before.drop_columns(["written_at"]))
    assert after["clean_acc"].to_pylist()[0] == 99.0  # tie on written_at: later part still wins
    assert len(list((w.sweep_dir / "epochs").glob("part-*.parquet"))) == 1
    assert read_trials(tmp_path)["status"].to_pylist() == ["completed"]
    assert w.compact() == 0  # one part left: nothing to merge
    auto = StoreWriter(tmp_path, "s2", compact_every=10)
    for i in range(25):
        auto.append_epochs([row(f"t{i}")])
    assert len(list((auto.sweep_dir / "epochs").glob("part-*.parquet"))) == 1 + 5
    assert read_epochs(tmp_path, ["s2"]).num_rows == 25
