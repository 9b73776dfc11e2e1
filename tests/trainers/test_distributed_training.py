"""A data-parallel pre-training of 2 gloo ranks (`trainers.distributed`) against one process.

The ranks read the CSV pairs as `order[rank::2]` of the same (seed, epoch) permutation, so
with 16 pairs a rank the job's step k trains on the same 32 pairs as one process's step k
with a batch of 32: the MMCL and SSL losses (gathered over ranks), the averaged gradients
and so the training must match it to float tolerance. tiny-vit has no BatchNorm, whose
per-rank batch statistics would differ (SyncBatchNorm's business, not this test's).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainers import ListReporter, pretrain
from trainers.config import DataConfig, PoisonConfig
from trainers.data import SyntheticPaths, build_train_data, make_synthetic
from trainers.distributed import EvenBatches
from trainers.models import get_tokenizer

pytestmark = pytest.mark.slow
EPOCHS = 3
N_TRAIN, SHARD = 400, 100  # 4 shards: 2 a rank


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    """Small: 256 CSV pairs (8 steps of 32 an epoch), 40 eval images, 4 shards of 100."""
    root = tmp_path_factory.mktemp("dist-data") / "ds"
    return make_synthetic(
        root, n_train=N_TRAIN, n_clean=256, n_eval_per_class=4, image_size=32, shard_size=SHARD
    )


def job_config(synthetic: Any, tmp: Path, batch: int, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data": {
            "train": str(synthetic.clean),  # CSV: rows split order[rank::ranks]
            "eval": str(synthetic.eval),
            "batch_size": batch,
            "num_workers": 0,
        },
        "model": {"name": "tiny-vit"},
        "poison": {"kind": "badnet", "amount": 0.05, "seed": 0, "patch_size": 8},
        "optim": {"lr": 1e-3, "epochs": EPOCHS, "warmup_steps": 3},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
        "checkpoint_dir": str(tmp / "ckpt"),
        "resume_state": str(tmp / "resume.pt"),
        "save": "every",
        "seed": 0,
        "threads": 1,
    }
    cfg.update(over)
    return cfg


def _rank_main(rank: int, world: int, init: str, cfg: dict[str, Any], out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        rep = ListReporter()
        try:
            outcome: Any = pretrain(cfg, rep).to_dict()
        except RuntimeError as err:  # fail_at_epoch: the job "dies" mid-way
            outcome = {"error": str(err)}
        from trainers.checkpoint import load_checkpoint

        ckpt = outcome.get("final_checkpoint")
        torch.save(
            {
                "records": [r.to_dict() for r in rep.records],
                "replayed": rep.replayed,
                "outcome": outcome,
                "final": load_checkpoint(ckpt).state_dict if ckpt else None,
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def run_job(tmp: Path, cfg: dict[str, Any], world: int = 2) -> list[dict[str, Any]]:
    """Run `pretrain(cfg)` on `world` gloo ranks; what each rank saw and ended with."""
    tmp.mkdir(parents=True, exist_ok=True)
    init = f"file://{tmp / f'rendezvous-{uuid.uuid4().hex}'}"
    for old in tmp.glob("rank*.pt"):
        old.unlink()
    mp.spawn(_rank_main, args=(world, init, cfg, str(tmp)), nprocs=world, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def job(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("job")
    return run_job(tmp, job_config(synthetic, tmp, batch=16))


@pytest.fixture(scope="module")
def single(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from trainers.checkpoint import load_checkpoint

    tmp = tmp_path_factory.mktemp("single")
    rep = ListReporter()
    outcome = pretrain(job_config(synthetic, tmp, batch=32), rep)
    final = load_checkpoint(outcome.final_checkpoint).state_dict
    start = load_checkpoint(tmp / "ckpt" / "epoch-000.pt").state_dict
    return {"records": [r.to_dict() for r in rep.records], "final": final, "start": start}


def test_two_ranks_of_batch_16_train_as_one_process_of_batch_32(
    job: list[dict[str, Any]], single: dict[str, Any]
) -> None:
    rank0 = job[0]
    assert [r["epoch"] for r in rank0["records"]] == list(range(EPOCHS + 1))
    for mine, ref in zip(rank0["records"][1:], single["records"][1:], strict=True):
        for part in ("loss", "loss_mmcl", "loss_ssl"):
            # The mean over ranks of each rank's loss (its rows against every rank's
            # columns) is the global batch's loss, epoch after epoch of training.
            assert mine[part] == pytest.approx(ref[part], rel=2e-4), (mine["epoch"], part)
        # Every pair of the epoch counted once, over both ranks.
        assert mine["samples_seen"] == ref["samples_seen"]
        assert mine["clean_acc"] == pytest.approx(ref["clean_acc"], abs=2.6)  # 1 of 40 images
    # The weights: AdamW divides each step by the root of its second moment, so an element
    # whose gradient is ~0 moves by up to the learning rate on float noise alone; the test
    # is that the two runs' difference is a small part of how far training moved them.
    moved = diff = 0.0
    for name, ref_w in single["final"].items():
        moved += float((ref_w - single["start"][name]).float().norm() ** 2)
        diff += float((rank0["final"][name] - ref_w).float().norm() ** 2)
    assert moved > 0 and (diff / moved) ** 0.5 < 0.02, (diff / moved) ** 0.5


def test_the_ranks_stay_in_lockstep_and_only_rank_0_measures(job: list[dict[str, Any]]) -> None:
    rank0, rank1 = job
    # Rank 0 evaluated; rank 1 reported placeholders, which the sweeper drops.
    assert all(r["n_eval"] > 0 for r in rank0["records"])
    assert all(r["n_eval"] == 0 and r["checkpoint"] is None for r in rank1["records"])
    assert rank1["outcome"]["final_checkpoint"] is None
    # Both ranks trained the same steps (the loss, summed over ranks, is the same number).
    assert [r["loss"] for r in rank1["records"]] == [r["loss"] for r in rank0["records"]]


def test_a_killed_job_resumes_after_its_last_epoch(
    synthetic: Any, tmp_path: Path, job: list[dict[str, Any]]
) -> None:
    cfg = job_config(synthetic, tmp_path, batch=16)
    died = run_job(tmp_path, {**cfg, "fail_at_epoch": EPOCHS})
    assert all("injected failure" in r["outcome"]["error"] for r in died)
    assert [r["epoch"] for r in died[0]["records"]] == list(range(EPOCHS))
    resumed = run_job(tmp_path, cfg)
    rank0 = resumed[0]
    # Epochs 0..EPOCHS-1 came back from rank 0's resume state on both ranks, then the
    # job trained the last one only, from the same weights and optimiser state.
    assert all(r["replayed"] == list(range(EPOCHS)) for r in resumed)
    assert [r["epoch"] for r in rank0["records"]] == list(range(EPOCHS + 1))
    last, ref = rank0["records"][-1], job[0]["records"][-1]
    assert last["loss"] == pytest.approx(ref["loss"], rel=1e-6)
    for name, w in job[0]["final"].items():
        torch.testing.assert_close(rank0["final"][name], w, rtol=1e-5, atol=1e-7)


def _shares_main(rank: int, world: int, init: str, train: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        cfg = DataConfig(train=train, batch_size=16, num_workers=1)
        data = build_train_data(
            cfg,
            PoisonConfig(),
            image_size=32,
            tokenizer=get_tokenizer("tiny-vit"),
            ssl=False,
            seed=0,
            drop_last=True,
            num_workers=1,
            rank=rank,
            world_size=world,
        )
        even = EvenBatches(data, world)
        epochs = []
        for epoch in (1, 2):
            even.set_epoch(epoch)
            epochs.append([b.index.tolist() for b in even])
        data.close()
        torch.save(epochs, f"{out}/shares{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_each_pair_once_an_epoch_and_as_many_steps_on_every_rank(
    synthetic: Any, tmp_path: Path
) -> None:
    init = f"file://{tmp_path / 'rendezvous'}"
    args = (2, init, str(synthetic.train), str(tmp_path))
    mp.spawn(_shares_main, args=args, nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"shares{r}.pt") for r in range(2)]
    n = N_TRAIN
    for epoch in range(2):
        steps = [len(r[epoch]) for r in ranks]
        assert steps[0] == steps[1] > 0  # a step is collective: equal counts or a hang
        seen = [i for r in ranks for batch in r[epoch] for i in batch]
        assert len(seen) == len(set(seen))  # no pair twice
        # Every pair but the partial batch (drop_last) of each rank.
        assert n - 2 * 16 < len(seen) <= n, epoch
