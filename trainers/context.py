"""`TrialContext`: what every entry point sets up before its first evaluation.

It is also the loop's one seam for data-parallel training: the loop calls `encode`,
`save_state`, `combine` and `agree_on_bad_step` on it, which here do what one process does,
and `trainers.distributed.DistributedContext` overrides (DDP forward, rank-0 files, the
epoch's statistics summed over ranks). So `trainers.loop` has no branch on the world size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainers.checkpoint import save_checkpoint
from trainers.config import TrialConfig
from trainers.data import EvalData, TrainData, Trigger
from trainers.evaluate import EvalResult, Prompts, evaluate
from trainers.models import ModelInfo, normalize
from trainers.resume import Resumed, save_state

if TYPE_CHECKING:
    from trainers.loop import EpochStats


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
    # This process's place in a data-parallel job (`trainers.distributed`): one process here.
    rank: int = 0
    world_size: int = 1

    def normalize(self, images: Tensor) -> Tensor:
        return normalize(images, self.info)

    def autocast(self) -> contextlib.AbstractContextManager:
        # bf16 rather than the authors' fp16 + GradScaler: same speed on A100s, no scaler.
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

    # -- the data-parallel seam (one process: the plain thing) ------------------------------

    def encode(self, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unit image and text features and the logit scale (exp of the parameter)."""
        return encode_pair(self.model, images, texts)

    def shard(self, data: TrainData) -> TrainData:
        """The training data as this process iterates it."""
        return data

    def save_state(
        self,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        progress: Resumed,
    ) -> None:
        save_state(self.cfg, self.model, opt, sched, progress)

    def combine(self, stats: EpochStats) -> EpochStats:
        """The epoch's statistics over the whole job (here: this process's)."""
        return stats

    def agree_on_bad_step(self, step: Tensor) -> Tensor:
        """The first non-finite step any process saw (0: none); every process stops at it."""
        return step


def encode_pair(model: nn.Module, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A CLIP step's forward: unit image and text features and exp(logit_scale)."""
    return (
        model.encode_image(images, normalize=True),
        model.encode_text(texts, normalize=True),
        model.logit_scale.exp(),
    )


def eval_counts(ctx: TrialContext, result: EvalResult) -> dict[str, Any]:
    """The sizes a record's accuracy and ASR were measured on, and ASR's untriggered floor."""
    return {
        "n_eval": result.n_images,
        "n_asr_eval": result.n_asr_images,
        "n_classes": ctx.prompts.n_classes,
        "asr_untriggered": result.asr_untriggered,
    }
