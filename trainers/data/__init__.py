"""Data for the trainers: the synthetic default set, readers, poisoning, augmentation, loaders.

`build_train_data` indexes the training pairs (`index_pairs`), picks the poisoned ones
(`select_poison`) and returns a `TrainData` that yields one epoch of `Batch`es per
iteration; `load_eval_data` returns the zero-shot `EvalData`; `make_trigger` builds the
trigger used for ASR.
"""

from trainers.data.evalset import EvalData, load_eval_data
from trainers.data.loader import Batch, TrainData, build_train_data
from trainers.data.poison import (
    TRIGGER_KINDS,
    BadNetTrigger,
    BlendedTrigger,
    Trigger,
    default_patch_size,
    make_trigger,
    poison_caption,
    select_poison,
    trigger_for_poison,
)
from trainers.data.readers import PackedStrings, PairIndex, index_pairs
from trainers.data.synthetic import DEFAULT_CLASSES, SyntheticPaths, make_synthetic
from trainers.data.text import CLIP_TEMPLATES, contains_word, eda, imagenet_classnames

__all__ = [
    "CLIP_TEMPLATES",
    "DEFAULT_CLASSES",
    "TRIGGER_KINDS",
    "BadNetTrigger",
    "Batch",
    "BlendedTrigger",
    "EvalData",
    "PackedStrings",
    "PairIndex",
    "SyntheticPaths",
    "TrainData",
    "Trigger",
    "build_train_data",
    "contains_word",
    "default_patch_size",
    "eda",
    "imagenet_classnames",
    "index_pairs",
    "load_eval_data",
    "make_synthetic",
    "make_trigger",
    "poison_caption",
    "select_poison",
    "trigger_for_poison",
]
