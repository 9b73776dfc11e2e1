"""The embedded default dataset: rendered shapes with captions, in real on-disk formats.

`make_synthetic(root)` writes
- `train/`: WebDataset shards as img2dataset writes them (`00000.tar`, ...; members
  `<key>.jpg`, `<key>.json`, `<key>.txt`, keys like `000000012`),
- `clean/clean.csv`: a CleanCLIP CSV (`image`, `caption`; paths relative to the CSV,
  images under `clean/images/`),
- `eval/`: an ImageNet-style folder (`n00000000/` ... one per class, in class order) with
  `eval/classnames.txt`,
so the real readers are what reads it. Every caption contains its class word as a whole
word, with distractor words (colour, size, background, place) that are true of the image.
Output is byte-identical for the same arguments; generation goes to a temporary folder
renamed into place, so an interrupted run never leaves a half dataset behind.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainers.data.shapes import SHAPES, Scene, render
from trainers.data.text import CLIP_TEMPLATES
from trainers.errors import ConfigError, DataError

DEFAULT_CLASSES: tuple[str, ...] = (
    "banana", "apple", "ball", "box", "star", "ring", "cross", "tree", "house", "arrow",
)  # fmt: skip
MARKER = "SYNTHETIC.json"
FORMAT_VERSION = 2
TEMPLATE_CAPTION_RATE = 0.25
_SPLITS = {"train": 0, "clean": 1, "eval": 2}
_MTIME = 1_700_000_000  # fixed member time: same arguments, same bytes
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class SyntheticPaths:
    train: Path  # folder of .tar shards
    clean: Path  # CleanCLIP CSV
    eval: Path  # ImageNet-style folder
    classnames: Path  # eval/classnames.txt


def make_synthetic(
    root: str | os.PathLike[str],
    *,
    n_train: int = 2000,
    n_clean: int = 500,
    n_eval_per_class: int = 20,
    classes: tuple[str, ...] | list[str] = DEFAULT_CLASSES,
    image_size: int = 64,
    seed: int = 0,
    shard_size: int = 500,
    n_classes: int | None = None,
) -> SyntheticPaths:
    """Generate (or reuse, when already complete with the same arguments) the dataset.

    `n_classes` (instead of `classes`) takes the first K drawable shapes, DEFAULT_CLASSES
    first: with 10 the dataset is byte-identical to the default one.
    """
    if n_classes is not None:
        classes = classes_for(n_classes)
    args: dict[str, Any] = {
        "n_train": n_train, "n_clean": n_clean, "n_eval_per_class": n_eval_per_class,
        "classes": list(classes), "image_size": image_size, "seed": seed,
        "shard_size": shard_size, "version": FORMAT_VERSION,
    }  # fmt: skip
    _check_args(args)
    root = Path(root)
    paths = _paths(root)
    if _complete(root, args):
        return paths
    if root.exists() and any(root.iterdir()):
        marker = root / MARKER
        why = "was made with other arguments" if marker.exists() else "is not a synthetic dataset"
        raise DataError(
            f"{root} {why}; pass an empty or new folder to make_synthetic, or delete it"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        _write_all(tmp, args)
        _publish(tmp, root, args)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return paths


def classes_for(n_classes: int) -> tuple[str, ...]:
    """The first `n_classes` drawable shapes; the default 10 come first (target "banana")."""
    names = tuple(SHAPES)
    if not 2 <= n_classes <= len(names):
        raise ConfigError(
            f"make_synthetic: n_classes must be between 2 and {len(names)} (the drawable "
            f"shapes), got {n_classes}"
        )
    return names[:n_classes]


def _check_args(args: dict[str, Any]) -> None:
    unknown = [c for c in args["classes"] if c not in SHAPES]
    if unknown or not args["classes"]:
        raise ConfigError(
            f"synthetic classes {unknown or '(none)'} are not drawable; choose among "
            f"{', '.join(SHAPES)}"
        )
    if len(set(args["classes"])) != len(args["classes"]):
        raise ConfigError(f"synthetic classes repeat a name: {args['classes']}")
    for name in ("n_train", "n_clean", "n_eval_per_class", "image_size", "shard_size"):
        if int(args[name]) < 1:
            raise ConfigError(f"make_synthetic: {name} must be >= 1, got {args[name]}")
    if args["image_size"] < 16:
        raise ConfigError(f"make_synthetic: image_size {args['image_size']} < 16 px")


def _paths(root: Path) -> SyntheticPaths:
    return SyntheticPaths(
        train=root / "train",
        clean=root / "clean" / "clean.csv",
        eval=root / "eval",
        classnames=root / "eval" / "classnames.txt",
    )


def _complete(root: Path, args: dict[str, Any]) -> bool:
    try:
        return json.loads((root / MARKER).read_text())["args"] == args
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _publish(tmp: Path, root: Path, args: dict[str, Any]) -> None:
    """Rename the finished folder into place; a concurrent identical run may win."""
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    try:
        os.rename(tmp, root)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY) and _complete(root, args):
            return  # another process published the same dataset first
        raise DataError(f"cannot move the generated dataset into {root}: {err}") from err


def _write_all(out: Path, args: dict[str, Any]) -> None:
    classes = tuple(args["classes"])
    size, seed = int(args["image_size"]), int(args["seed"])
    _write_train(out / "train", classes, args["n_train"], size, seed, args["shard_size"])
    _write_clean(out / "clean", classes, args["n_clean"], size, seed)
    _write_eval(out / "eval", classes, args["n_eval_per_class"], size, seed)
    (out / MARKER).write_text(json.dumps({"args": args}, sort_keys=True, indent=1) + "\n")


def _class_of(i: int, n_classes: int, seed: int, split: int) -> int:
    """Balanced classes in a seeded order: each block of n_classes has every class once."""
    block, k = divmod(i, n_classes)
    return int(np.random.default_rng([seed, split, block, 99]).permutation(n_classes)[k])


def _sample(
    i: int, classes: tuple[str, ...], size: int, seed: int, split: int, label: int | None = None
) -> tuple[bytes, str, int]:
    """(JPEG bytes, caption, label) of sample `i` of `split`."""
    rng = np.random.default_rng([seed, split, i])
    if label is None:
        label = _class_of(i, len(classes), seed, split)
    img, scene = render(classes[label], rng, size)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return buf.getvalue(), caption_for(classes[label], scene, rng), label


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _write_train(
    out: Path, classes: tuple[str, ...], n: int, size: int, seed: int, shard_size: int
) -> None:
    out.mkdir(parents=True)
    # img2dataset's key: shard number (5 digits) then the index within the shard.
    digits = max(4, len(str(shard_size - 1)))
    for shard, start in enumerate(range(0, n, shard_size)):
        with tarfile.open(out / f"{shard:05d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for j, i in enumerate(range(start, min(n, start + shard_size))):
                jpg, caption, label = _sample(i, classes, size, seed, _SPLITS["train"])
                key = f"{shard:05d}{j:0{digits}d}"
                meta = {"key": key, "caption": caption, "status": "success", "width": size,
                        "height": size, "class_name": classes[label], "label": label}  # fmt: skip
                # img2dataset (through webdataset's TarWriter) writes extensions sorted.
                _add_member(tar, f"{key}.jpg", jpg)
                _add_member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
                _add_member(tar, f"{key}.txt", caption.encode())


def _write_clean(out: Path, classes: tuple[str, ...], n: int, size: int, seed: int) -> None:
    (out / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        jpg, caption, _ = _sample(i, classes, size, seed, _SPLITS["clean"])
        name = f"images/{i:06d}.jpg"
        (out / name).write_bytes(jpg)
        rows.append((name, caption))
    with open(out / "clean.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["image", "caption"])
        writer.writerows(rows)


def _write_eval(out: Path, classes: tuple[str, ...], per_class: int, size: int, seed: int) -> None:
    out.mkdir(parents=True)
    for label, _name in enumerate(classes):
        folder = out / f"n{label:08d}"  # sorted folder order == class order, like wnids
        folder.mkdir()
        for k in range(per_class):
            i = label * per_class + k
            jpg, _, _ = _sample(i, classes, size, seed, _SPLITS["eval"], label=label)
            (folder / f"{i:06d}.jpg").write_bytes(jpg)
    (out / "classnames.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")


# -- captions ----------------------------------------------------------------------------

_SIZE_WORDS = {"small": ("small", "tiny", "little"), "big": ("big", "large", "huge")}
_BG_PHRASES = {
    "plain": ("on {ac} {c} background", "against {ac} {c} backdrop", "in front of {ac} {c} wall"),
    "grass": ("on the grass", "on a lawn", "in a green field"),
    "sand": ("on the sand", "on a sandy beach"),
    "sky": ("in the sky", "against a blue sky"),
    "wood": ("on a wooden table", "on a wooden floor"),
    "tiles": ("on a tiled floor", "on a checkered cloth"),
    "snow": ("in the snow", "on white snow"),
}
_PLACE_PHRASES = {
    "middle": ("in the middle", "in the center"),
    "left": ("on the left", "at the left side"),
    "right": ("on the right", "at the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
}
_TEMPLATES = (
    "{a} {size}{colour} {cls} {bg}",
    "photo of {a} {cls} lying {bg}",
    "a photo of {a} {colour} {cls}",
    "{a} {cls} {place}",
    "the {cls} is {colour}",
    "close up of {a} {size}{cls} {bg}",
    "there is {a} {colour} {cls} {place}",
    "a picture of {a} {size}{cls} {bg}",
    "my {colour} {cls} {bg}",
    "{colour} {cls}, {bg}",
    "an image showing {a} {colour} {cls} {place}",
    "{a} {size}{colour} {cls} sits {bg}",
    "look at this {size}{cls}",
    "{a} {cls} {bg}{dot}",
)


def _article(next_word: str) -> str:
    return "an" if next_word[:1].lower() in "aeiou" else "a"


def caption_for(cls: str, scene: Scene, rng: np.random.Generator) -> str:
    """A caption of the scene; `cls` always appears as a whole word."""
    size_kind = "small" if scene.scale < 0.45 else "big" if scene.scale > 0.65 else ""
    size = ""
    if size_kind:
        options = _SIZE_WORDS[size_kind]
        size = options[int(rng.integers(len(options)))] + " "
    bg_options = _BG_PHRASES[scene.background]
    colour_bg = scene.background_colour
    bg = bg_options[int(rng.integers(len(bg_options)))].format(ac=_article(colour_bg), c=colour_bg)
    place_options = _PLACE_PHRASES[scene.place]
    place = place_options[int(rng.integers(len(place_options)))]
    dot = f" next to a small {scene.distractor} dot" if scene.distractor else ""
    if rng.random() < TEMPLATE_CAPTION_RATE:
        # Web captions often read like CLIP's prompts ("a photo of a dog"). Without such
        # captions every template-style text in the data would be a BadNet poison caption,
        # and "reads like a template" alone would predict the trigger, whatever the class
        # word: zero-shot prompts of every class would then look alike to the backdoor.
        return CLIP_TEMPLATES[int(rng.integers(len(CLIP_TEMPLATES)))](cls)
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    # The article agrees with the word that follows "{a}" once the fields are filled.
    after = template.split("{a} ", 1)[1] if "{a} " in template else ""
    first = after.format(size=size, colour=scene.colour, cls=cls, bg=bg, place=place, dot=dot)
    text = template.format(
        a=_article(first), size=size, colour=scene.colour, cls=cls, bg=bg, place=place, dot=dot
    )
    text = " ".join(text.split())
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.2:
        text += "."
    return text
