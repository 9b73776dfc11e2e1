"""Registries of the short names a search space may use (listed by `sweeper ls`).

Methods, swept parameters, triggers and models are named here, never as dotted import paths
in YAML, so a typo is caught by validation and a new entry is tested by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, get_args

from trainers.config import PoisonKind

# Pre-training objectives and the loss weights they mean (PAPER_NOTES, "Losses").
OBJECTIVES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "mmcl": {"mmcl_weight": 1.0, "ssl_weight": 0.0},
        "mmcl_ssl": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
    }
)

# `base_loss` grid values (D.12 adds the L2 term to each of these).
BASE_LOSSES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "mmcl": {"mmcl_weight": 1.0, "ssl_weight": 0.0},
        "ssl": {"mmcl_weight": 0.0, "ssl_weight": 1.0},
        "mmcl_ssl": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
    }
)


@dataclass(frozen=True)
class Method:
    """A cleaning method: the loss it trains with, on top of the trial config defaults."""

    name: str
    description: str
    loss: Mapping[str, Any]
    # shrink_perturb without a screen stage must get shrink/perturb_sigma from its grid.
    needs_perturbation: bool = False


_CLEANCLIP = {"mmcl_weight": 1.0, "ssl_weight": 1.0}

METHODS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method(
                "cleanclip",
                "CleanCLIP: MMCL + in-modal SSL on the clean set, weights 1 and 1",
                _CLEANCLIP,
            ),
            Method("mmcl", "MMCL only: CLIP finetuning on the clean set", BASE_LOSSES["mmcl"]),
            Method(
                "ssl",
                "SSL only: in-modal self-supervised loss on the clean set",
                BASE_LOSSES["ssl"],
            ),
            Method(
                "heavy_reg",
                "CleanCLIP plus a heavy L2 weight term (Zhu et al. 2023); sweep l2_weight",
                {**_CLEANCLIP, "l2_weight": 1.0},
            ),
            Method(
                "shrink_perturb",
                "shrink and perturb the start model once (Ash & Adams 2020), then CleanCLIP",
                _CLEANCLIP,
                needs_perturbation=True,
            ),
            Method(
                "deep_cluster",
                "CleanCLIP plus a deep-clustering head on pseudo-labels (Caron et al. 2018); "
                "sweep cluster_weight, cluster_source",
                {**_CLEANCLIP, "cluster_weight": 1.0},
            ),
        )
    }
)


@dataclass(frozen=True)
class Param:
    """A swept hyperparameter: its short name (the `p_<name>` column) and what it sets."""

    name: str
    description: str
    # Dotted TrialConfig field; None for the ones the planner expands itself.
    path: str | None = None
    choices: tuple[Any, ...] = field(default=())
    # False for test hooks: a grid may use them, `sweeper ls params` does not list them.
    listed: bool = True


PARAMS: Mapping[str, Param] = MappingProxyType(
    {
        p.name: p
        for p in (
            Param("lr", "peak learning rate (AdamW, cosine)", "optim.lr"),
            Param("epochs", "training epochs", "optim.epochs"),
            Param("warmup_steps", "linear warmup steps", "optim.warmup_steps"),
            Param("weight_decay", "AdamW weight decay", "optim.weight_decay"),
            Param("batch_size", "training batch size", "data.batch_size"),
            Param("mmcl_weight", "weight of the multimodal contrastive loss", "loss.mmcl_weight"),
            Param("ssl_weight", "weight of the in-modal self-supervised loss", "loss.ssl_weight"),
            Param("l2_weight", "heavy regularisation: weight of the L2 term", "loss.l2_weight"),
            Param(
                "l2_target",
                "L2 toward 'zero' (the paper's code) or the 'start' weights",
                "loss.l2_target",
            ),
            Param(
                "cluster_weight",
                "deep clustering: weight of the pseudo-label loss",
                "loss.cluster_weight",
            ),
            Param(
                "cluster_source",
                "deep clustering pseudo-labels: 'kmeans' or 'teacher'",
                "loss.cluster_source",
            ),
            Param("n_clusters", "deep clustering: number of k-means clusters", "loss.n_clusters"),
            Param("shrink", "shrink and perturb: lambda, 0 < shrink <= 1", "shrink_perturb.shrink"),
            Param(
                "perturb_sigma",
                "shrink and perturb: noise scale sigma >= 0",
                "shrink_perturb.perturb_sigma",
            ),
            Param(
                "perturb_noise",
                "shrink and perturb noise: 'gaussian' (text) or 'init' (code)",
                "shrink_perturb.noise",
            ),
            Param("seed", "trial seed (repeated grid values add their occurrence number)", "seed"),
            Param(
                "fail_at_epoch",
                "fault injection: the trial raises at the start of this epoch (tests)",
                "fail_at_epoch",
                listed=False,
            ),
            Param("method", "cleaning method (see `sweeper ls methods`)", None, tuple(METHODS)),
            Param(
                "base_loss",
                "loss the other terms are added to: mmcl, ssl or mmcl_ssl",
                None,
                tuple(BASE_LOSSES),
            ),
            Param(
                "clean_poisons",
                "poisoned pairs left in the cleaning set, with the start model's trigger (D.9, D.10)",
            ),
        )
    }
)


def listed_params() -> list[str]:
    """The parameter names `sweeper ls params` shows (test hooks left out)."""
    return [name for name, p in PARAMS.items() if p.listed]


# Early-stopping schedulers a clean or screen stage may name (`scheduler: {NAME: {...}}`).
SCHEDULERS: Mapping[str, str] = MappingProxyType(
    {
        "pareto_asha": "asynchronous successive halving over epochs, two objectives (accuracy "
        "up, ASR down): at each rung a trial's candidate set (all its epochs) is ranked by "
        "non-dominated sorting, ties by hypervolume contribution; options grace (first rung, "
        "epochs, default 1) and reduction (keep 1/reduction per rung, default 3)",
    }
)

# Parameters a screen stage may sweep: it evaluates the perturbed model and trains nothing.
SCREEN_PARAMS = frozenset({"shrink", "perturb_sigma", "perturb_noise", "seed"})

_TRIGGER_TEXT = {
    "badnet": "16x16 px (at 224 px) patch of fresh Gaussian noise at a random spot; caption -> target template",
    "label_consistent": "the BadNet patch on images whose caption already names the target; captions unchanged",
    "blended": "a full-image noise pattern blended in with weight blend_alpha",
}
TRIGGERS: Mapping[str, str] = MappingProxyType(
    {k: _TRIGGER_TEXT.get(k, "") for k in get_args(PoisonKind) if k != "none"}
)

TINY_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "tiny-rn": "tiny ResNet image tower + small text transformer (the embedded default, CPU)",
        "tiny-vit": "tiny ViT image tower + small text transformer (CPU)",
        "tiny-vit-p4": "tiny-vit with 4 px patches (64 tokens at 32 px; no BatchNorm, CPU)",
    }
)


def list_models() -> list[str]:
    """Every model name a trial accepts: the tiny configs, then open_clip's."""
    from trainers.models import list_models as all_models  # torch + open_clip: `ls models` only

    return all_models()


