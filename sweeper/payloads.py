"""Trial payloads: a planned trial completed by the driver with what only a run knows.

The synthetic data's paths, the start checkpoint a previous stage selected (and its sha256),
the checkpoint directory, the CPU threads its resources give it, and the store's cache
folder for the shard index and the decoded eval set (`data.cache_dir`, shared by every
trial and sweep of the store; a search space may point it elsewhere, e.g. a node-local disk).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from results.best import ORIGIN_SUFFIX
from results.store import StoreWriter
from sweeper.errors import SweeperError
from sweeper.plan import START_CHECKPOINT, StagePlan, SweepPlan, TrialPlan
from sweeper.retention import resume_state_path
from sweeper.spec_distributed import WORKERS, batch_record
from trainers.config import DataConfig

PLACEHOLDER = "@synthetic/"
Screened = Mapping[str | None, Mapping[str, Any]]  # start job -> {"checkpoint", "params"}


def payload(
    trial: TrialPlan,
    plan: SweepPlan,
    writer: StoreWriter,
    synthetic: dict[str, str] | None,
    starts: Mapping[str, str],
    screened: Screened | None,
    resources: Mapping[str, float],
) -> dict[str, Any]:
    config = fill_placeholders(copy.deepcopy(trial.config), synthetic)
    params = dict(trial.params)
    if trial.stage == "pretrain":
        key = plan.pretrain_cache_keys[job_of(trial)]
        config["checkpoint_dir"] = str(writer.sweep_dir.parent / ".cache" / "pretrain" / key)
        config["save"] = "every"
    else:
        config["checkpoint_dir"] = str(writer.checkpoints_dir / trial.trial_id)
        if trial.stage == "clean" and screened is not None:
            # The screen's pick for this trial's own start model (one pick per start).
            pick = screened[trial.start]
            config.setdefault("model", {})["checkpoint"] = pick["checkpoint"]
            params.update(pick["params"])
        elif trial.start is not None:
            config.setdefault("model", {})["checkpoint"] = starts[trial.start]
        _fill_start(config)
    config["threads"] = max(1, int(resources.get("cpu", 1)))
    data = config.setdefault("data", {})
    if data.get("cache_dir") is None:
        data["cache_dir"] = str(writer.sweep_dir.parent / ".cache")
    if trial.entry != "screen":  # a screen trial evaluates once: nothing to resume
        config["resume_state"] = str(resume_state_path(writer.sweep_dir, trial.trial_id))
    start = config.get("model", {}).get("checkpoint")
    return {
        "trial_id": trial.trial_id,
        "stage": trial.stage,
        "entry": trial.entry,
        "method": trial.method,
        "objective": trial.objective,
        "params": params,
        "config": config,
        "resources": trial_resources(resources, config),
        "job": job_of(trial) if trial.stage == "pretrain" else None,
        "start_sha256": sha256_of(start) if start else None,
    }


def trial_resources(resources: Mapping[str, float], config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial row's `resources`: the request (per worker for a data-parallel job) and, for
    such a job, its worker count and its per-worker and global batch."""
    out: dict[str, Any] = {k: v for k, v in resources.items() if k != WORKERS}
    workers = int(resources.get(WORKERS, 1))
    if workers > 1:
        batch = config.get("data", {}).get(
            "batch_size", DataConfig.model_fields["batch_size"].default
        )
        out[WORKERS] = workers
        out.update(batch_record(workers, int(batch)))
    return out


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


ORIGIN = {"shrink": 1.0, "perturb_sigma": 0.0}  # the identity: the unperturbed start


def origin_payloads(screen: list[dict[str, Any]], starts: list[str | None]) -> list[dict[str, Any]]:
    """One extra screen trial per start model that evaluates it unperturbed (lambda 1,
    sigma 0): the poisoned model a D.13 cleaning's relative change is measured from
    (`results.best.screen_origins`). It is never a candidate of the screen's pick."""
    from sweeper.plan import apply_params

    out = []
    for start in dict.fromkeys(starts):
        base = next(p for p, s in zip(screen, starts, strict=True) if s == start)
        tid = f"screen-{start or 'ckpt'}{ORIGIN_SUFFIX}"
        config = apply_params(base["config"], ORIGIN)
        config["checkpoint_dir"] = str(Path(base["config"]["checkpoint_dir"]).parent / tid)
        config["save"] = "none"
        out.append({**base, "trial_id": tid, "params": dict(ORIGIN), "config": config})
    return out


