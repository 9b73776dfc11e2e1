"""The epoch loop shared by pre-training and cleaning.

AdamW (no decay on norms, biases, logit scale), cosine schedule with linear warmup, bf16
autocast on GPU, gradient clipping, the logit scale clamped at 100, evaluation at epoch 0 and
after every epoch. A non-finite loss ends the run as `diverged` with its reason.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from trainers.checkpoint import save_checkpoint
from trainers.config import TrialConfig
from trainers.data import EvalData, TrainData, Trigger
from trainers.evaluate import EvalResult, Prompts, evaluate
from trainers.losses import ContrastiveLoss
from trainers.models import ModelInfo, clamp_logit_scale
from trainers.regularize import Regularizer
from trainers.reporter import EpochRecord, Reporter, TrialOutcome


class ExtraObjective(Protocol):
    """A loss term with per-epoch state (deep clustering)."""

    weight: float

    def prepare(self, epoch: int) -> None: ...

    def __call__(self, image_features: Tensor, index: Tensor) -> Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


@dataclass
class TrialContext:
    """What every entry point sets up before its first evaluation."""

    cfg: TrialConfig
    device: torch.device
    model: nn.Module
    info: ModelInfo
    tokenizer: Callable[[list[str]], Tensor]
    eval_data: EvalData
    prompts: Prompts
    trigger: Trigger
    target: str
    meta: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)

    def normalize(self, images: Tensor) -> Tensor:
        mean = torch.tensor(self.info.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.info.std, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def evaluate(self) -> EvalResult:
        with self.autocast():
            return evaluate(
                self.model,
                self.prompts,
                self.eval_data,
                trigger=self.trigger,
                target=self.target,
                normalize=self.normalize,
                device=self.device,
                batch_size=self.cfg.data.eval_batch_size,
                seed=self.cfg.eval.seed,
            )

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self, name: str, epoch: int, result: EvalResult) -> str | None:
        if self.cfg.checkpoint_dir is None:
            return None
        meta = dict(self.meta, epoch=epoch, clean_acc=result.clean_acc, asr=result.asr)
        path = Path(self.cfg.checkpoint_dir) / name
        save_checkpoint(
            path,
            self.model,
            model_name=self.info.name,
            config=self.cfg.model_dump(mode="json"),
            meta=meta,
        )
        return str(path)


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """LR multiplier: linear warmup to 1 over `warmup` steps, then cosine to 0 at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def report_start(ctx: TrialContext, reporter: Reporter) -> EvalResult:
    """Epoch 0: the starting model, before any step."""
    result = ctx.evaluate()
    ckpt = ctx.save("epoch-000.pt", 0, result) if ctx.cfg.save == "every" else None
    reporter.report(
        EpochRecord(
            epoch=0,
            clean_acc=result.clean_acc,
            clean_top5=result.clean_top5,
            asr=result.asr,
            wall_s=ctx.elapsed(),
            checkpoint=ckpt,
        )
    )
    return result


