"""Zero-shot accuracy and attack success rate (ASR).

Class embeddings are the normalised mean of the 80 CLIP template embeddings (open_clip's
`build_zero_shot_classifier`), computed once per evaluation and shared by the clean and the
triggered pass. ASR counts predictions equal to the *target index* among images whose true
class is not the target: comparing with the true labels (CleanCLIP's issue #14) is the bug
this module exists to never repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from open_clip import build_zero_shot_classifier
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


@torch.no_grad()
def class_embeddings(
    model: nn.Module,
    tokenizer: Callable[[list[str]], Tensor],
    classnames: Sequence[str],
    device: torch.device,
) -> Tensor:
    """[embed_dim, n_classes]: normalised mean over the 80 templates, per class."""
    return build_zero_shot_classifier(
        model,
        tokenizer=tokenizer,
        classnames=classnames,
        templates=CLIP_TEMPLATES,
        num_classes_per_batch=max(1, min(len(classnames), 10)),
        device=device,
        use_tqdm=False,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokenizer: Callable[[list[str]], Tensor],
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
    classifier = class_embeddings(model, tokenizer, eval_data.classnames, device)
    # The trigger's noise and location are drawn from a fixed seed so that successive
    # epochs are measured on the same triggered images.
    gen = torch.Generator().manual_seed(seed)
    top1 = top5 = n = 0
    # Predictions on triggered non-target images, with their labels: attack_success_rate
    # (the tested definition) computes ASR from them, so there is one definition only.
    trig_preds: list[Tensor] = []
    trig_labels: list[Tensor] = []
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
    model.train(was_training)
    if n == 0:
        raise DataError("the eval set yielded no images: check data.eval")
    preds = torch.cat(trig_preds) if trig_preds else torch.empty(0, dtype=torch.long)
    trig_y = torch.cat(trig_labels) if trig_labels else torch.empty(0, dtype=torch.long)
    return EvalResult(
        clean_acc=100 * top1 / n,
        clean_top5=100 * top5 / n,
        asr=attack_success_rate(preds, trig_y, target_index),
        n_images=n,
        n_asr_images=len(trig_y),
    )


def _logits(model: nn.Module, images: Tensor, classifier: Tensor) -> Tensor:
    features = model.encode_image(images, normalize=True)
    return features.float() @ classifier.float()
