"""Zero-shot accuracy and attack success rate (ASR).

Class embeddings are the normalised mean of the 80 CLIP template embeddings (what open_clip's
`build_zero_shot_classifier` computes), computed once per evaluation and shared by the clean
and the triggered pass. The prompts are tokenized once per trial (`Prompts`) and cut after
their longest end-of-text token: CLIP's text tower is causal, so the padding after it never
reaches the pooled token, and the 80 x n_classes prompts cost a fraction of the full
context length. ASR counts predictions equal to the *target index* among images whose true
class is not the target: comparing with the true labels (CleanCLIP's issue #14) is the bug
this module exists to never repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip import CLIP
from open_clip.transformer import text_global_pool
from torch import Tensor, nn

from trainers.data import CLIP_TEMPLATES, EvalData, Trigger
from trainers.errors import DataError


@dataclass(frozen=True)
class EvalResult:
    clean_acc: float
    clean_top5: float
    asr: float
    n_images: int
    n_asr_images: int
    # ASR's floor: % of the same non-target images, untriggered, predicted as the target. A
    # model biased toward the target fails ASR <= 5 with no trigger at all; this says so.
    asr_untriggered: float | None = None


def attack_success_rate(predictions: Tensor, labels: Tensor, target_index: int) -> float:
    """% of non-target-class images predicted as the target class."""
    keep = labels != target_index
    if not bool(keep.any()):
        raise DataError("every eval image is of the target class: ASR is undefined")
    return float((predictions[keep] == target_index).float().mean() * 100)


def target_index_of(classnames: Sequence[str], target: str) -> int:
    lowered = [c.lower() for c in classnames]
    if target.lower() not in lowered:
        raise DataError(
            f"target label {target!r} is not one of the eval classes "
            f"({len(classnames)} classes, e.g. {', '.join(classnames[:5])}): set poison.target "
            "or eval.target to a class name"
        )
    return lowered.index(target.lower())


@dataclass(frozen=True)
class Prompts:
    """The template prompts of every class, tokenized once: [n_classes * n_templates, length]."""

    tokens: Tensor
    n_classes: int
    n_templates: int

    @classmethod
    def build(
        cls,
        tokenizer: Callable[[list[str]], Tensor],
        classnames: Sequence[str],
        templates: Sequence[Callable[[str], str]] = CLIP_TEMPLATES,
    ) -> Prompts:
        tokens = tokenizer([t(c) for c in classnames for t in templates])
        return cls(trim_padding(tokens), len(classnames), len(templates))


def trim_padding(tokens: Tensor) -> Tensor:
    """Drop the trailing columns in which every row is padding (id 0)."""
    used = (tokens != 0).any(dim=0).nonzero()
    length = int(used.max()) + 1 if len(used) else tokens.shape[1]
    return tokens[:, :length].contiguous()


@torch.no_grad()
def encode_prompts(model: nn.Module, tokens: Tensor) -> Tensor:
    """Normalised text features of (possibly shortened) token rows.

    open_clip's `CLIP.encode_text` adds the full positional table, so it only takes
    context-length rows; this is the same computation on the first `tokens.shape[1]`
    positions, exact because the causal mask keeps later positions out of earlier ones.
    Other models (a bidirectional text tower, a custom one) get padded rows and their own
    `encode_text`.
    """
    length = tokens.shape[1]
    causal = getattr(model, "attn_mask", None) is not None
    if not (isinstance(model, CLIP) and causal and model.text_pool_type == "argmax"):
        context = getattr(model, "context_length", length)
        if length < context:
            tokens = F.pad(tokens, (0, context - length))
        return model.encode_text(tokens, normalize=True)
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, "argmax")
    if isinstance(model.text_projection, nn.Linear):
        x = model.text_projection(x)
    elif model.text_projection is not None:
        x = x @ model.text_projection
    return F.normalize(x, dim=-1)


@torch.no_grad()
def class_embeddings(
    model: nn.Module, prompts: Prompts, device: torch.device, classes_per_batch: int = 10
) -> Tensor:
    """[embed_dim, n_classes]: normalised mean over the templates, per class.

    The text tower sees `classes_per_batch` classes at a time (800 prompts with the 80
    templates, open_clip's own default): ImageNet's 80,000 prompts in one batch would need
    tens of GB of activations. Each batch is cut after its own longest prompt.
    """
    out = []
    step = classes_per_batch * prompts.n_templates
    for lo in range(0, len(prompts.tokens), step):
        tokens = trim_padding(prompts.tokens[lo : lo + step]).to(device)
        feats = encode_prompts(model, tokens)
        out.append(
            F.normalize(feats.reshape(-1, prompts.n_templates, feats.shape[1]).mean(1), dim=1)
        )
    return torch.cat(out).T


@torch.no_grad()
def evaluate(
    model: nn.Module,
    prompts: Prompts,
    eval_data: EvalData,
    *,
    trigger: Trigger,
    target: str,
    normalize: Callable[[Tensor], Tensor],
    device: torch.device,
    batch_size: int = 256,
    seed: int = 1234,
) -> EvalResult:
    """Clean top-1/top-5 accuracy and ASR of `model` on `eval_data` (both in %)."""
    was_training = model.training
    model.eval()
    target_index = target_index_of(eval_data.classnames, target)
    if prompts.n_classes != len(eval_data.classnames):
        raise DataError(
            f"the prompts cover {prompts.n_classes} classes but the eval set has "
            f"{len(eval_data.classnames)}: build them from eval_data.classnames"
        )
    classifier = class_embeddings(model, prompts, device)
    # The trigger's noise and location are drawn from a fixed seed so that successive
    # epochs are measured on the same triggered images.
    gen = torch.Generator().manual_seed(seed)
    top1 = top5 = n = 0
    # Predictions on triggered non-target images, with their labels: attack_success_rate
    # (the tested definition) computes ASR from them, so there is one definition only.
    trig_preds: list[Tensor] = []
    trig_labels: list[Tensor] = []
    clean_preds: list[Tensor] = []
    k = min(5, len(eval_data.classnames))
    for images, labels in eval_data.batches(batch_size):
        labels = labels.to(device)
        clean_logits = _logits(model, normalize(images.to(device)), classifier)
        top = clean_logits.topk(k, dim=1).indices
        top1 += int((top[:, 0] == labels).sum())
        top5 += int((top == labels[:, None]).any(dim=1).sum())
        n += len(labels)
        keep = (labels != target_index).cpu()
        if keep.any():
            triggered = trigger(images[keep], gen)
            logits = _logits(model, normalize(triggered.to(device)), classifier)
            trig_preds.append(logits.argmax(dim=1).cpu())
            trig_labels.append(labels[keep.to(labels.device)].cpu())
            clean_preds.append(top[:, 0].cpu()[keep])
    model.train(was_training)
    if n == 0:
        raise DataError("the eval set yielded no images: check data.eval")
    preds = torch.cat(trig_preds) if trig_preds else torch.empty(0, dtype=torch.long)
    trig_y = torch.cat(trig_labels) if trig_labels else torch.empty(0, dtype=torch.long)
    clean_y = torch.cat(clean_preds) if clean_preds else torch.empty(0, dtype=torch.long)
    return EvalResult(
        clean_acc=100 * top1 / n,
        clean_top5=100 * top5 / n,
        asr=attack_success_rate(preds, trig_y, target_index),
        n_images=n,
        n_asr_images=len(trig_y),
        asr_untriggered=attack_success_rate(clean_y, trig_y, target_index),
    )


def _logits(model: nn.Module, images: Tensor, classifier: Tensor) -> Tensor:
    features = model.encode_image(images, normalize=True)
    return features.float() @ classifier.float()
