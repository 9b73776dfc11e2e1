"""`sweeper export`: one model of a sweep taken out of the store, in a form open_clip alone loads.

The export folder holds:

    open_clip_model.safetensors   the weights, an open_clip state dict
    <model>.json                  the open_clip model config (`open_clip.add_model_config`)
    open_clip_config.json         the config with its preprocessing: open_clip's own
                                  `local-dir:` / Hugging Face layout
    model_card.json, README.md    what the model is (`sweeper.model_card`)

and loads with open_clip only:

    open_clip.add_model_config("DIR/tiny-rn.json")
    model = open_clip.create_model("tiny-rn", pretrained="DIR/open_clip_model.safetensors")

Which model: `--best` is the sweep's best cleaned candidate by the project's one success
rule (`results.best.best_clean`: the highest accuracy with ASR <= the sweep's `success_asr`,
its ties), or any epoch of any trial by `--trial`/`--epoch`. The folder is written under a
temporary name beside `--out` and renamed into place, so a failure leaves nothing there.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from results.best import BestClean, Candidate, best_clean, candidate_at, group_best, screen_origins
from results.candidates import candidates
from results.store import read_epochs
from sweeper.errors import ExportError
from sweeper.store_paths import resolve

WEIGHTS_FILE = "open_clip_model.safetensors"
OPEN_CLIP_CONFIG = "open_clip_config.json"
CARD_JSON = "model_card.json"
CARD_MD = "README.md"
# Every rule of results.best at its widest: any finite ASR passes, so the one candidate left
# in a --trial/--epoch selection is "best" and its relative change is the project's.
_ANY_ASR = 100.0


@dataclass(frozen=True)
class Choice:
    """The model to export: its row, how it was chosen, its relative change and reference."""

    candidate: Candidate
    selected_by: str
    threshold: float
    relative_change: float | None
    # The model relative_change is measured from: the trial's epoch 0, or for shrink and
    # perturb the poisoned model before the perturbation (results.best.BestClean.origin).
    reference: dict[str, Any] | None


def choose(
    epochs: pa.Table,
    sweep_id: str,
    *,
    threshold: float,
    trial: str | None = None,
    epoch: int | None = None,
) -> Choice:
    """The best cleaned candidate (no `trial`), or epoch `epoch` of trial `trial`."""
    if trial is None:
        groups = best_clean(epochs, threshold, by=("sweep_id",))
        found = groups[0] if groups else None
        if found is None or found.best is None:
            raise ExportError(
                f"sweep {sweep_id} has no cleaned candidate at ASR <= {threshold:g}% (its "
                "success_asr): `sweeper status` shows its best so far; export a chosen one "
                "with --trial T --epoch E"
            )
        rule = f"--best: highest clean_acc with ASR <= {threshold:g}% (results.best)"
        return _choice(found, rule, threshold)
    rows = epochs.filter(pc.equal(epochs["trial_id"], trial))
    if rows.num_rows == 0:
        known = sorted(set(epochs["trial_id"].to_pylist()))
        raise ExportError(
            f"sweep {sweep_id} has no trial {trial!r}: pass one of {_some(known)} "
            "(`sweeper status` and results.load list them)"
        )
    have = sorted(set(rows["epoch"].to_pylist()))
    if epoch not in have:
        raise ExportError(
            f"trial {trial} of sweep {sweep_id} has no epoch {epoch}: pass --epoch one of "
            f"{_some(have)}"
        )
    # The chosen row and the trial's epoch 0 (its start model): one group, one candidate.
    keep = pc.or_(pc.equal(rows["epoch"], epoch), pc.equal(rows["epoch"], 0))
    cands = candidates(rows.filter(keep), by=("sweep_id",), stage=None)
    found = group_best(cands, 0, _ANY_ASR, screen_origins(epochs))
    rule = f"--trial {trial} --epoch {epoch}"
    if epoch == 0 or found.best is None:
        # The start model (or an epoch without both metrics) is no candidate: exported as
        # it is, with no relative change.
        (row,) = (i for i in range(cands.table.num_rows) if int(cands.epoch[i]) == epoch)
        return Choice(candidate_at(cands, row), rule, threshold, None, None)
    return _choice(found, rule, threshold)


def _choice(found: BestClean, rule: str, threshold: float) -> Choice:
    assert found.best is not None
    ref = found.origin or found.start
    reference = None
    if ref is not None:
        kind = "origin (the poisoned model before shrink and perturb)" if found.origin else "start"
        reference = {"kind": kind, "clean_acc": ref.clean_acc, "asr": ref.asr}
        reference["trial_id"] = ref.trial_id
    return Choice(found.best, rule, threshold, found.relative_change, reference)


def _some(values: list[Any], n: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (f", ... ({len(values)} in all)" if len(values) > n else "") or "(none)"


def kept_checkpoint(choice: Choice, epochs: pa.Table, store_root: Path) -> Path:
    """The chosen epoch's checkpoint file; a clear error when it was not kept."""
    cand = choice.candidate
    where = f"trial {cand.trial_id} epoch {cand.epoch} of sweep {cand.sweep_id}"
    if cand.checkpoint is None:
        rows = epochs.filter(pc.equal(epochs["trial_id"], cand.trial_id))
        kept = [
            r["epoch"] for r in rows.select(["epoch", "checkpoint"]).to_pylist() if r["checkpoint"]
        ]
        hint = (
            f"this trial kept epoch(s) {_some(sorted(kept))}: export one with "
            f"--trial {cand.trial_id} --epoch {max(kept)}"
            if kept
            else "this trial kept no checkpoint"
        )
        raise ExportError(
            f"{where} kept no checkpoint ({hint}); to keep every epoch, launch the sweep "
            "again with clean.trial.save=every (the embedded profile keeps a cleaning "
            "trial's last epoch only)"
        )
    path = Path(resolve(cand.checkpoint, store_root) or "")
    if not path.is_file():
        raise ExportError(
            f"the checkpoint of {where}, {path}, is not there (moved or deleted): restore "
            "it, or export another epoch with --trial/--epoch"
        )
    return path


