"""The trial entry points: `pretrain`, `clean`, `screen`, each `(config, reporter) -> TrialOutcome`.

Nothing here knows about sweeps: the sweeper hands a config (a `TrialConfig` or a mapping)
and a reporter, and gets one `EpochRecord` per evaluated epoch plus the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainers.bn_only import bn_only
from trainers.checkpoint import load_weights, save_checkpoint
from trainers.config import TrialConfig, load_config
from trainers.deep_cluster import DeepClusterObjective
from trainers.errors import ConfigError
from trainers.loop import report_start, train
from trainers.losses import ContrastiveLoss
from trainers.models import create_model
from trainers.regularize import Regularizer
from trainers.reporter import Reporter, TrialOutcome
from trainers.shrink_perturb import shrink_perturb
from trainers.trial import (
    build_context,
    load_start,
    model_meta,
    objective_of,
    seed_everything,
    train_data_for,
)

ConfigLike = TrialConfig | Mapping[str, Any]


def pretrain(config: ConfigLike, reporter: Reporter) -> TrialOutcome:
    """(Poisoned) CLIP pre-training, from scratch or from `model.checkpoint`."""
    cfg = load_config(config)
    ctx = build_context(cfg, start=load_start(cfg))
    ctx.meta["objective"] = objective_of(cfg)
    loss = ContrastiveLoss(
        cfg.loss.mmcl_weight, cfg.loss.ssl_weight, rank=ctx.rank, world_size=ctx.world_size
    )
    data = train_data_for(ctx, ssl=loss.needs_augmented_views)
    poisoned = _record_poisoned(cfg, data)
    outcome = train(
        ctx, data, loss, reporter, regularizer=Regularizer(ctx.model, cfg.loss, cfg.optim)
    )
    return _with(outcome, poisoned_ids=poisoned, n_poisoned=len(data.poisoned_keys))


def clean(config: ConfigLike, reporter: Reporter) -> TrialOutcome:
    """Finetune a (backdoored) model on clean pairs: CleanCLIP and every variant by config."""
    cfg = load_config(config)
    if not cfg.model.checkpoint:
        raise ConfigError("clean needs model.checkpoint: the model to clean")
    # The points of a screen chunk share a process and a start model: one model reloaded.
    ctx = build_context(cfg, start=load_start(cfg), reuse=True)
    shrink_perturb(ctx.model, cfg.shrink_perturb, model_name=ctx.info.name, seed=cfg.seed)
    loss = ContrastiveLoss(
        cfg.loss.mmcl_weight, cfg.loss.ssl_weight, rank=ctx.rank, world_size=ctx.world_size
    )
    data = train_data_for(ctx, ssl=loss.needs_augmented_views)
    extra = None
    if cfg.loss.cluster_weight > 0:
        extra = DeepClusterObjective(ctx, train_data_for(ctx, ssl=False, plain=True))
    poisoned = _record_poisoned(cfg, data)
    outcome = train(
        ctx,
        data,
        loss,
        reporter,
        regularizer=Regularizer(ctx.model, cfg.loss, cfg.optim),
        extra=extra,
    )
    return _with(outcome, poisoned_ids=poisoned, n_poisoned=len(data.poisoned_keys))


def screen(config: ConfigLike, reporter: Reporter) -> TrialOutcome:
    """Shrink-and-perturb screening: evaluate the perturbed start model, no training."""
    cfg = load_config(config)
    if not cfg.model.checkpoint:
        raise ConfigError("screen needs model.checkpoint: the model to shrink and perturb")
    # save "none": the sweeper writes only the pick's model (`perturbed_checkpoint`).
    keep = cfg.checkpoint_dir is not None and cfg.save != "none"
    cfg = cfg.model_copy(update={"save": "every" if keep else "none"})
    # The points of a screen chunk share a process and a start model: one model reloaded.
    ctx = build_context(cfg, start=load_start(cfg), reuse=True)
    shrink_perturb(ctx.model, cfg.shrink_perturb, model_name=ctx.info.name, seed=cfg.seed)
    result = report_start(ctx, reporter)
    ckpt = str(Path(cfg.checkpoint_dir) / "epoch-000.pt") if keep and cfg.checkpoint_dir else None
    return TrialOutcome(
        status="completed",
        epochs_done=0,
        final_checkpoint=ckpt,
        records=1,
        extra={"final_clean_acc": result.clean_acc, "final_asr": result.asr},
    )


def perturbed_checkpoint(
    config: ConfigLike, path: str | Path, *, clean_acc: float, asr: float
) -> Path:
    """Write the model a `screen` trial of `config` evaluated (the same start weights and
    seeded perturbation), as that trial would have saved it, without evaluating it again:
    a screen keeps no checkpoint but its pick's, which is rebuilt from its recipe."""
    cfg = load_config(config)
    start = load_start(cfg)
    seed_everything(cfg.seed)
    model, info = create_model(cfg.model.name, seed=cfg.seed)
    if start is not None:
        load_weights(model, start, model_name=cfg.model.name)
    shrink_perturb(model, cfg.shrink_perturb, model_name=info.name, seed=cfg.seed)
    meta = model_meta(cfg, start, info.name)
    meta.pop("trigger_kind")
    return save_checkpoint(
        path,
        model,
        model_name=info.name,
        config=cfg.model_dump(mode="json"),
        meta=dict(meta, epoch=0, clean_acc=clean_acc, asr=asr),
    )


ENTRYPOINTS: dict[str, Callable[[ConfigLike, Reporter], TrialOutcome]] = {
    "pretrain": pretrain,
    "clean": clean,
    "screen": screen,
    "bn_only": bn_only,
}


def _record_poisoned(cfg: TrialConfig, data: Any) -> str | None:
    if cfg.checkpoint_dir is None or not data.poisoned_keys:
        return None
    path = Path(cfg.checkpoint_dir) / "poisoned_ids.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    data.write_poisoned_ids(path)
    return str(path)


def _with(outcome: TrialOutcome, **extra: Any) -> TrialOutcome:
    poisoned = extra.pop("poisoned_ids")
    return replace(outcome, poisoned_ids=poisoned, extra={**outcome.extra, **extra})
