"""The contrastive and SSL losses over a global batch: 2 gloo ranks with B/2 samples each
give the loss and the (DDP-averaged) gradients of one process with all B samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.losses import ContrastiveLoss

B = 8  # global batch: 4 per rank


class Towers(nn.Module):
    """Two linear towers and a learnable temperature: no BatchNorm, whose per-rank batch
    statistics would differ from the global batch's (SyncBatchNorm's business, not the
    loss's)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image = nn.Linear(6, 5)
        self.text = nn.Linear(7, 5)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        def unit(x: Tensor) -> Tensor:
            return F.normalize(x, dim=-1)

        return {
            "image": unit(self.image(batch["image"])),
            "text": unit(self.text(batch["text"])),
            "image_aug": unit(self.image(batch["image_aug"])),
            "text_aug": unit(self.text(batch["text_aug"])),
        }


def global_batch() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(1)
    shapes = {"image": 6, "text": 7, "image_aug": 6, "text_aug": 7}
    return {k: torch.randn(B, d, generator=gen) for k, d in shapes.items()}


def loss_and_grads(
    model: nn.Module, batch: dict[str, Tensor], rank: int, world: int
) -> tuple[dict[str, float], dict[str, Tensor]]:
    loss_fn = ContrastiveLoss(1.0, 1.0, rank=rank, world_size=world)
    towers = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    f = model(batch)
    parts = loss_fn(f["image"], f["text"], towers.logit_scale.exp(), f["image_aug"], f["text_aug"])
    parts["loss"].backward()
    grads = {n: p.grad.detach().clone() for n, p in towers.named_parameters()}
    return {k: float(v.detach()) for k, v in parts.items()}, grads


def _rank_main(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model = nn.parallel.DistributedDataParallel(Towers())
        per = B // world
        local = {k: v[rank * per : (rank + 1) * per] for k, v in global_batch().items()}
        parts, grads = loss_and_grads(model, local, rank, world)
        torch.save({"parts": parts, "grads": grads}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_rank_main, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single_parts, single_grads = loss_and_grads(Towers(), global_batch(), 0, 1)
    for part in ("loss", "loss_mmcl", "loss_ssl"):
        # Each rank's loss is over its own rows against all columns: their mean is the
        # whole batch's loss.
        mean = sum(r["parts"][part] for r in ranks) / 2
        assert mean == pytest.approx(single_parts[part], rel=1e-5, abs=1e-6), part
    # The ranks see different rows, so their losses differ (the gather is not a no-op).
    assert ranks[0]["parts"]["loss"] != pytest.approx(ranks[1]["parts"]["loss"], abs=1e-4)
    for name, grad in single_grads.items():
        # DDP averaged the gradients, so every rank holds the whole batch's gradient.
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-4, atol=1e-6)


def test_a_rank_without_the_gather_would_see_only_its_own_negatives() -> None:
    # The counter-check: the loss of half the batch alone is not the global batch's loss,
    # so the equality above needs the gathered negatives.
    batch = global_batch()
    half = {k: v[: B // 2] for k, v in batch.items()}
    whole, _ = loss_and_grads(Towers(), batch, 0, 1)
    local, _ = loss_and_grads(Towers(), half, 0, 1)
    assert local["loss_mmcl"] != pytest.approx(whole["loss_mmcl"], rel=1e-3)
