"""load_eval_data: ImageNet-style folders, class names, caching, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from trainers.config import DataConfig
from trainers.data import (
    DEFAULT_CLASSES,
    SyntheticPaths,
    imagenet_classnames,
    load_eval_data,
    make_synthetic,
)
from trainers.errors import DataError


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    root = tmp_path_factory.mktemp("eval") / "ds"
    return make_synthetic(root, n_train=10, n_clean=2, n_eval_per_class=4)


def _folder(tmp_path: Path, names: list[str], per_class: int = 1) -> Path:
    for name in names:
        (tmp_path / name).mkdir(parents=True)
        for k in range(per_class):
            Image.new("RGB", (20, 12), (40 * k, 90, 200)).save(tmp_path / name / f"{k}.JPEG")
    return tmp_path


def test_synthetic_eval_set(paths: SyntheticPaths) -> None:
    data = load_eval_data(DataConfig(eval=str(paths.eval)), image_size=24)
    assert data.classnames == list(DEFAULT_CLASSES) and len(data) == 40
    batches = list(data.batches(16))
    assert [len(labels) for _, labels in batches] == [16, 16, 8]
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert images.shape == (40, 3, 24, 24) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert labels.dtype == torch.long and labels.tolist() == [
        c for c in range(10) for _ in range(4)
    ]


def test_max_eval_per_class(paths: SyntheticPaths) -> None:
    data = load_eval_data(DataConfig(eval=str(paths.eval), max_eval_per_class=2), image_size=16)
    labels = torch.cat([lab for _, lab in data.batches(7)])
    assert len(data) == 20 and labels.bincount().tolist() == [2] * 10


def test_images_are_decoded_once(paths: SyntheticPaths, tmp_path: Path) -> None:
    shutil.copytree(paths.eval, tmp_path / "ev")
    data = load_eval_data(DataConfig(eval=str(tmp_path / "ev")), image_size=16)
    first = [(im.clone(), lab.clone()) for im, lab in data.batches(8)]
    shutil.rmtree(tmp_path / "ev")  # a second pass must not need the files
    second = list(data.batches(8))
    assert len(first) == len(second)
    for (a, la), (b, lb) in zip(first, second, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    # another batch size is served from the same cache
    assert sum(len(lab) for _, lab in data.batches(13)) == 40


def test_classnames_from_a_file_or_the_folders(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ev", ["n02", "n01", "n03"])
    plain = load_eval_data(DataConfig(eval=str(root)), image_size=8)
    assert plain.classnames == ["n01", "n02", "n03"]  # sorted subfolders
    names = tmp_path / "names.txt"
    names.write_text("goldfish\nshark\nray\n\n")
    named = load_eval_data(DataConfig(eval=str(root), classnames=str(names)), image_size=8)
    assert named.classnames == ["goldfish", "shark", "ray"]
    (root / "classnames.txt").write_text("a\nb\nc\n")
    assert load_eval_data(DataConfig(eval=str(root)), image_size=8).classnames == ["a", "b", "c"]


def test_classname_count_mismatch_names_both_paths(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ev", ["a", "b", "c"])
    names = tmp_path / "names.txt"
    names.write_text("x\ny\n")
    with pytest.raises(DataError) as err:
        load_eval_data(DataConfig(eval=str(root), classnames=str(names)), image_size=8)
    assert str(names) in str(err.value) and str(root) in str(err.value)
    assert "2 class names" in str(err.value) and "3 class subfolders" in str(err.value)


def test_a_thousand_folders_are_imagenet(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    for i in range(1000):
        (root / f"n{i:08d}").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "n00000000" / "a.JPEG")
    data = load_eval_data(DataConfig(eval=str(root)), image_size=8)
    assert data.classnames == imagenet_classnames() and len(data) == 1


def test_unreadable_eval_images_are_left_out(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ev", ["a", "b"], per_class=2)
    (root / "b" / "z.jpg").write_bytes(b"not an image")
    data = load_eval_data(DataConfig(eval=str(root)), image_size=8)
    assert len(data) == 5
    labels = torch.cat([lab for _, lab in data.batches(2)])
    assert labels.tolist() == [0, 0, 1, 1]  # the unreadable image is left out


def test_missing_or_empty_eval_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "none")):
        load_eval_data(DataConfig(eval=str(tmp_path / "none")), image_size=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_eval_data(DataConfig(eval=str(tmp_path / "empty")), image_size=8)
    (tmp_path / "empty" / "a").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_eval_data(DataConfig(eval=str(tmp_path / "empty")), image_size=8)
    with pytest.raises(DataError, match="data.eval"):
        load_eval_data(DataConfig(), image_size=8)
    with pytest.raises(DataError, match="data.classnames"):
        load_eval_data(
            DataConfig(eval=str(tmp_path / "empty"), classnames=str(tmp_path / "x.txt")),
            image_size=8,
        )
