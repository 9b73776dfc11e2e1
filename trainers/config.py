"""Typed, frozen configuration of one trial.

Every entry point (`pretrain`, `clean`, `screen`) takes a `TrialConfig` or a plain mapping
that validates into one. Unknown keys are rejected so a typo in a search space never turns
into a silently ignored hyperparameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainers.errors import ConfigError

PoisonKind = Literal["none", "badnet", "label_consistent", "blended"]
TriggerKind = Literal["badnet", "blended"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    """Where the image-text pairs and the zero-shot eval set live."""

    # A directory of WebDataset .tar shards, a brace/glob pattern of shards, or a CSV file
    # with `image` and `caption` columns (image paths relative to the CSV).
    train: str = ""
    # An ImageNet-style folder: one subfolder per class, plus a class-names file.
    eval: str = ""
    # One class name per line, in the order of the sorted subfolders. Default:
    # `<eval>/classnames.txt`, else the ImageNet-1K names if there are 1000 subfolders.
    classnames: str | None = None
    # The authors' cleaning batch with the SSL loss (their parser's default is 128); search
    # spaces set it per experiment.
    batch_size: int = Field(64, gt=0)
    eval_batch_size: int = Field(256, gt=0)
    # Loader worker processes (decode, poison, AutoAugment, EDA run in them; 0: in the
    # training process). None derives them from the trial's CPUs (`threads`, what its Ray
    # resources give it): one per CPU on a GPU, one fewer on CPU, where the training
    # process computes too (`loader.resolve_num_workers`). The authors' code uses 8 per GPU.
    num_workers: int | None = Field(None, ge=0)
    # Shard data with fewer shards than ranks x workers: "share" (every worker reads every
    # shard and keeps its own samples: each sample still once per epoch, each shard read
    # ranks x workers times), "error" (refuse), "resample" (WebDataset-style: each worker
    # draws shards with replacement until it has its share of the epoch's samples).
    few_shards: Literal["share", "error", "resample"] = "share"
    # Where the shard index and the decoded eval set are cached on disk for every trial of
    # the node (`<cache_dir>/index/`, `<cache_dir>/eval/`); the sweeper sets it to
    # `<store>/.cache`. None: the index is built per trial and the eval set is held in
    # memory when it fits (EVAL_CACHE_BYTES).
    cache_dir: str | None = None
    # Use only the first N training pairs (None: all).
    max_samples: int | None = Field(None, gt=0)
    # Use only the first N eval images per class (None: all).
    max_eval_per_class: int | None = Field(None, gt=0)
    # Shard data only: WebDataset's shuffle buffer (the authors' CSV loader shuffles the whole
    # set each epoch; shards are also permuted each epoch, so this approximates it).
    shuffle_buffer: int = Field(2000, ge=0)


class PoisonConfig(_Frozen):
    """Which training pairs get a trigger; applied while reading, never to source files."""

    kind: PoisonKind = "none"
    # A count (>= 1, whole number) or a fraction of the eligible samples (< 1).
    amount: float = Field(0.0, ge=0)
    target: str = "banana"
    seed: int = 0
    # Side of the square patch in pixels at the model's resolution; None scales the paper's
    # 16 px at 224 px to the model's image size.
    patch_size: int | None = Field(None, gt=0)
    # Weight of the noise pattern for the blended trigger (authors' code: 0.2 noise + 0.8 image).
    blend_alpha: float = Field(0.2, gt=0, le=1)

    @model_validator(mode="after")
    def _count_is_whole(self) -> PoisonConfig:
        if self.amount >= 1 and self.amount != int(self.amount):
            raise ValueError(
                f"amount {self.amount} is neither a fraction (< 1) nor a whole count (>= 1)"
            )
        return self


class ModelConfig(_Frozen):
    # Any open_clip model name ("RN50") or a registered tiny config ("tiny-rn", "tiny-vit").
    name: str = "tiny-rn"
    # Weights to start from: a sweeper checkpoint or an open_clip state dict (local file).
    checkpoint: str | None = None


class OptimConfig(_Frozen):
    """AdamW with a cosine schedule after a linear warmup (paper and authors' code).

    Every default is the authors' (`src/parser.py`) unless its comment says otherwise;
    search spaces set lr, epochs and warmup per experiment.
    """

    # Authors' code: lr 5e-4.
    lr: float = Field(5e-4, gt=0)
    # Not the paper's (64 pre-training, 20 cleaning epochs, set by every search space): one
    # epoch keeps a bare config cheap.
    epochs: int = Field(1, ge=0)
    # Paper, cleaning: 50 warmup steps (pre-training's 10,000 is set by its search spaces).
    warmup_steps: int = Field(50, ge=0)
    # Authors' code and paper: decay 0.1 on every weight but norms, biases, the logit scale.
    weight_decay: float = Field(0.1, ge=0)
    # Authors' code: AdamW betas (0.9, 0.999), eps 1e-8 (PyTorch's defaults).
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    # Authors' code clips nothing; a max gradient norm here is an option, off by default.
    grad_clip: float | None = Field(None, gt=0)


class LossConfig(_Frozen):
    """Weights of the parts of the training loss (CleanCLIP: mmcl 1, ssl 1)."""

    mmcl_weight: float = Field(1.0, ge=0)
    ssl_weight: float = Field(0.0, ge=0)
    # Heavy regularisation: weight of an L2 term toward zero (the paper's code, as AdamW
    # decay) or toward the starting weights (L2-SP).
    l2_weight: float = Field(0.0, ge=0)
    l2_target: Literal["zero", "start"] = "zero"
    # Deep clustering: weight of the cross-entropy of a fresh linear head on pseudo-labels.
    cluster_weight: float = Field(0.0, ge=0)
    cluster_source: Literal["kmeans", "teacher"] = "kmeans"
    n_clusters: int = Field(1000, gt=1)
    teacher_model: str | None = None
    teacher_checkpoint: str | None = None

    @model_validator(mode="after")
    def _something_to_train(self) -> LossConfig:
        if self.mmcl_weight + self.ssl_weight + self.cluster_weight + self.l2_weight == 0:
            raise ValueError("every loss weight is 0: nothing would be trained")
        teacher = self.cluster_source == "teacher" and self.cluster_weight > 0
        if teacher and not self.teacher_checkpoint:
            raise ValueError("cluster_source 'teacher' needs teacher_checkpoint")
        return self


class ShrinkPerturbConfig(_Frozen):
    """theta <- shrink * theta + perturb_sigma * noise, applied once before cleaning."""

    shrink: float = Field(1.0, gt=0, le=1)
    perturb_sigma: float = Field(0.0, ge=0)
    # "gaussian": noise ~ N(0, 1) (the paper's text); "init": a fresh random initialisation
    # of the same architecture (the paper's code).
    noise: Literal["gaussian", "init"] = "init"


class EvalConfig(_Frozen):
    # Trigger used for ASR; None takes the poison kind recorded in the starting checkpoint
    # (or of this run's poison), else badnet.
    trigger: TriggerKind | None = None
    target: str | None = None
    seed: int = 1234


class TrialConfig(_Frozen):
    """Everything one trial needs; the sweeper builds one per grid point."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    poison: PoisonConfig = PoisonConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    shrink_perturb: ShrinkPerturbConfig = ShrinkPerturbConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = 0
    device: str = "auto"
    # Directory for this trial's checkpoints; None keeps none.
    checkpoint_dir: str | None = None
    # "every": one per epoch (each epoch is a candidate model); "last": only the final one.
    save: Literal["every", "last", "none"] = "last"
    # Torch intra-op threads (0: leave torch's default).
    threads: int = Field(0, ge=0)
    # Test hook: raise at the start of this epoch (fault-injection tests of the sweeper).
    fail_at_epoch: int | None = None
    # File of the trial's resume state (`trainers.resume`), rewritten after every epoch; a
    # run that finds one saved under the same config continues after its epoch. None: none.
    resume_state: str | None = None


def load_config(config: TrialConfig | Mapping[str, Any]) -> TrialConfig:
    """Validate a mapping (for example a Ray Tune config) into a `TrialConfig`."""
    if isinstance(config, TrialConfig):
        return config
    try:
        return TrialConfig.model_validate(dict(config))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "trial config")) from None


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line per problem, each naming the dotted field."""
    lines = [f"{where}: {err.error_count()} problem(s)"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {field}: {e['msg']}")
    return "\n".join(lines)
