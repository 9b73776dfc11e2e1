"""The epoch loop shared by pre-training and cleaning.

As in the authors' code: AdamW (no decay on norms, biases, logit scale), a per-step cosine
schedule after a linear warmup, no gradient clipping (an option, off by default), the logit
scale clamped to [0, ln 100] after every step. Evaluation at epoch 0 and after every epoch.
A non-finite loss ends the run as `diverged` with its reason. Mixed precision differs: the
authors autocast to fp16 with a GradScaler; here CUDA autocasts to bf16, whose range needs
no loss scaling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn

from trainers.config import OptimConfig
from trainers.context import TrialContext as TrialContext
from trainers.context import eval_counts as eval_counts
from trainers.data import Batch, TrainData
from trainers.evaluate import EvalResult
from trainers.losses import ContrastiveLoss
from trainers.models import clamp_logit_scale
from trainers.regularize import Regularizer
from trainers.reporter import EpochRecord, Reporter, TrialOutcome
from trainers.resume import Resumed, load_state


class ExtraObjective(Protocol):
    """A loss term with per-epoch state (deep clustering).

    `prepare(epoch)` runs before each epoch and re-initialises the term's parameters, so
    the loop resets their optimiser state with them.
    """

    weight: float

    def prepare(self, epoch: int) -> None: ...

    def __call__(self, image_features: Tensor, index: Tensor) -> Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


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
            **eval_counts(ctx, result),
            wall_s=ctx.elapsed(),
            checkpoint=ckpt,
        )
    )
    return result


@dataclass
class EpochStats:
    """What one pass over the training data did."""

    means: dict[str, float] = field(default_factory=dict)  # mean of each loss part
    samples: int = 0
    skipped: int = 0  # pairs the loader dropped this epoch (corrupt image, empty caption)
    diverged: str | None = None  # why the epoch stopped early, if it did


def make_optimizer(
    model: nn.Module, regularizer: Regularizer, extra: ExtraObjective | None, optim: OptimConfig
) -> torch.optim.AdamW:
    """AdamW over the model's decay groups (and the extra head, undecayed).

    Authors' code: AdamW, betas (0.9, 0.999), eps 1e-8 (the `OptimConfig` defaults).
    """
    params = regularizer.param_groups()
    if extra is not None:
        params.append({"params": list(extra.parameters()), "weight_decay": 0.0})
    return torch.optim.AdamW(params, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps)


def make_scheduler(
    opt: torch.optim.Optimizer, optim: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step cosine schedule with linear warmup (authors' `cosine_scheduler`)."""
    warmup = optim.warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cosine_with_warmup(s, warmup, total_steps)
    )


def reset_optimizer_state(opt: torch.optim.Optimizer, params: Iterable[Tensor]) -> None:
    """Forget AdamW's moments and step count for `params`: the next step starts afresh.

    A re-initialised head (deep clustering, each epoch) must not inherit the moments of
    the previous head: k-means numbers its clusters anew each epoch, so old momentum
    would push each new output toward an unrelated old cluster.
    """
    for p in params:
        opt.state.pop(p, None)


def start_epoch(
    ctx: TrialContext,
    data: TrainData,
    extra: ExtraObjective | None,
    opt: torch.optim.Optimizer,
    epoch: int,
) -> None:
    cfg = ctx.cfg
    if cfg.fail_at_epoch is not None and epoch == cfg.fail_at_epoch:
        raise RuntimeError(f"injected failure at epoch {epoch} (fail_at_epoch)")
    data.set_epoch(epoch)
    if extra is not None:
        extra.prepare(epoch)  # re-initialises the head...
        reset_optimizer_state(opt, extra.parameters())  # ...and so its optimiser state
    ctx.model.train()


# Steps between two reads of the loss on the host. Reading it (`float`, `isfinite` in an
# `if`) waits for the device to finish every queued step: once per step, a GPU idles while
# the host catches up. The loss parts are summed on the device instead and read here.
CHECK_EVERY = 50


