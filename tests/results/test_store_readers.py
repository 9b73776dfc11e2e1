"""One schema per sweep: pandas, DuckDB and Polars read a store with their plain defaults.

Every epochs part of a sweep that declared its `p_` columns holds all of them, in one type
each, so no reader drops a column (DuckDB's and pandas' first-file schema) or refuses a part
(Polars' `extra column in file outside of expected schema`, an int64/double clash).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results.errors import SchemaError, StoreError
from results.schema import param_kind
from results.store import StoreWriter, compact_sweep, read_declared, read_epochs

README = Path(__file__).resolve().parents[2] / "README.md"
KEY = ["sweep_id", "trial_id", "epoch"]
DECLARED = {
    "p_lr": "double",
    "p_method": "string",
    "p_perturb_sigma": "double",
    "p_shrink": "double",
}
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def row(stage: str, trial: str, epoch: int, acc: float, **params: Any) -> dict[str, Any]:
    return {
        "stage": stage,
        "trial_id": trial,
        "method": "cleanclip" if stage == "clean" else "mmcl",
        "epoch": epoch,
        "clean_acc": acc,
        "asr": 50.0,
        "written_at": T0 + timedelta(seconds=acc),
        **{f"p_{k}": v for k, v in params.items()},
    }


def staged_sweep(store: Path) -> StoreWriter:
    """Parts shaped like a real sweep's: pre-training (no params), a screen, a clean grid
    (one epoch re-reported later, as a retried trial does): 9 rows appended, 8 keys."""
    w = StoreWriter(store, "s1", params=DECLARED, compact_every=None)
    w.append_epochs([row("pretrain", "pretrain-mmcl", e, 10.0 + e) for e in range(3)])
    w.append_epochs([row("screen", "screen-a", 0, 20.0, shrink=1, perturb_sigma=0.0)])
    w.append_epochs([row("screen", "screen-b", 0, 21.0, shrink=0.9, perturb_sigma=1e-3)])
    w.append_epochs([row("clean", "clean-x", e, 30.0 + e, lr=1e-4, shrink=0.9) for e in (0, 1)])
    w.append_epochs([row("clean", "clean-y", 0, 40.0, lr=1e-3, method="cleanclip")])
    w.append_epochs([row("clean", "clean-x", 1, 35.0, lr=1e-4, shrink=0.9)])  # re-reported
    return w


def part_schemas(sweep_dir: Path) -> list[pa.Schema]:
    return [pq.read_schema(p) for p in sorted((sweep_dir / "epochs").glob("part-*.parquet"))]


def readme_readers(sweep: Path) -> dict[str, Any]:
    """The README's store example, run as written with `sweep` set to this sweep."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The results store") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "README's store section has no python example"
    line = f"sweep = {str(sweep)!r}"
    source, n = re.subn(r'^sweep = ".*"(.*)$', line, code.group(1), count=1, flags=re.M)
    assert n == 1, 'README\'s example sets no `sweep = "..."`'
    names: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), names)
    return names


def params_of(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if c.startswith("p_"))


def by_key(df: pd.DataFrame, cols: list[str]) -> list[tuple[Any, ...]]:
    out = df.sort_values(["trial_id", "epoch", "clean_acc"])[["trial_id", "epoch", *cols]]
    return [tuple(None if pd.isna(v) else v for v in r) for r in out.itertuples(index=False)]


def test_every_part_has_the_sweeps_schema_and_every_reader_keeps_it(tmp_path: Path) -> None:
    w = staged_sweep(tmp_path)
    schemas = part_schemas(w.sweep_dir)
    assert len(schemas) == 6
    assert all(s.equals(schemas[0]) for s in schemas), {str(s) for s in schemas}
    assert [schemas[0].field(n).type for n in sorted(DECLARED)] == [
        pa.float64(),
        pa.string(),
        pa.float64(),
        pa.float64(),
    ]
    assert json.loads((w.sweep_dir / "schema.json").read_text()) == {"epochs": DECLARED}

    got = readme_readers(w.sweep_dir)
    want = read_epochs(tmp_path, ["s1"]).to_pandas()
    assert len(want) == 8
    cols = sorted(DECLARED)
    again = want[(want.trial_id == "clean-x") & (want.epoch == 1)]
    expected_raw = by_key(pd.concat([want, again]), cols)
    for name in ("raw_pd", "raw_duck", "raw_pl"):
        df = got[name] if name != "raw_pl" else got[name].to_pandas()
        assert len(df) == 9, name  # every appended row: the re-reported epoch twice
        assert params_of(df) == cols, name
        assert by_key(df, cols) == expected_raw, name
    for name in ("latest_pd", "latest_duck", "latest_pl"):
        df = got[name] if name != "latest_pl" else got[name].to_pandas()
        assert len(df) == 8, name
        assert by_key(df, ["clean_acc", *cols]) == by_key(want, ["clean_acc", *cols]), name
    pre = want[want.stage == "pretrain"]
    assert pre[cols].isna().all().all()  # declared, null where unused
    assert by_key(want[want.trial_id == "screen-a"], ["p_shrink"]) == [("screen-a", 0, 1.0)]


