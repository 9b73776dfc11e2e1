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
~100 image forwards, the paper's proportion. 20 per class is the demo's eval set. What this
does not reproduce of ImageNet by default:
- prompt length: the synthetic class names cut at 12 tokens, ImageNet's longest at 22.
  `--imagenet-names` uses "banana" and the 9 ImageNet names with the longest prompts, the
  worst case of a 10-class batch of the text tower;
- decoding: 500 eval images stay decoded in memory (trainers.data.evalset caches up to
  1 GiB); ImageNet val at 224 px does not fit and is decoded on every evaluation.
  `--decode-every-pass` turns the cache off (decoding is data.num_workers' job on a GPU).
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
from trainers.data import CLIP_TEMPLATES, evalset, load_eval_data, make_trigger
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
    ap.add_argument("--imagenet-names", action="store_true", help="see the module docstring")
    ap.add_argument("--decode-every-pass", action="store_true", help="no decoded-image cache")
    ap.add_argument("--no-padded", action="store_true", help="skip the padded-prompts run")
    args = ap.parse_args()
    if args.decode_every_pass:
        evalset.EVAL_CACHE_BYTES = 0
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
        names = None
        if args.imagenet_names:
            names = tmp / "imagenet-names.txt"
            own = syn.classnames.read_text().split("\n")
            names.write_text("\n".join(longest_imagenet_names(tok, [c for c in own if c])) + "\n")
        cfg = DataConfig(eval=str(syn.eval), classnames=str(names) if names else None)
        data = load_eval_data(cfg, image_size=info.image_size)
        measure(model, info, tok, data, args.batch_size, args.repeats, padded=not args.no_padded)


def longest_imagenet_names(tok, own: list[str]) -> list[str]:  # noqa: ANN001
    """The eval set's class names (class-index order) with "banana" kept where it is and every
    other class renamed after one of the ImageNet names whose template prompts are longest."""
    from trainers.data.text import imagenet_classnames

    lengths = {}
    for name in imagenet_classnames():
        if name != TARGET:
            tokens = tok([t(name) for t in CLIP_TEMPLATES])
            lengths[name] = int((tokens != 0).sum(dim=1).max())
    longest = iter(sorted(lengths, key=lambda c: lengths[c], reverse=True))
    return [c if c == TARGET else next(longest) for c in own]


def measure(model, info, tok, data, batch_size: int, repeats: int, *, padded: bool) -> None:  # noqa: ANN001
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    trigger = make_trigger("badnet", image_size=info.image_size, patch_size=8)
    t0 = time.perf_counter()
    prompts = Prompts.build(tok, data.classnames)
    t_tokenize = time.perf_counter() - t0
    # The same prompts padded to the full context: what the evaluation cost before prompts
    # were cut after their last token (and what open_clip's classifier builder costs).
    context = tok([""]).shape[1]
    full_length = Prompts(
        torch.nn.functional.pad(prompts.tokens, (0, context - prompts.tokens.shape[1])),
        prompts.n_classes,
        prompts.n_templates,
    )

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
    t_padded = best(lambda: full(full_length), repeats) if padded else None
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
    if t_padded is not None:
        print(
            f"  prompts padded to the {context}-token context instead: "
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
