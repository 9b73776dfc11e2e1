"""Evaluation throughput: a full zero-shot evaluation against the bare image-encoder forward.

    python bench/bench_eval.py [--model tiny-rn] [--per-class 20 50] [--threads 2]

A full evaluation (`trainers.evaluate.evaluate`, what every trial runs each epoch) builds the
class embeddings from 80 templates x n_classes prompts, then forwards every eval image
(clean pass) and every non-target image with the trigger (triggered pass). Its images/s is
the number of image forwards over its wall time. The baseline forwards exactly those images
(the clean ones and the same triggered ones, prepared beforehand) through
`model.encode_image` alone, same batch size, same normalisation. The ratio is what the
templates, the trigger and the bookkeeping cost on top of the image encoder.

50 images per class matches ImageNet-1K val (50,000 images, 1,000 classes): 80 prompts per
~100 image forwards, the paper's proportion. 20 per class is the demo's eval set.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch

from trainers.config import DataConfig
from trainers.data import load_eval_data, make_trigger
from trainers.data.synthetic import make_synthetic
from trainers.evaluate import Prompts, evaluate
from trainers.models import create_model, get_tokenizer

TARGET = "banana"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-rn", help="tiny-rn, tiny-vit, RN50, ViT-B-32, ...")
    ap.add_argument("--per-class", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, info = create_model(args.model, seed=0)
    model.eval()
    tok = get_tokenizer(args.model)
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, open_clip {metadata.version('open_clip_torch')}; "
        f"model {args.model} at {info.image_size} px, eval batch {args.batch_size}, "
        f"best of {args.repeats}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    for per_class in args.per_class:
        syn = make_synthetic(
            tmp / f"data-{per_class}",
            n_train=10,
            n_clean=10,
            n_eval_per_class=per_class,
            image_size=info.image_size,
        )
        data = load_eval_data(DataConfig(eval=str(syn.eval)), image_size=info.image_size)
        measure(model, info, tok, data, args.batch_size, args.repeats)


def measure(model, info, tok, data, batch_size: int, repeats: int) -> None:  # noqa: ANN001
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    trigger = make_trigger("badnet", image_size=info.image_size, patch_size=8)
    t0 = time.perf_counter()
    prompts = Prompts.build(tok, data.classnames)
    t_tokenize = time.perf_counter() - t0
    # The same prompts padded to the full context: what the evaluation cost before prompts
    # were cut after their last token (and what open_clip's classifier builder costs).
    padded = Prompts(tok([""] * len(prompts.tokens)), prompts.n_classes, prompts.n_templates)
    padded.tokens[:, : prompts.tokens.shape[1]] = prompts.tokens
    padded.tokens[:, prompts.tokens.shape[1] :] = 0

    def full(prompts: Prompts = prompts) -> None:
        evaluate(
            model,
            prompts,
            data,
            trigger=trigger,
            target=TARGET,
            normalize=lambda x: (x - mean) / std,
            device=torch.device("cpu"),
            batch_size=batch_size,
        )

    # The very images the full evaluation forwards: every clean one, every triggered one.
    gen = torch.Generator().manual_seed(1234)
    target = data.classnames.index(TARGET)
    clean, triggered = [], []
    for images, labels in data.batches(batch_size):
        clean.append(images)
        triggered.append(trigger(images[labels != target], gen))
    images = torch.cat(clean + triggered)
    n = len(images)

    @torch.no_grad()
    def bare() -> None:
        for i in range(0, n, batch_size):
            model.encode_image((images[i : i + batch_size] - mean) / std)

    t_full = best(full, repeats)
    t_bare = best(bare, repeats)
    t_padded = best(lambda: full(padded), repeats)
    n_prompts = len(prompts.tokens)
    print(
        f"{len(data)} eval images x {len(data.classnames)} classes "
        f"({len(data) // len(data.classnames)} per class): {n} image forwards "
        f"({len(data)} clean + {n - len(data)} triggered), {n_prompts} prompts of "
        f"{prompts.tokens.shape[1]} tokens (tokenized once per trial: {t_tokenize:.3f} s)"
    )
    print(f"  full evaluation:     {t_full:.3f} s = {n / t_full:8.0f} images/s")
    print(f"  bare encode_image:   {t_bare:.3f} s = {n / t_bare:8.0f} images/s")
    print(f"  ratio full / bare:   {t_bare / t_full:.2f}")
    print(
        f"  prompts padded to the {padded.tokens.shape[1]}-token context instead: "
        f"{t_padded:.3f} s, ratio {t_bare / t_padded:.2f}"
    )


def best(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


if __name__ == "__main__":
    main()