def check_out(out: Path) -> None:
    """--out must be new or an empty folder: an export never mixes with other files."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(
            f"--out {out} already exists and is not an empty folder: pass a new folder, or "
            "remove that one first (an export never overwrites files)"
        )


def export(
    store: str | Path,
    sweep: str,
    out: str | Path,
    *,
    trial: str | None = None,
    epoch: int | None = None,
) -> Path:
    """Export the sweep's best cleaned model (no `trial`), or `trial`'s epoch `epoch`, to
    the new folder `out`; returns `out`. Errors are `ExportError`s naming what and the fix."""
    from sweeper.driver import sweep_dir_of
    from sweeper.plan_io import load_plan

    out = Path(out)
    check_out(out)
    sweep_dir = sweep_dir_of(sweep, store).resolve()
    plan = load_plan(sweep_dir / "plan.json")
    epochs = read_epochs(sweep_dir.parent, [sweep_dir.name], missing_ok=True)
    if epochs.num_rows == 0:
        raise ExportError(f"sweep {sweep_dir.name} has no epoch rows yet: nothing to export")
    choice = choose(epochs, sweep_dir.name, threshold=plan.success_asr, trial=trial, epoch=epoch)
    source = kept_checkpoint(choice, epochs, sweep_dir.parent)
    return write_folder(choice, source, sweep_dir, out)


def write_folder(choice: Choice, source: Path, sweep_dir: Path, out: Path) -> Path:
    """Write the export into a temporary sibling of `out`, then rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_files(choice, source, sweep_dir, tmp)
        check_out(out)  # nothing appeared there meanwhile
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_files(choice: Choice, source: Path, sweep_dir: Path, folder: Path) -> None:
    import open_clip
    from safetensors.torch import save_file

    from sweeper.model_card import card_json, card_markdown
    from trainers.checkpoint import load_checkpoint, load_weights, sha256_file
    from trainers.models import create_model

    ckpt = load_checkpoint(source)
    name = ckpt.model_name or str(ckpt.config.get("model", {}).get("name") or "")
    # Loading into a fresh open_clip model checks the weights fit the architecture, and
    # saving from it gives exactly the keys open_clip's loader expects.
    model, info = create_model(name)
    load_weights(model, ckpt, model_name=name)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    save_file(tensors, str(weights), metadata={"format": "pt"})
    model_cfg = open_clip.get_model_config(name)
    preprocess: dict[str, Any] = {"mean": list(info.mean), "std": list(info.std)}
    preprocess.update(size=info.image_size, resize_mode=info.resize_mode)
    (folder / f"{name}.json").write_text(json.dumps(model_cfg, indent=2) + "\n")
    hf = {"model_cfg": model_cfg, "preprocess_cfg": preprocess}
    (folder / OPEN_CLIP_CONFIG).write_text(json.dumps(hf, indent=2) + "\n")
    card = card_json(
        choice,
        model_name=name,
        preprocess=preprocess,
        weights_sha256=sha256_file(weights),
        source=source,
        ckpt_config=ckpt.config,
        ckpt_meta=ckpt.meta,
        spec_text=_read(sweep_dir / "spec.yaml"),
    )
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
    (folder / CARD_MD).write_text(card_markdown(card))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
