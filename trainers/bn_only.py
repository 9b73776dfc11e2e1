"""The BN-only baseline: BatchNorm statistics re-estimated on the cleaning set, no weight update.

A cleaning epoch changes a ResNet two ways: its weights move, and its BatchNorm running
statistics are re-estimated on the cleaning images (and their augmented views). At a small
learning rate the second can be all that happens, and it alone can move ASR (the triggered
images' statistics no longer match the poisoned set's). This baseline does only the second:
one pass over exactly the batches the first cleaning epoch would see, in train mode, under
`no_grad`, so the running statistics move as they would in that epoch (PyTorch's momentum)
and no parameter does. A drop in ASR that this point shows too is BatchNorm, not unlearning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from trainers.config import TrialConfig, load_config
from trainers.data.loader import TrainData
from trainers.errors import ConfigError
from trainers.loop import TrialContext, eval_counts, report_start
from trainers.losses import ContrastiveLoss
from trainers.reporter import EpochRecord, Reporter, TrialOutcome
from trainers.shrink_perturb import shrink_perturb
from trainers.trial import build_context, load_start, train_data_for


def recalibrate_batchnorm(ctx: TrialContext, data: TrainData, *, ssl: bool) -> int:
    """One epoch of forward passes that only BatchNorm's running statistics remember.

    The images go through the image tower as a cleaning step sends them (both views in one
    batch when the cleaning loss has an SSL term); the text tower has no BatchNorm. Returns
    the number of pairs seen.
    """
    model, dev = ctx.model, ctx.device
    data.set_epoch(1)
    model.train()
    seen = 0
    with torch.no_grad(), ctx.autocast():
        for batch in data:
            images = batch.image.to(dev, non_blocking=True)
            if ssl:
                assert batch.image_aug is not None
                images = torch.cat([images, batch.image_aug.to(dev, non_blocking=True)])
            model.encode_image(ctx.normalize(images), normalize=True)
            seen += len(batch.index)
    return seen


def bn_only(config: TrialConfig | Mapping[str, Any], reporter: Reporter) -> TrialOutcome:
    """Epoch 0: the start model; epoch 1: the same weights with BatchNorm re-estimated on
    the cleaning set (the trial's own data, views and shrink-and-perturb start)."""
    cfg = load_config(config)
    if not cfg.model.checkpoint:
        raise ConfigError(
            "bn_only needs model.checkpoint: the model whose BatchNorm to re-estimate"
        )
    ctx = build_context(cfg, start=load_start(cfg))
    shrink_perturb(ctx.model, cfg.shrink_perturb, model_name=ctx.info.name, seed=cfg.seed)
    ssl = ContrastiveLoss(cfg.loss.mmcl_weight, cfg.loss.ssl_weight).needs_augmented_views
    data = train_data_for(ctx, ssl=ssl)
    report_start(ctx, reporter)
    seen = recalibrate_batchnorm(ctx, data, ssl=ssl)
    result = ctx.evaluate()
    reporter.report(
        EpochRecord(
            epoch=1,
            clean_acc=result.clean_acc,
            clean_top5=result.clean_top5,
            asr=result.asr,
            samples_seen=seen,
            wall_s=ctx.elapsed(),
            **eval_counts(ctx, result),
        )
    )
    return TrialOutcome(
        status="completed",
        epochs_done=1,
        extra={"final_clean_acc": result.clean_acc, "final_asr": result.asr},
    )
