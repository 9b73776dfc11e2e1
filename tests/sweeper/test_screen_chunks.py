"""Screen trials in chunks: sizing and grouping by hand, then a real screen whose points keep
their own ids, rows and statuses though several ran in one Ray trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from results.store import read_epochs, read_trials
from sweeper.cli import main
from sweeper.screen_chunks import (
    BATCH,
    POINTS,
    Batched,
    chunk_size,
    make_chunks,
    points_of,
    slots,
    unbatched,
)
from tests.sweeper.test_launch import sweep_of, tiny_spec


def test_slots_count_what_every_node_holds() -> None:
    nodes = [{"CPU": 2.0, "GPU": 0.0}, {"CPU": 16.0, "GPU": 2.0}]
    assert slots({"cpu": 1}, nodes) == 18
    assert slots({"cpu": 2, "gpu": 0.25}, nodes) == 0 + 8  # the CPU box has no GPU
    assert slots({"cpu": 64}, nodes) == 1  # never zero: a stage that fits nowhere was refused


def test_chunk_size_leaves_every_slot_about_four_chunks() -> None:
    assert chunk_size(256, 2) == 32  # 256 / (2 * 4)
    assert chunk_size(256, 16) == 4
    assert chunk_size(5, 8) == 1  # fewer points than slots: one each
    assert chunk_size(10_000, 2) == 32  # at most 32 points a chunk


def _point(tid: str, start: str) -> dict[str, Any]:
    return {"trial_id": tid, "config": {"model": {"checkpoint": start}}, "params": {}}


def test_chunks_share_a_start_model_and_keep_every_point() -> None:
    pts = [_point(f"a{i}", "A.pt") for i in range(5)] + [_point("b0", "B.pt")]
    chunks = make_chunks(pts, 2, "screen")
    assert [c["trial_id"] for c in chunks] == [
        "screen-chunk-a0",
        "screen-chunk-a2",
        "a4",  # a lone point stays a plain trial
        "b0",
    ]
    assert [p["trial_id"] for c in chunks for p in points_of(c)] == [p["trial_id"] for p in pts]
    assert all(
        {(p["config"]["model"]["checkpoint"]) for p in c.get(POINTS, [c])} != {"A.pt", "B.pt"}
        for c in chunks
    )
    assert make_chunks(pts, 1, "screen") == pts


@pytest.mark.slow
def test_a_chunks_reports_go_in_batches_and_come_out_in_order() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    batched = Batched(lambda kind, m: sent.append((kind, m)), every_s=1e9)
    for i in range(3):
        batched("epoch", {"_point": f"p{i}", "epoch": 0})
        batched("outcome", {"_point": f"p{i}", "status": "completed"})
    assert sent == []  # nothing before the interval or the chunk's end
    batched.flush()
    batched.flush()  # an empty buffer sends nothing
    assert [k for k, _ in sent] == [BATCH]
    items = unbatched({"_kind": BATCH, "host": "h/1", **sent[0][1]})
    assert [(r["_kind"], r["_point"], r["host"]) for r in items] == [
        (kind, f"p{i}", "h/1") for i in range(3) for kind in ("epoch", "outcome")
    ]
    # Past the interval every report goes at once; a plain result passes through.
    eager: list[tuple[str, dict[str, Any]]] = []
    now = Batched(lambda kind, m: eager.append((kind, m)), every_s=0)
    now("epoch", {"_point": "p0"})
    assert len(eager) == 1 and unbatched({"_kind": "epoch", "x": 1}) == [{"_kind": "epoch", "x": 1}]


def test_a_chunked_screen_stores_each_point_as_its_own_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tiny_spec(tmp_path, name="chunks")
    spec = yaml.safe_load(path.read_text())
    # 18 points + the unperturbed origin on 1-CPU trials: chunks of ceil(19 / (slots * 4)).
    spec["screen"] = {
        "grid": {"shrink": [0.6, 0.8, 1.0], "perturb_sigma": [0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2]},
        "pick": {"max_asr": 100},
    }
    spec["clean"] = {
        "method": "shrink_perturb",
        "grid": {"lr": [1e-4]},
        "trial": {"optim": {"epochs": 1, "warmup_steps": 1}, "data": {"batch_size": 32}},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    store = tmp_path / "store"
    assert main(["launch", str(path), "--store", str(store)]) == 0
    sweep = sweep_of(capsys.readouterr().out)
    trials = [t for t in read_trials(store, [sweep]).to_pylist() if t["stage"] == "screen"]
    rows = [r for r in read_epochs(store, [sweep]).to_pylist() if r["stage"] == "screen"]
    assert len(trials) == 19 and {t["status"] for t in trials} == {"completed"}
    # The pick's row (selected_epoch 0) keeps when and where it ran, as every point's does.
    assert [t["selected_epoch"] for t in trials].count(0) == 1
    assert all(t["started_at"] and t["ended_at"] and t["host"] for t in trials), trials
    assert not any("chunk" in t["trial_id"] for t in trials + rows)
    assert sorted(r["trial_id"] for r in rows) == sorted(t["trial_id"] for t in trials)
    assert {r["epoch"] for r in rows} == {0}
    params = {(p["shrink"], p["perturb_sigma"]) for p in (json.loads(t["params"]) for t in trials)}
    assert len(params) == 19 - 1  # the origin (1, 0) is also the grid's (1.0, 0) point
    # Fewer Ray trials ran than points: the chunks are Tune's trials.
    tune_trials = {p.name for p in (store / sweep / "ray").rglob("*") if "chunk" in p.name}
    assert tune_trials, "no chunk trial ran"
