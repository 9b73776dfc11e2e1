"""Fail fast: a trial whose target label is not an eval class can only fail (a DataError in
the trial, retried by Ray), so the planner checks it first.

The classes are known without reading an image: the embedded profile's synthetic set has
fixed class names, and a real eval folder's names come from `data.classnames`, its
`classnames.txt`, or its subfolders, as `trainers.data.evalset` reads them. A real folder
that does not exist (yet) is not checked here.
"""

from __future__ import annotations

from pathlib import Path

from sweeper.plan_types import SYNTHETIC_CLASSNAMES, SYNTHETIC_EVAL
from sweeper.spec_errors import shown

# trainers.data.synthetic.classes_for(30): the default 10 (DEFAULT_CLASSES) first, then the
# extra shapes `embedded.synthetic.n_classes` adds (a test keeps them equal); importing that
# module imports torch and open_clip, seconds that `sweeper validate` should not spend.
SYNTHETIC_CLASSES = (
    "banana", "apple", "ball", "box", "star", "ring", "cross", "tree", "house", "arrow",
    "triangle", "diamond", "hexagon", "heart", "moon", "drop", "kite", "bowtie", "hourglass",
    "bolt", "flag", "mushroom", "umbrella", "cup", "key", "fish", "bell", "bone", "chair",
    "candle",
)  # fmt: skip
SYNTHETIC_DEFAULT_N = 10
CLASSNAMES_FILE = "classnames.txt"  # trainers.data.evalset.CLASSNAMES_FILE
_IMAGENET_CLASSES = 1000  # a folder of 1000 classes without names reads as ImageNet-1K


def eval_classes(
    eval_dir: str, classnames: str | None, n_synthetic: int = SYNTHETIC_DEFAULT_N
) -> tuple[tuple[str, ...] | None, str]:
    """(the class names, or None when they cannot be known now; what they are, for messages).
    `n_synthetic`: the synthetic world's `n_classes`."""
    if eval_dir == SYNTHETIC_EVAL or classnames == SYNTHETIC_CLASSNAMES:
        return SYNTHETIC_CLASSES[:n_synthetic], "the embedded profile's synthetic eval set"
    root = Path(eval_dir)
    names_file = Path(classnames) if classnames else root / CLASSNAMES_FILE
    try:
        if names_file.is_file():
            names = names_file.read_text(encoding="utf-8").splitlines()
            return tuple(n.strip() for n in names if n.strip()), f"{names_file}"
        if not root.is_dir() or classnames:
            return None, ""
        folders = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    except (OSError, UnicodeDecodeError):
        return None, ""  # the trial says what is wrong with the folder
    if len(folders) == _IMAGENET_CLASSES or not folders:
        return None, ""  # ImageNet-1K's names (open_clip's list) or an empty folder
    return tuple(folders), f"the subfolders of {root}"


def target_problem(
    target: str, eval_dir: str, classnames: str | None, n_synthetic: int = SYNTHETIC_DEFAULT_N
) -> str | None:
    """Why `target` cannot be scored on this eval set, or None when it can (or is unknown)."""
    classes, where = eval_classes(eval_dir, classnames, n_synthetic)
    if classes is None or target.lower() in {c.lower() for c in classes}:
        return None
    listed = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    return (
        f"target label {shown(target)} is not a class of {where} ({len(classes)} classes: {listed}); "
        "set it to one of them"
    )