def test_compaction_keeps_the_sweeps_schema(tmp_path: Path) -> None:
    w = staged_sweep(tmp_path)
    before = part_schemas(w.sweep_dir)[0]
    assert compact_sweep(tmp_path, "s1") == 6 + 0  # trials: none written
    w.append_epochs([row("clean", "clean-z", 0, 50.0, lr=3e-4)])
    after = part_schemas(w.sweep_dir)
    assert len(after) == 2 and all(s.equals(before) for s in after)
    assert pl.scan_parquet(f"{w.sweep_dir}/epochs/*.parquet").collect().height == 10
    # A writer opened later (resume, `sweeper check`) takes the declaration from schema.json.
    again = StoreWriter(tmp_path, "s1")
    assert again.params == DECLARED
    again.append_epochs([row("pretrain", "pretrain-ssl", 0, 1.0)])
    assert all(s.equals(before) for s in part_schemas(w.sweep_dir))


def test_optuna_ints_and_floats_of_one_param_are_one_double_column(tmp_path: Path) -> None:
    """An Optuna float range that sampled 0 (an int) in one part and 0.01 in another."""
    w = StoreWriter(tmp_path, "opt", params={"p_weight_decay": "double", "p_lr": "double"})
    w.append_epochs([row("clean", "clean-optuna-1", 0, 1.0, weight_decay=0, lr=1)])
    w.append_epochs([row("clean", "clean-optuna-2", 0, 2.0, weight_decay=0.01, lr=1e-4)])
    schemas = part_schemas(w.sweep_dir)
    assert [s.field("p_weight_decay").type for s in schemas] == [pa.float64()] * 2
    assert pa.unify_schemas(schemas).field("p_weight_decay").type == pa.float64()
    glob = f"{w.sweep_dir}/epochs/*.parquet"
    polars = pl.scan_parquet(glob).collect().sort("trial_id")
    assert polars.schema["p_weight_decay"] == pl.Float64
    assert polars["p_weight_decay"].to_list() == [0.0, 0.01]
    duck = duckdb.sql(f"SELECT p_weight_decay FROM read_parquet('{glob}') ORDER BY trial_id")
    assert duck.fetchall() == [(0.0,), (0.01,)]
    assert pd.read_parquet(w.sweep_dir / "epochs")["p_weight_decay"].dtype == "float64"


def test_declared_columns_refuse_what_does_not_fit(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path, "s", params={"p_lr": "double", "p_source": "string"})
    with pytest.raises(SchemaError, match=r"'p_ssl' .* not one of the sweep's declared"):
        w.append_epochs([row("clean", "t", 0, 1.0, lr=1e-3, ssl=0.5)])
    with pytest.raises(SchemaError, match=r"'p_lr' is declared double .* holds 'fast'"):
        w.append_epochs([row("clean", "t", 0, 1.0, lr="fast")])
    with pytest.raises(SchemaError, match=r"'p_lr' is declared double .* holds True"):
        w.append_epochs([row("clean", "t", 0, 1.0, lr=True)])
    # An undeclared column with no value says nothing: dropped (rows copied from a cache).
    w.append_epochs([row("clean", "t", 0, 1.0, lr=1e-3, ssl=None, source=3)])
    t = read_epochs(tmp_path, ["s"])
    assert t.column_names[-2:] == ["p_lr", "p_source"] and t["p_source"].to_pylist() == ["3"]
    with pytest.raises(SchemaError, match=r"declares p_lr as double, now declared as string"):
        StoreWriter(tmp_path, "s", params={"p_lr": "string"})
    with pytest.raises(SchemaError, match=r"'lr': not a p_<name> column.*'p_x': type 'int64'"):
        StoreWriter(tmp_path, "bad", params={"lr": "double", "p_x": "int64"})
    assert StoreWriter(tmp_path, "s", params={"p_new": "double"}).params == {
        "p_lr": "double",
        "p_new": "double",
        "p_source": "string",
    }
    (tmp_path / "s" / "schema.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"cannot read .*schema.json.*delete it"):
        read_declared(tmp_path / "s")


def test_param_kind_numbers_as_doubles_categories_as_strings() -> None:
    assert param_kind("lr", [1, 1e-3]) == "double"
    assert param_kind("method", ["cleanclip", "mmcl"]) == "string"
    assert param_kind("batch", [32, "auto"]) == "string"  # a categorical's choices
    assert param_kind("flag", [True, None]) == "bool"
    assert param_kind("lr", []) == "double"  # an Optuna range: no values planned
    with pytest.raises(SchemaError, match="mixes booleans"):
        param_kind("x", [True, 1])


def test_an_undeclared_store_still_reads_and_compaction_gives_it_one_schema(
    tmp_path: Path,
) -> None:
    """Stores written before declarations: parts differ, the store's reader unifies them,
    and a compaction with the declared columns leaves one part every reader takes."""
    old = StoreWriter(tmp_path, "old", compact_every=None)
    old.append_epochs([row("pretrain", "pretrain-mmcl", 0, 1.0)])
    old.append_epochs([row("clean", "c1", 0, 2.0, weight_decay=0)])
    old.append_epochs([row("clean", "c2", 0, 3.0, weight_decay=0.5, lr=1e-3)])
    assert len({str(s) for s in part_schemas(old.sweep_dir)}) == 3
    assert read_epochs(tmp_path, ["old"])["p_weight_decay"].to_pylist() == [0.0, 0.5, None]
    declared = StoreWriter(tmp_path, "old", params={"p_lr": "double", "p_weight_decay": "double"})
    assert declared.compact() == 3
    (schema,) = part_schemas(old.sweep_dir)
    assert schema.field("p_weight_decay").type == pa.float64()
    lazy = pl.scan_parquet(f"{old.sweep_dir}/epochs/*.parquet").collect().sort("trial_id")
    assert lazy["p_lr"].to_list() == [None, 1e-3, None]
