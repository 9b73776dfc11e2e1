"""The trainers' only way out: one `EpochRecord` per evaluated epoch, handed to a `Reporter`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

TrialStatus = Literal["completed", "diverged"]


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of the model after `epoch` epochs (0 = the starting model, before any step)."""

    epoch: int
    clean_acc: float
    clean_top5: float
    asr: float
    loss: float | None = None
    loss_mmcl: float | None = None
    loss_ssl: float | None = None
    loss_reg: float | None = None
    loss_cluster: float | None = None
    lr: float | None = None
    samples_seen: int = 0
    wall_s: float = 0.0
    checkpoint: str | None = None
    # Training pairs skipped this epoch (corrupt image, empty caption).
    skipped: int = 0
    # What the figures rest on: eval images behind clean_acc, non-target images behind asr,
    # and the classes of the zero-shot classifier (chance accuracy is 100 / n_classes).
    n_eval: int | None = None
    n_asr_eval: int | None = None
    n_classes: int | None = None
    # % of the untriggered non-target eval images predicted as the target (ASR's floor).
    asr_untriggered: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended and what it left behind."""

    status: TrialStatus
    reason: str | None = None
    epochs_done: int = 0
    final_checkpoint: str | None = None
    poisoned_ids: str | None = None
    skipped: int = 0
    records: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reporter(Protocol):
    """Where records go. A resumed run hands the records of the epochs it does not run again
    to `replay(record)` when the reporter has one, else to `report`."""

    def report(self, record: EpochRecord) -> None: ...


class ListReporter:
    """Collects records in memory: what tests and plain loops use."""

    def __init__(self) -> None:
        self.records: list[EpochRecord] = []
        self.replayed: list[int] = []  # epochs handed over by `replay`

    def report(self, record: EpochRecord) -> None:
        self.records.append(record)

    def replay(self, record: EpochRecord) -> None:
        """A record a resumed run hands over again from its resume state."""
        self.records.append(record)
        self.replayed.append(record.epoch)
