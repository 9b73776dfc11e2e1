"""A real sweep's store, read by pandas, DuckDB and Polars with their plain defaults.

Pre-training rows sweep nothing and cleaning rows sweep `lr`: every part still carries
`p_lr` (null in pre-training), so no reader drops it or refuses a part.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results.store import read_epochs, read_trials
from sweeper.cli import main
from tests.results.test_store_readers import readme_readers
from tests.sweeper.test_launch import sweep_of, tiny_spec

pytestmark = pytest.mark.slow


def test_a_real_sweep_reads_whole_in_pandas_duckdb_and_polars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    clean = {"trial": {"optim": {"epochs": 1, "warmup_steps": 1}, "data": {"batch_size": 32}}}
    spec = tiny_spec(tmp_path, clean=clean)
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    sweep_dir = store / sweep_of(capsys.readouterr().out)

    assert json.loads((sweep_dir / "schema.json").read_text()) == {"epochs": {"p_lr": "double"}}
    for kind in ("epochs", "trials"):
        schemas = [pq.read_schema(p) for p in sorted((sweep_dir / kind).glob("part-*.parquet"))]
        assert len(schemas) >= 2 and all(s.equals(schemas[0]) for s in schemas), kind
    parts = sorted((sweep_dir / "epochs").glob("part-*.parquet"))
    assert {pq.read_schema(p).field("p_lr").type for p in parts} == {pa.float64()}

    # Pre-training: epochs 0-2 of one job; cleaning: epochs 0-1 of two learning rates.
    latest = read_epochs(store, [sweep_dir.name]).to_pandas()
    assert len(latest) == 3 + 2 * 2
    got = readme_readers(sweep_dir)
    counts = {}
    for name in ("raw_pd", "raw_duck", "raw_pl", "latest_pd", "latest_duck", "latest_pl"):
        df = got[name].to_pandas() if isinstance(got[name], pl.DataFrame) else got[name]
        counts[name] = len(df)
        assert "p_lr" in df.columns, name
        lrs = df.groupby("stage")["p_lr"].agg(lambda s: sorted(set(s.dropna())))
        assert lrs.to_dict() == {"pretrain": [], "clean": [1e-4, 1e-3]}, name
        pre = df[df.stage == "pretrain"]
        assert len(pre) == 3 and pre["p_lr"].isna().all(), name
    # A sweep that retried nothing appended each (trial, epoch) once: raw == latest.
    assert set(counts.values()) == {len(latest)}, counts
    print(f"rows: read_epochs {len(latest)}, {counts}")

    trials_raw = pl.scan_parquet(f"{sweep_dir}/trials/*.parquet").collect()
    assert trials_raw.height == len(pd.read_parquet(sweep_dir / "trials"))
    assert trials_raw["trial_id"].n_unique() == read_trials(store, [sweep_dir.name]).num_rows