class _FirstNonFinite:
    """The first step (and its loss) at which the loss was not finite, kept on the device."""

    def __init__(
        self, device: torch.device, agree: Callable[[Tensor], Tensor] = lambda s: s
    ) -> None:
        self.step = torch.zeros((), dtype=torch.long, device=device)  # 0: none yet
        self.value = torch.zeros((), dtype=torch.float32, device=device)
        self.agree = agree  # a data-parallel job's ranks stop at the same step

    def note(self, loss: Tensor, step: int) -> None:
        first = ~torch.isfinite(loss) & (self.step == 0)
        self.step.masked_fill_(first, step)
        self.value = torch.where(first, loss.detach().float(), self.value)

    def reason(self, epoch: int) -> str | None:
        """Why the epoch must stop (reads the device: call every CHECK_EVERY steps)."""
        step = int(self.agree(self.step.clone()))
        if step == 0:
            return None
        return f"non-finite loss ({float(self.value)}) at epoch {epoch}, step {step}"


def run_epoch(
    ctx: TrialContext,
    data: TrainData,
    loss_fn: ContrastiveLoss,
    extra: ExtraObjective | None,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    regularizer: Regularizer,
    epoch: int,
    check_every: int = CHECK_EVERY,
) -> EpochStats:
    """One pass over `data`, a step per batch; stops when a non-finite loss is seen.

    The loss is checked every `check_every` steps and at the end of the epoch, not after
    each step: a non-finite loss at step k ends the epoch as `diverged` with "step k" in
    its reason at the next check, after up to `check_every - 1` further steps on what are
    by then non-finite weights (the trial ends there, and its last checkpoint is the
    previous epoch's, saved before any of them).
    """
    stats = EpochStats()
    sums: dict[str, Tensor] = {}
    bad = _FirstNonFinite(ctx.device, ctx.agree_on_bad_step)
    n_steps = 0
    for batch in data:
        stats.skipped += int(batch.skipped)
        parts = _step(ctx, batch, loss_fn, extra, opt, regularizer)
        sched.step()
        n_steps += 1
        bad.note(parts["loss"], n_steps)
        for k, v in parts.items():
            sums[k] = sums[k] + v if k in sums else v
        stats.samples += len(batch.index)
        if n_steps % check_every == 0 and (reason := bad.reason(epoch)) is not None:
            stats.diverged = reason
            return stats
    if (reason := bad.reason(epoch)) is not None:
        stats.diverged = reason
        return stats
    if sums:  # one read of every part at the end of the epoch
        totals = torch.stack(list(sums.values())).tolist()
        stats.means = {k: v / n_steps for k, v in zip(sums, totals, strict=True)}
    return stats


def report_epoch(
    ctx: TrialContext,
    reporter: Reporter,
    epoch: int,
    stats: EpochStats,
    *,
    seen: int,
    lr: float,
    loss_reg: float | None,
) -> tuple[EvalResult, str | None]:
    """Evaluate after `epoch`, keep its checkpoint if asked, and report it."""
    cfg = ctx.cfg
    result = ctx.evaluate()
    ckpt = None
    if cfg.save == "every":
        ckpt = ctx.save(f"epoch-{epoch:03d}.pt", epoch, result)
    elif cfg.save == "last" and epoch == cfg.optim.epochs:
        ckpt = ctx.save("last.pt", epoch, result)
    reporter.report(
        EpochRecord(
            epoch=epoch,
            clean_acc=result.clean_acc,
            clean_top5=result.clean_top5,
            asr=result.asr,
            **eval_counts(ctx, result),
            loss=stats.means.get("loss"),
            loss_mmcl=stats.means.get("loss_mmcl"),
            loss_ssl=stats.means.get("loss_ssl"),
            loss_reg=loss_reg,
            loss_cluster=stats.means.get("loss_cluster"),
            lr=lr,
            samples_seen=seen,
            wall_s=ctx.elapsed(),
            checkpoint=ckpt,
            skipped=stats.skipped,
        )
    )
    return result, ckpt