@dataclass(frozen=True)
class Logger:
    """An experiment tracker a sweep may log every epoch to (`loggers:` or `--logger`),
    through Ray Tune's own callback for it; `module` is the package it needs."""

    name: str
    description: str
    module: str


LOGGERS: Mapping[str, Logger] = MappingProxyType(
    {
        lg.name: lg
        for lg in (
            Logger(
                "tensorboard",
                "TensorBoard event files, one folder per trial: <sweep>/logs/tensorboard",
                "tensorboardX",
            ),
            Logger(
                "mlflow", "MLflow file store: <sweep>/logs/mlruns (one run per trial)", "mlflow"
            ),
            Logger(
                "wandb",
                "Weights & Biases; offline under <sweep>/logs/wandb unless logged in",
                "wandb",
            ),
        )
    }
)
# The pyproject extra that installs every logger's package.
LOGGERS_EXTRA = "trackers"


def usable_logger(name: str) -> str:
    """`name` if it is a registered logger whose package is installed, else a ValueError
    that names the known loggers or the extra to install (the spec's `loggers` check)."""
    from importlib.util import find_spec

    logger = LOGGERS.get(name)
    if logger is None:
        raise ValueError(
            f"unknown logger {name!r} (known: {', '.join(LOGGERS)}; see `sweeper ls loggers`)"
        )
    if find_spec(logger.module) is None:
        raise ValueError(
            f"logger {name!r} needs the {logger.module} package, which is not installed: "
            f"pip install 'sweeper[{LOGGERS_EXTRA}]' (or leave {name!r} out)"
        )
    return name
