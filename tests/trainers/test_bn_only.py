"""The BN-only baseline is what its definition says: the start model's weights, with every
BatchNorm's running statistics re-estimated over one epoch of the cleaning batches at
PyTorch's momentum, and nothing else changed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from trainers import ListReporter
from trainers.bn_only import bn_only, recalibrate_batchnorm
from trainers.checkpoint import load_checkpoint, load_weights
from trainers.config import load_config
from trainers.losses import ContrastiveLoss
from trainers.models import create_model
from trainers.trial import build_context, load_start, train_data_for


def _cfg(outcome: Any, synthetic: Any, ssl: float = 1.0) -> dict[str, Any]:
    return {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval), "batch_size": 64},
        "model": {"name": "tiny-rn", "checkpoint": outcome.final_checkpoint},
        "optim": {"lr": 1e-3, "epochs": 1, "warmup_steps": 5},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": ssl},
        "seed": 0,
    }


def _first_bn(model: nn.Module) -> nn.BatchNorm2d:
    return next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.slow
def test_running_mean_follows_the_momentum_recursion_and_weights_stay(
    poisoned: Any, synthetic: Any
) -> None:
    _, outcome, _ = poisoned
    cfg = load_config(_cfg(outcome, synthetic))
    ctx = build_context(cfg, start=load_start(cfg))
    bn = _first_bn(ctx.model)
    expected = bn.running_mean.clone()
    m = bn.momentum
    assert m == 0.1  # PyTorch's default, what a cleaning epoch uses
    # Independently: the batch mean of the layer's input, folded in by hand.
    batch_means: list[torch.Tensor] = []
    hook = bn.register_forward_hook(
        lambda _mod, inp, _out: batch_means.append(inp[0].detach().float().mean((0, 2, 3)))
    )
    before = {k: v.clone() for k, v in ctx.model.named_parameters()}
    data = train_data_for(ctx, ssl=True)
    seen = recalibrate_batchnorm(ctx, data, ssl=True)
    hook.remove()
    assert seen == (data.num_samples // 64) * 64  # every batch of the epoch, once
    assert len(batch_means) == seen // 64
    for mean in batch_means:
        expected = (1 - m) * expected + m * mean
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-4, atol=1e-5)
    # No parameter moved.
    for name, p in ctx.model.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.slow
def test_the_entry_reports_the_start_then_the_recalibrated_model(
    poisoned: Any, synthetic: Any
) -> None:
    _, outcome, _ = poisoned
    rep = ListReporter()
    result = bn_only(_cfg(outcome, synthetic, ssl=0.0), rep)
    assert result.status == "completed" and [r.epoch for r in rep.records] == [0, 1]
    start = load_checkpoint(outcome.final_checkpoint)
    assert rep.records[0].clean_acc == pytest.approx(start.meta["clean_acc"])
    assert rep.records[0].asr == pytest.approx(start.meta["asr"])
    # The epoch-1 figures are the start weights with new BatchNorm statistics: rebuild them
    # by hand (a fresh model, the start's weights, the same recalibration) and compare.
    cfg = load_config(_cfg(outcome, synthetic, ssl=0.0))
    ctx = build_context(cfg, start=load_start(cfg))
    ssl = ContrastiveLoss(1.0, 0.0).needs_augmented_views
    recalibrate_batchnorm(ctx, train_data_for(ctx, ssl=ssl), ssl=ssl)
    again = ctx.evaluate()
    assert rep.records[1].clean_acc == pytest.approx(again.clean_acc)
    assert rep.records[1].asr == pytest.approx(again.asr)
    # And the statistics did change: the start model's BN differs from the recalibrated one.
    fresh, _ = create_model("tiny-rn")
    load_weights(fresh, start, model_name="tiny-rn")
    assert not torch.allclose(_first_bn(fresh).running_mean, _first_bn(ctx.model).running_mean)
