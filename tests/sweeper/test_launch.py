"""End to end through the real CLI and a real local Ray cluster."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from results.store import list_sweeps, read_epochs, read_trials
from sweeper.cli import main
from trainers.checkpoint import sha256_file

pytestmark = pytest.mark.slow


def tiny_spec(
    tmp: Path,
    *,
    clean: dict[str, Any] | None = None,
    name: str = "tiny",
    resources: dict[str, float] | None = None,
    baselines: list[str] | None = None,
) -> Path:
    """A whole sweep in seconds: one MMCL pre-training job, a two-point cleaning grid.

    Without the BN-only baseline unless asked (`baselines=["bn_only"]`): one trial fewer
    for the tests that are about something else."""
    spec = {
        "name": name,
        "paper": "test",
        "embedded": {
            "synthetic": {
                "n_train": 400,
                "n_clean": 200,
                "n_eval_per_class": 6,
                "image_size": 32,
                "seed": 0,
            },
            "clean_pairs": 128,
            "poison_fraction": 0.05,
            "epoch_scale": 1,
            "resources": resources or {"cpu": 1},
        },
        "pretrain": {
            "trial": {
                "poison": {"kind": "badnet", "amount": 0.05},
                "optim": {"lr": 2e-3, "epochs": 2, "warmup_steps": 5},
                "data": {"batch_size": 64},
            },
            "jobs": {"mmcl": {"objective": "mmcl"}},
            "resources": {"cpu": 1},
        },
        "clean": {
            "method": "cleanclip",
            "grid": {"lr": [1e-4, 1e-3]},
            "trial": {"optim": {"epochs": 2, "warmup_steps": 2}, "data": {"batch_size": 32}},
            "resources": {"cpu": 1},
            "baselines": baselines or [],
            **(clean or {}),
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(f"# sweeper launch {path}\n" + yaml.safe_dump(spec, sort_keys=False))
    return path


def sweep_of(out: str) -> str:
    m = re.search(r"^sweep: (\S+)", out, re.M)
    assert m, out
    return m.group(1)


def test_launch_streams_every_epoch_and_reuses_pretraining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    spec = tiny_spec(tmp_path, baselines=["bn_only"])
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    sweep = sweep_of(out)
    assert f"store: {store / sweep}" in out
    assert (store / sweep / "spec.yaml").is_file()

    epochs = read_epochs(store, [sweep]).to_pylist()
    # The BN-only baseline: the start model (epoch 0) and its BatchNorm re-estimated (1).
    bn = sorted((r["epoch"], r["method"]) for r in epochs if r["trial_id"] == "clean-mmcl-bn-only")
    assert bn == [(0, "bn_only"), (1, "bn_only")]
    epochs = [r for r in epochs if r["method"] != "bn_only"]
    by_trial: dict[str, list[int]] = {}
    for r in epochs:
        by_trial.setdefault(r["trial_id"], []).append(r["epoch"])
    clean_trials = [t for t in by_trial if t.startswith("clean-")]
    assert len(clean_trials) == 2
    for t, eps in by_trial.items():
        assert sorted(eps) == [0, 1, 2], (t, eps)
    clean_rows = [r for r in epochs if r["stage"] == "clean"]
    assert {r["p_lr"] for r in clean_rows} == {1e-4, 1e-3}
    assert all(r["method"] == "cleanclip" and r["objective"] == "mmcl" for r in clean_rows)
    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}
    assert trials["pretrain-mmcl"]["selected_epoch"] in (1, 2)
    # The selection's row keeps when and where the job ran, as every trial's row does.
    assert all(t["started_at"] and t["ended_at"] and t["host"] for t in trials.values()), trials
    start = trials[clean_trials[0]]["start_checkpoint"]
    # Inside the store, recorded relative to its root (a moved store finds its files).
    assert start and not Path(start).is_absolute() and (store / start).is_file()
    assert trials[clean_trials[0]]["start_checkpoint_sha256"] == sha256_file(store / start)
    _check_retention(store, sweep, spec, trials, capsys)

    # Every trial read the eval set through one decoded cache and the shards through one
    # index, both under the store's .cache (data.cache_dir, set by the sweeper).
    eval_caches = [p for p in (store / ".cache" / "eval").iterdir() if p.is_dir()]
    assert len(eval_caches) == 1 and len(list((store / ".cache" / "index").glob("*.npz"))) == 1
    built = (eval_caches[0] / "images.u8").stat()
    # Zero every eval image, keeping its size and mtime: a trial that decoded them now would
    # find none and fail; the second sweep's trials read the cache instead.
    for image in (store / ".cache" / "data").glob("*/eval/*/*.jpg"):
        st = image.stat()
        image.write_bytes(b"\0" * st.st_size)
        os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))

    # Same pre-training config: the second sweep reuses the cached model, runs no pretrain.
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    out2 = capsys.readouterr().out
    assert "reusing cached pre-training" in out2
    sweep2 = sweep_of(out2)
    assert sweep2 != sweep and set(list_sweeps(store)) >= {sweep, sweep2}
    trials2 = {r["trial_id"]: r for r in read_trials(store, [sweep2]).to_pylist()}
    assert json.loads(trials2["pretrain-mmcl"]["params"]).get("cache") == "hit"
    assert trials2["pretrain-mmcl"]["start_checkpoint"] is None
    rows2 = read_epochs(store, [sweep2]).to_pylist()
    assert sorted(r["epoch"] for r in rows2 if r["stage"] == "pretrain") == [0, 1, 2]
    assert {r["status"] for r in trials2.values()} == {"completed"}
    # Each cleaning trial's epoch 0 (its start model, evaluated from the cache) as in sweep 1.
    start_acc = {(r["p_lr"], r["epoch"]): r["clean_acc"] for r in clean_rows if r["epoch"] == 0}
    assert {
        (r["p_lr"], r["epoch"]): r["clean_acc"]
        for r in rows2
        if r["stage"] == "clean" and r["epoch"] == 0 and r["method"] != "bn_only"
    } == start_acc
    assert [p for p in (store / ".cache" / "eval").iterdir() if p.is_dir()] == eval_caches
    assert (eval_caches[0] / "images.u8").stat().st_ino == built.st_ino  # never rebuilt


def _dominated(r: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    return any(
        o["clean_acc"] >= r["clean_acc"]
        and o["asr"] <= r["asr"]
        and (o["clean_acc"], o["asr"]) != (r["clean_acc"], r["asr"])
        for o in rows
    )


def _check_retention(
    store: Path,
    sweep: str,
    spec: Path,
    trials: dict[str, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default policies kept exactly their checkpoints, and the dry run's disk figure
    matches what the sweep wrote."""
    raw = pq.read_table(store / sweep / "epochs").to_pylist()  # the paths as recorded
    # Pre-training (keep: selected): the selected epoch's model only.
    selected = trials["pretrain-mmcl"]["selected_epoch"]
    (cache,) = (store / ".cache" / "pretrain").iterdir()
    assert sorted(p.name for p in cache.glob("*.pt")) == [f"epoch-{selected:03d}.pt"]
    # Cleaning (keep: frontier): the candidates (epochs >= 1) no other candidate dominates.
    # (The BN-only baseline is its own method's group and keeps no checkpoint.)
    cands = [
        r for r in raw if r["stage"] == "clean" and r["epoch"] >= 1 and r["method"] != "bn_only"
    ]
    front = {
        f"{r['trial_id']}/epoch-{r['epoch']:03d}.pt" for r in cands if not _dominated(r, cands)
    }
    ckpts = store / sweep / "checkpoints"
    assert {str(p.relative_to(ckpts)) for p in ckpts.rglob("*.pt")} == front
    assert not list((store / sweep / "resume").glob("*"))  # every trial ended
    # The reader shows a path exactly where the file is there.
    for r in read_epochs(store, [sweep]).to_pylist():
        assert (r["checkpoint"] is not None) == (
            r["checkpoint"] is not None and (store / r["checkpoint"]).is_file()
        )
    kept = sum(1 for r in read_epochs(store, [sweep]).to_pylist() if r["checkpoint"])
    assert kept == 1 + len(front)

    assert main(["launch", str(spec), "--dry-run", "--json"]) == 0
    disk = {d["name"]: d for d in json.loads(capsys.readouterr().out)["disk"]["stages"]}
    pruned = json.loads((store / sweep / "pruned.json").read_text())["pruned"]
    for stage, prefix in (("pretrain", ".cache/"), ("clean", f"{sweep}/checkpoints/")):
        n_kept = 1 if stage == "pretrain" else len(front)
        n_pruned = sum(p.startswith(prefix) for p in pruned)
        # Before retention: every checkpoint the trials wrote (kept or pruned).
        assert disk[stage]["checkpoints_before"] == n_kept + n_pruned, (stage, disk, pruned)
    assert disk["pretrain"]["checkpoints_after"] == 1
    # Cleaning's frontier is estimated at one per trial (plus the best): the sweep's own
    # frontier is within one checkpoint per trial of it.
    assert abs(disk["clean"]["checkpoints_after"] - len(front)) <= 2
    # Bytes per checkpoint: the state dict plus torch.save's framing and the config (< 2%).
    sizes = [p.stat().st_size for p in [*cache.glob("*.pt"), *ckpts.rglob("*.pt")]]
    per = disk["clean"]["checkpoint_bytes"]
    assert all(per <= size <= per * 1.02 for size in sizes), (per, sizes)


def test_a_failing_trial_is_recorded_and_the_others_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative --store (the default is ./sweeps): trials run in Tune's own working
    # directories, so the paths handed to them must not depend on the driver's.
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    spec = tiny_spec(tmp_path, clean={"grid": {"lr": [1e-3], "fail_at_epoch": [99, 2]}})
    assert main(["launch", spec.name, "--store", "store"]) == 1  # a trial failed
    out, err = capsys.readouterr()
    sweep = sweep_of(out)
    assert "did not complete" in err and "(failed)" in err, err
    trials = [r for r in read_trials(store, [sweep]).to_pylist() if r["stage"] == "clean"]
    status = {json.loads(r["params"])["fail_at_epoch"]: r for r in trials}
    assert status[99]["status"] == "completed"
    assert status[2]["status"] == "failed"
    assert "injected failure at epoch 2" in status[2]["error"]
    failed_epochs = sorted(
        r["epoch"]
        for r in read_epochs(store, [sweep]).to_pylist()
        if r["trial_id"] == status[2]["trial_id"]
    )
    assert failed_epochs == [0, 1]  # what it reported before failing is kept
    assert main(["status", sweep, "--store", str(store)]) == 0
    assert "failed" in capsys.readouterr().out
