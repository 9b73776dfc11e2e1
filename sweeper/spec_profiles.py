"""The profile sections of a search space: `embedded:` (synthetic data, a tiny model, CPU)
and `real:` (the paper's data on disk, RN50 on GPUs), and the `resources` a stage asks.

Part of the spec's schema (`sweeper.spec`, which re-exports these), kept apart so that each
module stays a size a reader takes in at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A partial TrialConfig, deep-merged; checked field by field when trials are planned.
TrialPatch = dict[str, Any]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Frozen):
    """What one trial asks of the cluster."""

    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)

    @field_validator("cpu", "gpu")
    @classmethod
    def _schedulable(cls, value: float) -> float:
        # Ray schedules resources in units of 1e-4; a finer request is refused at launch.
        if value and round(value, 4) != value:
            raise ValueError(f"{value} is finer than Ray's resource unit (0.0001)")
        return value

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        # Ray gives a trial part of one GPU or whole GPUs, never 1.5 of them.
        if value > 1 and value != int(value):
            raise ValueError(f"{value}: ask for a fraction of one GPU (<= 1) or whole GPUs")
        return value


class SyntheticSpec(_Frozen):
    """Sizes of the synthetic image-text world: kwargs of trainers.data.synthetic.make_synthetic."""

    n_train: int = Field(default=2000, gt=0)
    n_clean: int = Field(default=1000, gt=0)
    n_eval_per_class: int = Field(default=20, gt=0)
    image_size: int = Field(default=32, ge=16)
    seed: int = 0
    # Classes of the synthetic world: the first K drawable shapes (trainers.data.shapes),
    # the default 10 first, so the target "banana" is always one. Left out of the cache key
    # at 10 (`synthetic_args`), so the default world keeps its cached data and pretrains.
    n_classes: int = Field(default=10, ge=2, le=30)

    def synthetic_args(self) -> dict[str, Any]:
        """make_synthetic's keyword arguments (and the cache key of the data and pretrains)."""
        args = self.model_dump()
        if args["n_classes"] == 10:
            del args["n_classes"]
        return args


class EmbeddedProfile(_Frozen):
    """The default profile: synthetic data, a tiny model, CPU. The grid never changes."""

    model: str = "tiny-rn"
    synthetic: SyntheticSpec = SyntheticSpec()
    # Pairs of the synthetic clean set a cleaning trial uses (data.max_samples); D.14 doubles
    # it. Cutting one set keeps the synthetic world, and so the pretrain cache, the same.
    clean_pairs: int = Field(default=500, gt=0)
    # Replaces a poison *count* of pre-training (1,500 of CC3M does not fit 2,000 pairs).
    poison_fraction: float = Field(default=0.05, gt=0, lt=1)
    # Every epoch count becomes max(1, round(epochs * epoch_scale)); ratios (D.15) survive.
    epoch_scale: float = Field(default=0.25, gt=0)
    # Warmup is capped at this fraction of a trial's total steps: 10,000 steps would never
    # end on a set of a few dozen steps per epoch.
    max_warmup_fraction: float = Field(default=0.1, ge=0, le=1)
    # There is no OpenAI checkpoint of a tiny model: from-checkpoint jobs train from scratch
    # at this rate (5e-7 would leave a random model where it is).
    scratch_lr: float = Field(default=1e-3, gt=0)
    # k-means clusters of deep clustering at most (1000 for ImageNet; the synthetic set has 10
    # classes and a few hundred cleaning pairs).
    n_clusters: int = Field(default=10, gt=1)
    # Deep clustering with a teacher: "@start" is the cleaning trial's own start model.
    teacher_model: str = "tiny-rn"
    teacher_checkpoint: str = "@start"
    # The paper's batches (256, 128) leave a few thousand synthetic pairs with a handful of
    # steps per epoch; batches are capped here so the tiny model gets enough steps to learn.
    max_batch_size: int = Field(default=64, gt=0)
    # Side of the BadNet patch at the tiny model's 32 px. The paper's 16 px at 224 px scales
    # to 2 px, which a tiny CNN never picks out of the synthetic textures. With the authors'
    # patch (the image's mean plus standard-normal noise, wrapped to 8 bits) 8 px implants
    # erratically: the demo's MMCL model was selected at ASR 7.8%; 12 px gives 86.7%.
    patch_size: int = Field(default=12, gt=0)
    resources: Resources = Resources(cpu=1)
    trial: TrialPatch = {}

    @model_validator(mode="after")
    def _clean_pairs_fit(self) -> EmbeddedProfile:
        if self.clean_pairs > self.synthetic.n_clean:
            raise ValueError(
                f"clean_pairs {self.clean_pairs} is more than synthetic.n_clean "
                f"{self.synthetic.n_clean}; raise synthetic.n_clean"
            )
        return self


class RealProfile(_Frozen):
    """`profile: real`: the paper's data on disk and RN50 on GPUs (override paths on the CLI)."""

    model: str = "RN50"
    pretrain_data: str = ""
    clean_data: str = "/data/cc3m_clean_100k/train.csv"
    eval_data: str = "/data/imagenet/val"
    classnames: str | None = None
    # Named weights a pre-training job may start from (`from_checkpoint: openai`).
    checkpoints: dict[str, str] = {"openai": "/models/openai/RN50.pt"}
    teacher_model: str = "ViT-SO400M-14-SigLIP"
    teacher_checkpoint: str = "/models/siglip/open_clip_pytorch_model.bin"
    trial: TrialPatch = {}