def train(
    ctx: TrialContext,
    data: TrainData,
    loss_fn: ContrastiveLoss,
    reporter: Reporter,
    *,
    regularizer: Regularizer,
    extra: ExtraObjective | None = None,
) -> TrialOutcome:
    """Train `ctx.model` for `cfg.optim.epochs` epochs, reporting after each."""
    cfg = ctx.cfg
    result = report_start(ctx, reporter)
    params = regularizer.param_groups(ctx.model)
    if extra is not None:
        params.append({"params": list(extra.parameters()), "weight_decay": 0.0})
    opt = torch.optim.AdamW(
        params, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps
    )
    steps_per_epoch = max(1, data.num_samples // cfg.data.batch_size)
    total = steps_per_epoch * cfg.optim.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cosine_with_warmup(s, cfg.optim.warmup_steps, total)
    )
    seen = skipped_total = 0
    last_ckpt = None
    for epoch in range(1, cfg.optim.epochs + 1):
        if cfg.fail_at_epoch is not None and epoch == cfg.fail_at_epoch:
            raise RuntimeError(f"injected failure at epoch {epoch} (fail_at_epoch)")
        data.set_epoch(epoch)
        if extra is not None:
            extra.prepare(epoch)
        sums: dict[str, float] = {}
        n_steps = skipped = 0
        ctx.model.train()
        for batch in data:
            skipped += int(batch.skipped)
            parts = _step(ctx, batch, loss_fn, extra, opt, regularizer)
            if parts is None or not math.isfinite(parts["loss"]):
                bad = "nan" if parts is None else parts["loss"]
                return TrialOutcome(
                    status="diverged",
                    reason=f"non-finite loss ({bad}) at epoch {epoch}, step {n_steps + 1}",
                    epochs_done=epoch - 1,
                    final_checkpoint=last_ckpt,
                    skipped=skipped_total + skipped,
                )
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_steps += 1
            seen += len(batch.index)
        skipped_total += skipped
        result = ctx.evaluate()
        ckpt = None
        if cfg.save == "every":
            ckpt = ctx.save(f"epoch-{epoch:03d}.pt", epoch, result)
        elif cfg.save == "last" and epoch == cfg.optim.epochs:
            ckpt = ctx.save("last.pt", epoch, result)
        last_ckpt = ckpt or last_ckpt
        mean = {k: v / max(1, n_steps) for k, v in sums.items()}
        reporter.report(
            EpochRecord(
                epoch=epoch,
                clean_acc=result.clean_acc,
                clean_top5=result.clean_top5,
                asr=result.asr,
                loss=mean.get("loss"),
                loss_mmcl=mean.get("loss_mmcl"),
                loss_ssl=mean.get("loss_ssl"),
                loss_reg=regularizer.value(ctx.model),
                loss_cluster=mean.get("loss_cluster"),
                lr=opt.param_groups[0]["lr"],
                samples_seen=seen,
                wall_s=ctx.elapsed(),
                checkpoint=ckpt,
                skipped=skipped,
            )
        )
    return TrialOutcome(
        status="completed",
        epochs_done=cfg.optim.epochs,
        final_checkpoint=last_ckpt,
        skipped=skipped_total,
        extra={"final_clean_acc": result.clean_acc, "final_asr": result.asr},
    )


def _step(
    ctx: TrialContext,
    batch: Any,
    loss_fn: ContrastiveLoss,
    extra: ExtraObjective | None,
    opt: torch.optim.Optimizer,
    regularizer: Regularizer,
) -> dict[str, float] | None:
    model, dev = ctx.model, ctx.device
    ssl = loss_fn.needs_augmented_views
    images = batch.image.to(dev, non_blocking=True)
    texts = batch.text.to(dev, non_blocking=True)
    if ssl:
        # One forward pass over both views, as CleanCLIP does.
        images = torch.cat([images, batch.image_aug.to(dev, non_blocking=True)])
        texts = torch.cat([texts, batch.text_aug.to(dev, non_blocking=True)])
    with ctx.autocast():
        img_f = model.encode_image(ctx.normalize(images), normalize=True)
        txt_f = model.encode_text(texts, normalize=True)
        b = len(batch.index)
        img_aug_f = img_f[b:] if ssl else None
        txt_aug_f = txt_f[b:] if ssl else None
        parts = loss_fn(img_f[:b], txt_f[:b], model.logit_scale.exp(), img_aug_f, txt_aug_f)
        total = parts["loss"]
        if extra is not None and extra.weight > 0:
            parts["loss_cluster"] = extra(img_f[:b], batch.index.to(dev))
            total = total + extra.weight * parts["loss_cluster"]
            parts["loss"] = total
    if not torch.isfinite(total):
        return None
    opt.zero_grad(set_to_none=True)
    total.backward()
    if ctx.cfg.optim.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), ctx.cfg.optim.grad_clip)
    opt.step()
    regularizer.after_step(opt.param_groups[0]["lr"])
    clamp_logit_scale(model)
    return {k: float(v.detach()) for k, v in parts.items()}
