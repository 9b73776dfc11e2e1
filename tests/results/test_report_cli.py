"""`sweeper report`, driven in-process through `sweeper.cli.main`."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sweeper.cli as cli
from results.store import StoreWriter


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):
    """`sweeper.cli.main`; while some subcommand modules are still missing, the same main()
    with only `report` registered (the error handling and exit codes are main's own)."""
    if not all(importlib.util.find_spec(f"sweeper.cli.{n}") for n in cli.SUBCOMMANDS):
        monkeypatch.setattr(cli, "SUBCOMMANDS", ("report",))
    return cli.main


def test_html_report_default_path(main, paper_store: Path, capsys) -> None:
    assert main(["report", "cc6m", "--store", str(paper_store)]) == 0
    page = paper_store / "cc6m" / "report.html"
    assert page.stat().st_size > 1_000_000  # plotly.js is inside
    out = capsys.readouterr().out
    assert f"report: {page}" in out
    assert "MMCL · CleanCLIP · cc6m: best 24.04% at ASR 4.00% (+1.2%), trial mmcl-b epoch 2" in out


def test_json_and_csv(main, paper_store: Path, tmp_path: Path, capsys) -> None:
    table = tmp_path / "summary.csv"
    argv = ["report", "cc6m", "--store", str(paper_store), "--json", "--threshold", "4.5"]
    assert main(argv + ["--csv", str(table)]) == 0
    summary = json.loads(capsys.readouterr().out)
    mmcl, ssl = summary["groups"]
    assert mmcl["best_clean"]["clean_acc"] == 24.04 and mmcl["start"]["asr"] == 99.98
    assert ssl["best_clean"] is None and ssl["note"] == "no candidate with ASR <= 4.5%"
    assert not (paper_store / "cc6m" / "report.html").exists()  # --json alone: no HTML
    assert [r["objective"] for r in csv.DictReader(table.open())] == ["MMCL", "MMCL+SSL"]


def test_sweep_path_out_and_group_by(main, paper_store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "deep" / "r.html"
    argv = [
        "report",
        str(paper_store / "cc6m"),
        "--out",
        str(out),
        "--json",
        "--group-by",
        "objective,p_lr",
    ]
    assert main(argv) == 0
    assert out.exists()
    summary = json.loads(capsys.readouterr().out)
    assert summary["group_by"] == ["objective", "p_lr"]
    groups = summary["groups"]
    assert [g["group"] for g in groups][0] == {"objective": "MMCL", "p_lr": 1e-05}
    assert len(groups) == 4 and groups[0]["label"] == "MMCL · lr=1e-05"


def test_errors_exit_2_with_the_path(main, tmp_path: Path, capsys) -> None:
    assert main(["report", "x", "--store", str(tmp_path / "none")]) == 2
    assert "store directory" in capsys.readouterr().err
    # A sweep that has written no rows yet is not an error: its report says so
    # (tests/sweeper/test_every_moment.py); a broken part is.
    StoreWriter(tmp_path, "empty")
    assert main(["report", "empty", "--store", str(tmp_path)]) == 0
    capsys.readouterr()
    w = StoreWriter(tmp_path, "broken")
    pq.write_table(
        pa.table(
            {
                "sweep_id": ["broken"],
                "stage": ["clean"],
                "trial_id": ["t"],
                "method": ["m"],
                "epoch": [0],
                "clean_acc": [1.0],
            }
        ),
        w.sweep_dir / "epochs" / "part-1-1-x.parquet",
    )
    assert main(["report", "broken", "--store", str(tmp_path)]) == 2
    assert "lacks the required column 'asr'" in capsys.readouterr().err


def test_bad_group_column(main, paper_store: Path, capsys) -> None:
    assert main(["report", "cc6m", "--store", str(paper_store), "--group-by", "p_nope"]) == 2
    assert "cannot group by p_nope" in capsys.readouterr().err
