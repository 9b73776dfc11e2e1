"""The summary that `--json` prints and `--csv` writes."""

from __future__ import annotations

import csv
import json

import pytest

from results.store import read_epochs
from results.summary import summarize, summary_json, write_csv


def test_json_shape_and_values(paper_store) -> None:
    out = summary_json(summarize(read_epochs(paper_store), threshold=4.5))
    text = json.dumps(out, allow_nan=False)  # strict JSON: no NaN anywhere
    assert json.loads(text) == out
    assert out["threshold"] == 4.5 and "relative_change" in out["units"]
    mmcl, ssl = out["groups"]
    assert mmcl["group"] == {"sweep_id": "cc6m", "objective": "MMCL", "method": "CleanCLIP"}
    assert mmcl["key"]["objective"] == "mmcl" and mmcl["label"] == "MMCL · CleanCLIP · cc6m"
    assert mmcl["start"]["clean_acc"] == 23.76 and mmcl["start"]["asr"] == 99.98
    best = mmcl["best_clean"]
    assert (best["clean_acc"], best["asr"], best["trial_id"], best["epoch"]) == (
        24.04,
        4.0,
        "mmcl-b",
        2,
    )
    assert best["params"] == {"lr": 3e-5} and best["checkpoint"].endswith("epoch_2.pt")
    assert mmcl["relative_change"] == pytest.approx(0.28 / 23.76)
    assert mmcl["frontier"] == [[23.0, 3.0], [24.04, 4.0]]
    assert 0 < mmcl["hypervolume"] < 1
    assert mmcl["stopping"]["last_epoch"]["loss_vs_oracle"] == pytest.approx(24.04 - 23.0)
    # No candidate under 4.5%: null and a note, not a number.
    assert ssl["best_clean"] is None and ssl["relative_change"] is None
    assert ssl["note"] == "no candidate with ASR <= 4.5%"


def test_csv(paper_store, tmp_path) -> None:
    path = write_csv(summarize(read_epochs(paper_store), threshold=4.5), tmp_path / "s.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["objective"] for r in rows] == ["MMCL", "MMCL+SSL"]
    assert rows[0]["best_clean_acc"] == "24.04" and rows[0]["best_trial_id"] == "mmcl-b"
    assert rows[1]["best_clean_acc"] == "" and rows[1]["note"] == "no candidate with ASR <= 4.5%"
