"""Repeats of a study: `seed:` shifts every trial's seed; `--seeds` runs and reports them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from results.store import read_epochs
from sweeper.cli import main
from sweeper.cli.launch import seeds_arg
from sweeper.plan import plan_file
from tests.sweeper.test_launch import tiny_spec

ROOT = Path(__file__).resolve().parents[2]


def test_seed_shifts_every_trial_and_the_search() -> None:
    demo = ROOT / "search_spaces" / "demo.yaml"
    _, base = plan_file(demo)
    _, rep = plan_file(demo, ["seed=7"])
    for b, r in zip(base.stages, rep.stages, strict=True):
        assert [t.trial_id for t in b.trials] == [t.trial_id for t in r.trials]
        for tb, tr in zip(b.trials, r.trials, strict=True):
            assert tr.config["seed"] == tb.config["seed"] + 7
            assert {**tr.config, "seed": tb.config["seed"]} == tb.config  # nothing else
    # Each repeat pre-trains its own start models.
    assert set(base.pretrain_cache_keys) == set(rep.pretrain_cache_keys) == {"mmcl", "mmcl_ssl"}
    assert all(base.pretrain_cache_keys[k] != rep.pretrain_cache_keys[k] for k in ("mmcl",))
    optuna = ROOT / "search_spaces" / "optuna_cc6m_mmcl_ssl.yaml"
    _, o0 = plan_file(optuna)
    _, o3 = plan_file(optuna, ["seed=3"])
    s0 = next(s.search for s in o0.stages if s.search)
    s3 = next(s.search for s in o3.stages if s.search)
    assert s3.seed == s0.seed + 3 and s3.config["seed"] == s0.config["seed"] + 3


def test_seeds_argument() -> None:
    assert seeds_arg("3") == [0, 1, 2]
    assert seeds_arg("0,4,7") == [0, 4, 7]
    for bad in ("x", "0", "1,1", "-1,2", "2,a"):
        with pytest.raises(argparse.ArgumentTypeError, match="distinct seeds|a count"):
            seeds_arg(bad)


def test_a_negative_seed_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["launch", str(tiny_spec(tmp_path)), "seed=-1", "--dry-run"]) == 2
    assert "seed" in capsys.readouterr().err


@pytest.mark.slow
def test_launch_seeds_runs_one_sweep_per_seed_and_reports_them_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    spec = tiny_spec(tmp_path, clean={"grid": {"lr": [1e-3]}})
    assert main(["launch", str(spec), "--store", str(store), "--seeds", "2", "--ignore-disk"]) == 0
    out = capsys.readouterr().out
    sweeps = re.findall(r"^sweep: (\S+)", out, re.M)
    assert len(sweeps) == 2 and len(set(sweeps)) == 2, out
    assert "repeat 1/2: seed=0" in out and "repeat 2/2: seed=1" in out
    assert re.search(r"^across 2 seeds: mmcl: start .* over 2 sweep\(s\)|^across 2 seeds: mmcl: "
                     r"start .*no candidate", out, re.M), out  # fmt: skip
    report = re.search(r"^report \(all seeds\): (\S+)", out, re.M)
    assert report, out
    page = Path(report.group(1)).read_text()
    assert 'id="fig-seeds"' in page and all(s in page for s in sweeps)
    # The repeats trained differently: seed 1's pre-training is not seed 0's.
    rows = read_epochs(store, sweeps).to_pylist()
    pre = {
        s: [(r["epoch"], r["clean_acc"], r["asr"], r["loss"]) for r in rows
            if r["sweep_id"] == s and r["stage"] == "pretrain"]
        for s in sweeps
    }  # fmt: skip
    assert len(pre[sweeps[0]]) == len(pre[sweeps[1]]) == 3
    assert pre[sweeps[0]] != pre[sweeps[1]]
