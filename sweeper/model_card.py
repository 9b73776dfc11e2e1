"""The model card of an export: `model_card.json` for scripts, `README.md` for people.

It says what the model is (accuracy, ASR, relative change, in percent and as a fraction),
where it came from (sweep, trial, epoch, the spec that made it, the trial's config), how its
numbers were measured (the eval set, trigger and target, so they can be measured again), and
the sha256 of the weights.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweeper.model_export import CARD_JSON, OPEN_CLIP_CONFIG, WEIGHTS_FILE, Choice

FORMAT = "sweeper-export/1"


def evaluation_of(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """How the trial measured clean_acc and ASR: what `trainers.evaluate` needs again."""
    from trainers.config import load_config
    from trainers.trial import eval_trigger_kind

    cfg = load_config(config)
    return {
        "data": cfg.data.model_dump(mode="json"),
        "trigger": eval_trigger_kind(cfg, meta.get("poison_kind")),
        "target": meta.get("target") or cfg.eval.target or cfg.poison.target,
        "patch_size": meta.get("patch_size"),
        "blend_alpha": cfg.poison.blend_alpha,
        "trigger_seed": int(meta.get("trigger_seed", cfg.poison.seed)),
        "seed": cfg.eval.seed,
    }


def card_json(
    choice: Choice,
    *,
    model_name: str,
    preprocess: dict[str, Any],
    weights_sha256: str,
    source: Path,
    ckpt_config: dict[str, Any],
    ckpt_meta: dict[str, Any],
    spec_text: str | None,
) -> dict[str, Any]:
    c = choice.candidate
    return {
        "format": FORMAT,
        "model": {
            "name": model_name,
            "config_file": f"{model_name}.json",
            "open_clip_config": OPEN_CLIP_CONFIG,
            "weights": WEIGHTS_FILE,
            "sha256": weights_sha256,
            "preprocess": preprocess,
        },
        "sweep_id": c.sweep_id,
        "trial_id": c.trial_id,
        "epoch": c.epoch,
        "stage": c.stage,
        "method": c.method,
        "objective": c.objective,
        "params": c.params,
        "clean_acc": c.clean_acc,
        "clean_top5": c.clean_top5,
        "asr": c.asr,
        "relative_change": choice.relative_change,
        "reference": choice.reference,
        "selected_by": choice.selected_by,
        "success_asr": choice.threshold,
        "evaluation": evaluation_of(ckpt_config, ckpt_meta),
        "source_checkpoint": str(source),
        "trial_config": ckpt_config,
        "spec": spec_text,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: the figures, the loading recipe, the spec."""
    m, ev = card["model"], card["evaluation"]
    change = card["relative_change"]
    ref = card["reference"]
    lines = [
        f"# {m['name']}: {card['sweep_id']} / {card['trial_id']} / epoch {card['epoch']}",
        "",
        f"Exported by `sweeper export` ({card['selected_by']}) on {card['exported_at']}.",
        "",
        "| | |",
        "|---|---|",
        f"| clean accuracy (top-1, zero-shot) | {_pct(card['clean_acc'])} |",
        f"| clean accuracy (top-5) | {_pct(card['clean_top5'])} |",
        f"| attack success rate | {_pct(card['asr'])} |",
        "| relative change of accuracy | "
        + ("-" if change is None else f"{100 * change:+.1f}% (a fraction of {change:+.4f})")
        + " |",
        "| measured from | "
        + ("-" if ref is None else f"{ref['kind']}: {ref['clean_acc']:.2f}%, ASR {ref['asr']:.2f}%")
        + " |",
        f"| success rule | ASR <= {card['success_asr']:g}% |",
        f"| stage, method, objective | {card['stage']}, {card['method']}, {card['objective']} |",
        f"| swept values | {', '.join(f'{k}={v}' for k, v in card['params'].items()) or '-'} |",
        f"| weights sha256 | `{m['sha256']}` |",
        "",
        f"ASR: {ev['trigger']} trigger (patch {ev['patch_size']}, seed {ev['trigger_seed']}), "
        f"target `{ev['target']}`, eval set `{ev['data']['eval']}` (eval seed {ev['seed']}).",
        "",
        "## Load it with open_clip",
        "",
        "```python",
        "import open_clip",
        "",
        f'open_clip.add_model_config("{m["config_file"]}")  # the path of this folder\'s file',
        f'model = open_clip.create_model("{m["name"]}", pretrained="{m["weights"]}")',
        f'tokenizer = open_clip.get_tokenizer("{m["name"]}")',
        "```",
        "",
        f'or `open_clip.create_model_and_transforms("local-dir:<this folder>")`, which also '
        f"reads the preprocessing ({OPEN_CLIP_CONFIG}: mean {m['preprocess']['mean']}, std "
        f"{m['preprocess']['std']}, {m['preprocess']['size']} px).",
        "",
        f"{CARD_JSON} holds these figures, the trial's full config and the spec below.",
    ]
    if card["spec"]:
        lines += ["", "## The spec that made it", "", "```yaml", card["spec"].rstrip(), "```"]
    return "\n".join(lines) + "\n"