def train(
    ctx: TrialContext,
    data: TrainData,
    loss_fn: ContrastiveLoss,
    reporter: Reporter,
    *,
    regularizer: Regularizer,
    extra: ExtraObjective | None = None,
) -> TrialOutcome:
    """Train `ctx.model` for `cfg.optim.epochs` epochs, reporting after each.

    With a resume state (`cfg.resume_state`) from an earlier run of the same config, the
    run continues after that run's last completed epoch: its records are handed to
    `reporter` again (the sweeper stores each epoch once), then training goes on.
    """
    cfg = ctx.cfg
    data = ctx.shard(data)  # a data-parallel rank's share: its steps are every rank's
    opt = make_optimizer(ctx.model, regularizer, extra, cfg.optim)
    steps_per_epoch = max(1, data.num_samples // cfg.data.batch_size)
    sched = make_scheduler(opt, cfg.optim, steps_per_epoch * cfg.optim.epochs)
    progress = load_state(cfg, ctx.model, opt, sched)
    tap = _Tap(reporter)
    if progress is None:
        progress = Resumed(0, 0, 0, 0.0, None, tap.records)
        report_start(ctx, tap)
    else:
        ctx.started -= progress.elapsed  # wall_s goes on from where the run stopped
        replay = getattr(reporter, "replay", reporter.report)
        for record in progress.records:
            replay(record)
        tap.records = progress.records
    for epoch in range(progress.epoch + 1, cfg.optim.epochs + 1):
        start_epoch(ctx, data, extra, opt, epoch)
        stats = run_epoch(ctx, data, loss_fn, extra, opt, sched, regularizer, epoch)
        stats = ctx.combine(stats)  # over every rank of a data-parallel job
        progress.skipped += stats.skipped
        if stats.diverged is not None:
            return TrialOutcome(
                status="diverged",
                reason=stats.diverged,
                epochs_done=epoch - 1,
                final_checkpoint=progress.last_checkpoint,
                skipped=progress.skipped,
            )
        progress.seen += stats.samples
        lr = opt.param_groups[0]["lr"]
        _, ckpt = report_epoch(
            ctx, tap, epoch, stats, seen=progress.seen, lr=lr, loss_reg=regularizer.value()
        )
        progress.last_checkpoint = ckpt or progress.last_checkpoint
        progress.epoch, progress.elapsed = epoch, ctx.elapsed()
        # After the report: a run stopped in between reports this epoch again, never skips it.
        ctx.save_state(opt, sched, progress)
    return TrialOutcome(
        status="completed",
        epochs_done=cfg.optim.epochs,
        final_checkpoint=progress.last_checkpoint,
        skipped=progress.skipped,
        extra={"final_clean_acc": tap.records[-1].clean_acc, "final_asr": tap.records[-1].asr},
    )


class _Tap:
    """Forwards records to a reporter and keeps them: the resume state holds them."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.records: list[EpochRecord] = []

    def report(self, record: EpochRecord) -> None:
        self.reporter.report(record)
        self.records.append(record)


def _step(
    ctx: TrialContext,
    batch: Batch,
    loss_fn: ContrastiveLoss,
    extra: ExtraObjective | None,
    opt: torch.optim.Optimizer,
    regularizer: Regularizer,
) -> dict[str, Tensor]:
    """One optimiser step; the loss parts as detached float32 device scalars (unread)."""
    model, dev = ctx.model, ctx.device
    ssl = loss_fn.needs_augmented_views
    images = batch.image.to(dev, non_blocking=True)
    texts = batch.text.to(dev, non_blocking=True)
    if ssl:
        assert batch.image_aug is not None and batch.text_aug is not None
        # One forward pass over both views, as CleanCLIP does.
        images = torch.cat([images, batch.image_aug.to(dev, non_blocking=True)])
        texts = torch.cat([texts, batch.text_aug.to(dev, non_blocking=True)])
    with ctx.autocast():
        img_f, txt_f, scale = ctx.encode(ctx.normalize(images), texts)
        b = len(batch.index)
        img_aug_f = img_f[b:] if ssl else None
        txt_aug_f = txt_f[b:] if ssl else None
        parts = loss_fn(img_f[:b], txt_f[:b], scale, img_aug_f, txt_aug_f)
        total = parts["loss"]
        if extra is not None and extra.weight > 0:
            parts["loss_cluster"] = extra(img_f[:b], batch.index.to(dev))
            total = total + extra.weight * parts["loss_cluster"]
            parts["loss"] = total
    opt.zero_grad(set_to_none=True)
    total.backward()
    if ctx.cfg.optim.grad_clip is not None:  # an option; the authors' code clips nothing
        torch.nn.utils.clip_grad_norm_(model.parameters(), ctx.cfg.optim.grad_clip)
    opt.step()
    regularizer.after_step(opt.param_groups[0]["lr"])
    clamp_logit_scale(model)  # authors' code: clamp to [0, 4.6052] after every step
    return {k: v.detach().float() for k, v in parts.items()}
