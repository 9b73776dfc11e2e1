"""The zero-shot evaluation set: an ImageNet-style folder, one subfolder per class.

Class index = position of the subfolder in sorted order. Class names come from
`data.classnames`, else `<eval>/classnames.txt`, else open_clip's ImageNet-1K names when
there are exactly 1000 subfolders, else the subfolder names themselves.

Decoded images are kept for later passes: with `data.cache_dir`, in a memory-mapped file
shared by every trial of the node (`evalcache`); without it, in this process's memory
when they fit in EVAL_CACHE_BYTES.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from trainers.config import DataConfig
from trainers.data import evalcache
from trainers.data.text import imagenet_classnames
from trainers.data.transforms import load_image_file, to_float
from trainers.errors import DataError

log = logging.getLogger(__name__)

EVAL_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CLASSNAMES_FILE = "classnames.txt"
# Decoded images are kept in memory after the first pass when they fit in this many bytes
# (uint8): 50k ImageNet images at 64 px take 0.6 GB; at 224 px they are re-read each time.
EVAL_CACHE_BYTES = 1 << 30


class _EvalFiles(Dataset):
    def __init__(self, files: list[str], labels: list[int], image_size: int) -> None:
        self.files, self.labels, self.image_size = files, labels, image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor | None, int]:
        try:
            return load_image_file(self.files[i], self.image_size), self.labels[i]
        except Exception:  # noqa: BLE001 - an unreadable eval image is left out, not fatal
            log.warning("eval image %s is unreadable; left out", self.files[i])
            return None, self.labels[i]


def _collate(items: list[tuple[Tensor | None, int]]) -> tuple[Tensor | None, Tensor]:
    """The readable images of a batch (an unreadable one was logged and is left out)."""
    good = [(img, lab) for img, lab in items if img is not None]
    if not good:
        return None, torch.zeros(0, dtype=torch.long)
    return torch.stack([g[0] for g in good]), torch.tensor([g[1] for g in good])


class EvalData:
    """Labelled eval images, decoded at the model's `image_size`."""

    def __init__(
        self,
        classnames: list[str],
        files: list[str],
        labels: list[int],
        *,
        image_size: int,
        root: str,
        num_workers: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        self.classnames = classnames
        self.files = files
        self.labels = labels
        self.image_size = image_size
        self.root = root
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self._cache: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def cacheable(self) -> bool:
        return len(self.files) * 3 * self.image_size**2 <= EVAL_CACHE_BYTES

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(images float [B, 3, S, S] in [0, 1], labels long [B]) in a fixed order."""
        if self._cache is None and self.cache_dir is not None:
            key = evalcache.eval_cache_key(self.files, self.labels, self.image_size)
            self._cache = evalcache.open_or_build(
                self.cache_dir, key, self.image_size, len(self.files), self._decoded(batch_size)
            )
            if self._cache is None:
                self.cache_dir = None  # unwritable: this trial keeps the in-memory fallback
        if self._cache is not None:
            images, labels = self._cache
            for lo in range(0, len(labels), batch_size):
                yield to_float(images[lo : lo + batch_size]), labels[lo : lo + batch_size]
            return
        keep = self.cacheable
        kept_images: list[Tensor] = []
        kept_labels: list[Tensor] = []
        for images, labels in self._decoded(batch_size):
            if keep:
                kept_images.append(images)
                kept_labels.append(labels)
            yield to_float(images), labels
        # Only a pass that ran to the end fills the cache (a consumer may stop early).
        if keep and kept_images:
            self._cache = (torch.cat(kept_images), torch.cat(kept_labels))

    def _decoded(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Every readable image decoded from its file: (uint8 [B, 3, S, S], labels [B])."""
        loader = DataLoader(
            _EvalFiles(self.files, self.labels, self.image_size),
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=_collate,
        )
        for images, labels in loader:
            if images is not None:
                yield images, labels


def load_eval_data(
    data: DataConfig, *, image_size: int, num_workers: int | None = None
) -> EvalData:
    """The eval folder `data.eval`, at most `data.max_eval_per_class` images per class.

    `num_workers` (default `data.num_workers`, None there: in-process) decode the images
    on a pass that is not served from a cache; `data.cache_dir` enables the shared cache.
    """
    if not data.eval.strip():
        raise DataError("no eval set given: set data.eval to an ImageNet-style folder")
    root = Path(data.eval)
    if not root.is_dir():
        raise DataError(f"eval folder {root} does not exist (data.eval)")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"eval folder {root} has no class subfolders (data.eval)")
    classnames = _classnames(data, root, [p.name for p in classes])
    files: list[str] = []
    labels: list[int] = []
    for label, folder in enumerate(classes):
        images = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in EVAL_IMAGE_SUFFIXES and p.is_file()
        )
        if data.max_eval_per_class is not None:
            images = images[: data.max_eval_per_class]
        files.extend(str(p) for p in images)
        labels.extend([label] * len(images))
    if not files:
        raise DataError(f"eval folder {root} has class subfolders but no images (data.eval)")
    return EvalData(
        classnames,
        files,
        labels,
        image_size=image_size,
        root=str(root),
        num_workers=num_workers if num_workers is not None else (data.num_workers or 0),
        cache_dir=data.cache_dir,
    )


def _classnames(data: DataConfig, root: Path, folders: list[str]) -> list[str]:
    if data.classnames:
        path = Path(data.classnames)
        if not path.is_file():
            raise DataError(f"class-names file {path} does not exist (data.classnames)")
    elif (root / CLASSNAMES_FILE).is_file():
        path = root / CLASSNAMES_FILE
    elif len(folders) == 1000:
        return imagenet_classnames()
    else:
        return folders
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if len(names) != len(folders):
        raise DataError(
            f"{path} lists {len(names)} class names but the eval folder {root} has "
            f"{len(folders)} class subfolders; they must match one to one (sorted order)"
        )
    return names
