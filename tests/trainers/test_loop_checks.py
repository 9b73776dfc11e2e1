"""The loss read on the host every N steps, not per step: the epoch means, and a
non-finite loss ending the epoch as diverged with the step it happened at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from trainers.checkpoint import save_checkpoint
from trainers.config import load_config
from trainers.loop import make_optimizer, make_scheduler, run_epoch, start_epoch
from trainers.losses import ContrastiveLoss
from trainers.models import create_model
from trainers.regularize import Regularizer
from trainers.trial import build_context, load_start, train_data_for

STEPS = 6  # 192 pairs in batches of 32


class _Recorded(ContrastiveLoss):
    """The real MMCL loss, recording each step's value; NaN from step `nan_at` on."""

    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__(1.0, 0.0)
        self.nan_at = nan_at
        self.values: list[float] = []

    def forward(self, *args: Any, **kw: Any) -> dict[str, Tensor]:
        parts = super().forward(*args, **kw)
        if self.nan_at is not None and len(self.values) + 1 >= self.nan_at:
            parts = {k: v * float("nan") for k, v in parts.items()}
        self.values.append(float(parts["loss"]))
        return parts


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = create_model("tiny-rn", seed=0)
    path = tmp_path_factory.mktemp("start") / "start.pt"
    return save_checkpoint(path, model, model_name="tiny-rn", config={}, meta={})


def _epoch(synthetic: Any, start: Path, loss: _Recorded, check_every: int) -> Any:
    cfg = load_config(
        {
            "data": {
                "train": str(synthetic.clean),
                "eval": str(synthetic.eval),
                "batch_size": 32,
                "max_samples": 32 * STEPS,
            },
            "model": {"name": "tiny-rn", "checkpoint": str(start)},
            "optim": {"lr": 1e-4, "epochs": 1, "warmup_steps": 0},
            "seed": 0,
        }
    )
    ctx = build_context(cfg, start=load_start(cfg))
    data = train_data_for(ctx, ssl=False)
    regularizer = Regularizer(ctx.model, cfg.loss, cfg.optim)
    opt = make_optimizer(ctx.model, regularizer, None, cfg.optim)
    sched = make_scheduler(opt, cfg.optim, total_steps=STEPS)
    start_epoch(ctx, data, None, opt, 1)
    return run_epoch(ctx, data, loss, None, opt, sched, regularizer, 1, check_every=check_every)


def test_epoch_means_are_the_mean_of_the_steps(synthetic: Any, start: Path) -> None:
    loss = _Recorded()
    stats = _epoch(synthetic, start, loss, check_every=4)
    assert stats.diverged is None and len(loss.values) == STEPS and stats.samples == 32 * STEPS
    assert stats.means["loss"] == pytest.approx(sum(loss.values) / STEPS, rel=1e-6)
    assert stats.means["loss_mmcl"] == pytest.approx(stats.means["loss"], rel=1e-6)


@pytest.mark.parametrize(("check_every", "steps_run"), [(2, 4), (50, STEPS)])
def test_a_nonfinite_loss_is_reported_with_its_step_at_the_next_check(
    synthetic: Any, start: Path, check_every: int, steps_run: int
) -> None:
    loss = _Recorded(nan_at=3)
    stats = _epoch(synthetic, start, loss, check_every=check_every)
    # Step 3 is the first bad one; the host sees it at the check after step 4 (every 2),
    # or at the end of the epoch (every 50), and names step 3 either way.
    assert stats.diverged == "non-finite loss (nan) at epoch 1, step 3"
    assert len(loss.values) == steps_run
    assert torch.isnan(torch.tensor(loss.values[2:])).all()