BN_ONLY_SUFFIX = "-bn-only"


def bn_only_payloads(clean: list[dict[str, Any]], starts: list[str | None]) -> list[dict[str, Any]]:
    """One BN-only baseline trial per cleaning start (`trainers.bn_only`): the start model
    with BatchNorm re-estimated on the same cleaning data and views as the stage's first
    trial from it, no weight update. Its rows are never cleaning candidates (method
    `bn_only`, `results.best.BASELINE_METHODS`); the report shows them beside each start."""
    out = []
    for start in dict.fromkeys(starts):
        base = next(p for p, s in zip(clean, starts, strict=True) if s == start)
        tid = f"clean-{start or 'ckpt'}{BN_ONLY_SUFFIX}"
        config = copy.deepcopy(base["config"])
        config["checkpoint_dir"] = str(Path(base["config"]["checkpoint_dir"]).parent / tid)
        config["save"] = "none"
        config.pop("resume_state", None)  # one pass, nothing to resume
        keep = {k: v for k, v in base["params"].items() if k in ("shrink", "perturb_sigma")}
        out.append(
            {
                **base,
                "trial_id": tid,
                "entry": "bn_only",
                "method": "bn_only",
                "params": keep,
                "config": config,
            }
        )
    return out


def sha256_of(path: str) -> str | None:
    """The file's sha256, computed once per (path, size, mtime): a 255-point screen hashes
    its start model once. None for a file that is not there (the trial reports that)."""
    from trainers.checkpoint import sha256_file

    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def _fill_start(config: dict[str, Any]) -> None:
    """`@start` as a teacher checkpoint: the trial's own start model (embedded D.11)."""
    loss = config.get("loss", {})
    if loss.get("teacher_checkpoint") == START_CHECKPOINT:
        loss["teacher_checkpoint"] = config.get("model", {}).get("checkpoint")


def search_base(stage: StagePlan) -> TrialPlan:
    """An Optuna stage's template as a trial: its sampled params complete it in the worker."""
    s = stage.search
    assert s is not None
    return TrialPlan(
        trial_id=f"{stage.name}-optuna",
        stage=stage.name,
        entry=s.entry,
        method=s.method,
        objective=s.objective,
        params={},
        config=s.config,
        start=s.start,
    )


def job_of(trial: TrialPlan) -> str:
    """The pre-training job a trial is (pretrain stage) or starts from (later stages)."""
    if trial.stage == "pretrain":
        return trial.trial_id.removeprefix("pretrain-")
    return trial.start or ""


def fill_placeholders(config: Any, synthetic: dict[str, str] | None) -> Any:
    if isinstance(config, dict):
        return {k: fill_placeholders(v, synthetic) for k, v in config.items()}
    if isinstance(config, str) and config.startswith(PLACEHOLDER):
        if synthetic is None:
            raise SweeperError(f"{config} is only defined in the embedded profile")
        return synthetic[config]
    return config


def prepare_synthetic(plan: SweepPlan, store_root: Path) -> dict[str, str] | None:
    """Generate (or reuse) the embedded profile's synthetic set; placeholder -> path.

    `make_synthetic` writes into a temporary folder and renames it into place, so a full
    disk leaves nothing half-written; its OSError becomes one line naming the folder.
    """
    if not plan.synthetic:
        return None
    from trainers.data.synthetic import make_synthetic

    root = store_root / ".cache" / "data" / content_hash(plan.synthetic)
    try:
        paths = make_synthetic(root, **plan.synthetic)
    except OSError as err:
        raise SweeperError(
            f"cannot write the synthetic dataset into {root}: {err.strerror or err}; free "
            "space there or pass another --store (nothing half-written was left)"
        ) from None
    return {
        "@synthetic/train": str(paths.train),
        "@synthetic/clean": str(paths.clean),
        "@synthetic/eval": str(paths.eval),
        "@synthetic/classnames": str(paths.classnames),
    }


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
