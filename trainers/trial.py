"""Set-up shared by the entry points: device, seeds, model, eval set, trigger."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from trainers.checkpoint import Checkpoint, load_checkpoint, load_weights
from trainers.config import TrialConfig
from trainers.data import build_train_data, load_eval_data, make_trigger
from trainers.data.loader import TrainData, resolve_num_workers
from trainers.distributed import DistributedContext, world
from trainers.evaluate import Prompts
from trainers.loop import TrialContext
from trainers.models import create_model, get_tokenizer


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def objective_of(cfg: TrialConfig) -> str:
    return "mmcl_ssl" if cfg.loss.ssl_weight > 0 and cfg.loss.mmcl_weight > 0 else "mmcl"


def eval_trigger_kind(cfg: TrialConfig, poison_kind: str | None) -> str:
    """The trigger ASR is measured with: `eval.trigger`, else the one the model was poisoned
    with (`poison_kind`: this run's poison, else the start checkpoint's); label-consistent
    poison is a patch, so badnet."""
    return cfg.eval.trigger or ("blended" if poison_kind == "blended" else "badnet")


# What `build_context(..., reuse=True)` keeps between the trials of one process (the points
# of a screen chunk): the last model built, and the tokenized prompts per (model, classes).
# Building them cost about as much as a point's evaluation (bench/bench_screen.py).
_REUSED: dict[str, Any] = {}
_PROMPTS: dict[tuple[str, tuple[str, ...]], tuple[Any, Prompts]] = {}


def _model(cfg: TrialConfig, start: Checkpoint | None, reuse: bool) -> tuple[Any, Any]:
    """A new model, or with `reuse` (and a start checkpoint) the process's last one of that
    architecture: `load_weights` is strict, so every parameter and persistent buffer is
    then `start`'s, as it would be in a new model; the random init it skips is overwritten
    anyway, and torch's global stream is re-seeded for the trial by `seed_everything`."""
    name = cfg.model.name
    if reuse and start is not None and _REUSED.get("name") == name:
        model, info = _REUSED["model"], _REUSED["info"]
    else:
        model, info = create_model(name, seed=cfg.seed)
        _REUSED.clear()
        if reuse and start is not None:
            _REUSED.update(name=name, model=model, info=info)
    if start is not None:
        load_weights(model, start, model_name=name)
    return model, info


def _prompts(name: str, classnames: Any) -> tuple[Any, Prompts]:
    key = (name, tuple(classnames))
    if key not in _PROMPTS:
        tokenizer = get_tokenizer(name)
        _PROMPTS.clear()  # one eval set per process at a time
        _PROMPTS[key] = (tokenizer, Prompts.build(tokenizer, classnames))
    return _PROMPTS[key]


def build_context(
    cfg: TrialConfig, *, start: Checkpoint | None, reuse: bool = False
) -> TrialContext:
    """Model (random init or `start`'s weights), tokenizer, eval set and ASR trigger.
    `reuse`: the model of the process's previous trial of this architecture, reloaded with
    `start` (a screen's points evaluate copies of one start model, never train it)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model, info = _model(cfg, start, reuse)
    model.to(device)
    meta = model_meta(cfg, start, info.name)
    trigger = make_trigger(
        meta.pop("trigger_kind"),
        image_size=info.image_size,
        patch_size=meta["patch_size"],
        blend_alpha=cfg.poison.blend_alpha,
        seed=meta["trigger_seed"],
    )
    target = meta["target"]
    eval_data = load_eval_data(
        cfg.data, image_size=info.image_size, num_workers=loader_workers(cfg, device)
    )
    tokenizer, prompts = _prompts(cfg.model.name, eval_data.classnames)
    rank, world_size = world()
    # A rank of a data-parallel job (`trainers.distributed`): same set-up, another seam.
    kind = DistributedContext if world_size > 1 else TrialContext
    return kind(
        cfg=cfg,
        device=device,
        model=model,
        info=info,
        tokenizer=tokenizer,
        eval_data=eval_data,
        prompts=prompts,
        trigger=trigger,
        target=target,
        meta=meta,
        rank=rank,
        world_size=world_size,
    )


def model_meta(cfg: TrialConfig, start: Checkpoint | None, model_name: str) -> dict[str, Any]:
    """What a checkpoint of this trial records about its model (and `trigger_kind`)."""
    start_meta = start.meta if start is not None else {}
    # ASR uses the trigger the model was poisoned with: this run's poison when it has one,
    # else the one recorded in the starting checkpoint. Label-consistent poison is a patch.
    poison_kind = cfg.poison.kind if cfg.poison.kind != "none" else start_meta.get("poison_kind")
    trigger_kind = eval_trigger_kind(cfg, poison_kind)
    return {
        "model_name": model_name,
        "poison_kind": poison_kind or "none",
        "target": cfg.eval.target or start_meta.get("target") or cfg.poison.target,
        "patch_size": cfg.poison.patch_size or start_meta.get("patch_size"),
        "trigger_seed": int(start_meta.get("trigger_seed", cfg.poison.seed)),
        "objective": start_meta.get("objective", objective_of(cfg)),
        "trigger_kind": trigger_kind,
    }


def load_start(cfg: TrialConfig) -> Checkpoint | None:
    return load_checkpoint(cfg.model.checkpoint) if cfg.model.checkpoint else None


def loader_workers(cfg: TrialConfig, device: torch.device) -> int:
    """`data.num_workers`, or the count the trial's CPUs give (`resolve_num_workers`)."""
    return resolve_num_workers(cfg.data.num_workers, cfg.threads, on_gpu=device.type == "cuda")


def train_data_for(ctx: TrialContext, *, ssl: bool, plain: bool = False) -> TrainData:
    cfg = ctx.cfg
    data = build_train_data(
        cfg.data,
        cfg.poison,
        image_size=ctx.info.image_size,
        tokenizer=ctx.tokenizer,
        ssl=ssl and not plain,
        seed=cfg.seed,
        drop_last=not plain,
        shuffle=not plain,
        resize_mode=ctx.info.resize_mode,
        num_workers=loader_workers(cfg, ctx.device),
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    data.pin_memory = ctx.device.type == "cuda"
    return data
