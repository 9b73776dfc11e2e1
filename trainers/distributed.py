"""Data-parallel training: one trial as `world_size` processes of a `torch.distributed` group.

Whoever starts the processes starts the group (the sweeper: Ray Train's `TorchTrainer`, NCCL
on GPUs and gloo on CPU; the tests: `torch.multiprocessing` with gloo); nothing here knows
Ray. Every rank runs the whole entry point (`trainers.entries`) on the same config, so each
builds the same model from the same seed and start weights; `DistributedContext` then
changes what the loop's seam (`trainers.context.TrialContext`) does:

- forward and backward go through `DistributedDataParallel`, which averages the gradients;
  the losses gather every rank's features with their gradients (`trainers.losses`), so the
  job's loss and gradient are those of one process on the global batch (rank batch x ranks);
- each rank reads its own share of the training data (`rank` x loader worker split in
  `trainers.data.pipeline`), cut to the batch count every rank has: a step is collective,
  and a rank with a batch more would wait for the others forever;
- only rank 0 evaluates and writes checkpoints and resume states; on a restart every rank
  loads rank 0's resume state. The other ranks report placeholder records, which the
  caller drops (the sweeper forwards rank 0's results only);
- an epoch's loss means, samples and skips are over every rank, and a non-finite loss on
  any rank stops every rank at the same step.

`data.batch_size` is the per-rank batch, as open_clip's `--batch-size` is per GPU: the
global batch is `batch_size x world_size`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from trainers.context import TrialContext, encode_pair
from trainers.data import Batch, TrainData
from trainers.errors import ConfigError
from trainers.evaluate import EvalResult
from trainers.resume import Resumed

if TYPE_CHECKING:
    from trainers.loop import EpochStats

# What a rank other than 0 "measures": it evaluates nothing, and its records go nowhere.
PLACEHOLDER = EvalResult(clean_acc=0.0, clean_top5=0.0, asr=0.0, n_images=0, n_asr_images=0)


def world() -> tuple[int, int]:
    """(rank, world size) of this process's default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _Encoders(nn.Module):
    """The model's towers and temperature as one forward, for DDP to wrap: DDP averages
    the gradients of a backward only when the forward went through it, and the loop needs
    the features of both towers and the logit scale from the same step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return encode_pair(self.model, images, texts)


@dataclass
class DistributedContext(TrialContext):
    """A rank of a data-parallel trial: see the module docstring for what changes."""

    ddp: DistributedDataParallel | None = None
    _control: Any = None  # the process group of the per-step batch count (CPU, gloo)

    def __post_init__(self) -> None:
        if self.cfg.loss.cluster_weight > 0:
            raise ConfigError(
                "loss.cluster_weight > 0 (deep clustering) does not run data-parallel: its "
                "k-means and head are per process; run it with one worker (no `distributed`)"
            )
        ids = None
        if self.device.type == "cuda":
            ids = [
                self.device.index if self.device.index is not None else torch.cuda.current_device()
            ]
        # Construction broadcasts rank 0's parameters and buffers: every rank starts equal.
        self.ddp = DistributedDataParallel(_Encoders(self.model), device_ids=ids)
        # The "has every rank a batch?" vote is host-side: on NCCL it would wait for the GPU
        # at every step, which the loop's deferred loss checks avoid (trainers.loop).
        gloo = dist.get_backend() == "gloo"
        self._control = None if gloo else dist.new_group(backend="gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def evaluate(self) -> EvalResult:
        return super().evaluate() if self.is_main else PLACEHOLDER

    def save(self, name: str, epoch: int, result: EvalResult) -> str | None:
        return super().save(name, epoch, result) if self.is_main else None

    def encode(self, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.ddp is not None
        return self.ddp(images, texts)

    def shard(self, data: TrainData) -> TrainData:
        return EvenBatches(data, self.world_size, self._control)  # type: ignore[return-value]

    def save_state(
        self,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        progress: Resumed,
    ) -> None:
        if self.is_main:
            super().save_state(opt, sched, progress)

    def combine(self, stats: EpochStats) -> EpochStats:
        keys = list(stats.means)
        values = [float(stats.samples), float(stats.skipped), *(stats.means[k] for k in keys)]
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        out = total.tolist()
        means = {k: v / self.world_size for k, v in zip(keys, out[2:], strict=True)}
        # Every rank ran the same steps on as many samples, so the mean of the ranks' means
        # is the mean over the job's steps; each rank's loss is over its own rows against
        # every rank's columns, so that mean is the global batch's loss.
        return dataclasses.replace(stats, samples=int(out[0]), skipped=int(out[1]), means=means)

    def agree_on_bad_step(self, step: Tensor) -> Tensor:
        dist.all_reduce(step, op=dist.ReduceOp.MAX)
        return step


class EvenBatches:
    """A rank's `TrainData`, ending its epoch when any rank has run out of batches.

    The ranks' shares differ by up to a shard (or a row), so their batch counts can differ;
    before each batch the ranks vote (MIN of "I have one") and all stop together. What a
    rank holds past that point is dropped, as `drop_last` drops a partial batch: at most a
    few batches of one rank an epoch. `num_samples` is this rank's share, which is what
    the loop's LR schedule counts steps from.
    """

    def __init__(self, data: TrainData, world_size: int, group: Any = None) -> None:
        self.data = data
        self.world_size = world_size
        self.group = group

    @property
    def num_samples(self) -> int:
        return self.data.num_samples // self.world_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.data, name)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Batch]:
        batches = iter(self.data)
        try:
            while True:
                batch = next(batches, None)
                have = torch.tensor(int(batch is not None))
                dist.all_reduce(have, op=dist.ReduceOp.MIN, group=self.group)
                if not int(have) or batch is None:
                    return
                yield batch
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
