"""The embedded synthetic dataset: determinism, on-disk formats, real readers over it."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from PIL import Image

import trainers.data.synthetic as synthetic
from trainers.data import (
    DEFAULT_CLASSES,
    SyntheticPaths,
    contains_word,
    index_pairs,
    make_synthetic,
)
from trainers.errors import ConfigError, DataError

ARGS = {"n_train": 120, "n_clean": 30, "n_eval_per_class": 3, "shard_size": 50}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SyntheticPaths]:
    base = tmp_path_factory.mktemp("synthetic")
    start = time.perf_counter()
    out = {
        "a": make_synthetic(base / "a", seed=0, **ARGS),
        "b": make_synthetic(base / "b", seed=0, **ARGS),
        "c": make_synthetic(base / "c", seed=1, **ARGS),
    }
    took = time.perf_counter() - start
    print(f"\nmake_synthetic: 3 x {120 + 30 + 30} images in {took:.2f} s")
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _root(paths: SyntheticPaths) -> Path:
    return paths.train.parent


def test_same_seed_same_bytes_other_seed_other_bytes(made: dict[str, SyntheticPaths]) -> None:
    a, b, c = (_files(_root(made[k])) for k in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["train/00000.tar"] != c["train/00000.tar"]
    assert a["clean/clean.csv"] != c["clean/clean.csv"]


def test_train_shards_are_img2dataset_webdataset(made: dict[str, SyntheticPaths]) -> None:
    shards = sorted(p.name for p in made["a"].train.iterdir())
    assert shards == ["00000.tar", "00001.tar", "00002.tar"]
    classes_seen = set()
    n = 0
    for shard in shards:
        with tarfile.open(made["a"].train / shard) as tar:
            names = tar.getnames()
            assert all(re.fullmatch(r"\d{9}\.(jpg|json|txt)", name) for name in names)
            keys = sorted({name.split(".")[0] for name in names})
            assert keys[0].startswith(shard[:5])
            for key in keys:
                img = Image.open(io.BytesIO(tar.extractfile(f"{key}.jpg").read()))
                assert img.format == "JPEG" and img.size == (64, 64) and img.mode == "RGB"
                caption = tar.extractfile(f"{key}.txt").read().decode()
                meta = json.loads(tar.extractfile(f"{key}.json").read())
                assert meta["key"] == key and meta["caption"] == caption
                cls = meta["class_name"]
                assert contains_word(caption, cls), caption
                others = [c for c in DEFAULT_CLASSES if c != cls and contains_word(caption, c)]
                assert not others, f"{caption!r} names another class"
                classes_seen.add(cls)
                n += 1
    assert n == 120
    assert classes_seen == set(DEFAULT_CLASSES)


def test_clean_csv_and_eval_folder(made: dict[str, SyntheticPaths]) -> None:
    paths = made["a"]
    with open(paths.clean, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and list(rows[0]) == ["image", "caption"]
    for row in rows:
        assert Image.open(paths.clean.parent / row["image"]).size == (64, 64)
    assert {c for c in DEFAULT_CLASSES for r in rows if contains_word(r["caption"], c)} == set(
        DEFAULT_CLASSES
    )
    folders = sorted(p for p in paths.eval.iterdir() if p.is_dir())
    assert len(folders) == len(DEFAULT_CLASSES)
    assert all(len(list(f.glob("*.jpg"))) == 3 for f in folders)
    assert paths.classnames.read_text().splitlines() == list(DEFAULT_CLASSES)
    assert "banana" in DEFAULT_CLASSES


def test_real_readers_index_it(made: dict[str, SyntheticPaths]) -> None:
    paths = made["a"]
    train = index_pairs(str(paths.train))
    assert len(train) == 120 and train.kind == "shards" and not train.problems
    assert train.shard_starts == (0, 50, 100, 120)
    with tarfile.open(paths.train / "00001.tar") as tar:
        assert train.keys[50] == tar.getnames()[0].split(".")[0]
        assert train.captions[50] == tar.extractfile(tar.getnames()[2]).read().decode()
    clean = index_pairs(str(paths.clean))
    assert len(clean) == 30 and clean.keys[0] == "images/000000.jpg"


def test_complete_dataset_is_reused(made: dict[str, SyntheticPaths]) -> None:
    root = _root(made["a"])
    stamp = (root / "train" / "00000.tar").stat().st_mtime_ns
    assert make_synthetic(root, seed=0, **ARGS) == made["a"]
    assert (root / "train" / "00000.tar").stat().st_mtime_ns == stamp


def test_foreign_or_different_folder_is_refused(
    made: dict[str, SyntheticPaths], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="other arguments"):
        make_synthetic(_root(made["a"]), seed=3, **ARGS)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=str(tmp_path / "mine")):
        make_synthetic(tmp_path / "mine", **ARGS)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_interrupted_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_eval", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic(tmp_path / "ds", **ARGS)
    assert list(tmp_path.iterdir()) == []


def test_empty_target_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    paths = make_synthetic(tmp_path / "ds", n_train=12, n_clean=4, n_eval_per_class=1)
    assert len(index_pairs(str(paths.train))) == 12


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not drawable"):
        make_synthetic(tmp_path / "x", classes=("banana", "unicorn"))
    with pytest.raises(ConfigError, match="n_train"):
        make_synthetic(tmp_path / "x", n_train=0)


def test_a_concurrent_identical_run_that_publishes_first_wins(
    made: dict[str, SyntheticPaths], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two trials generate the same dataset at once: the other one renames its copy into
    # place while this one is still writing; this one keeps theirs and removes its own.
    root = tmp_path / "shared"
    write_all = synthetic._write_all

    def slower_than_the_other(out: Path, args: dict[str, object]) -> None:
        write_all(out, args)
        shutil.copytree(_root(made["a"]), root)

    monkeypatch.setattr(synthetic, "_write_all", slower_than_the_other)
    assert make_synthetic(root, seed=0, **ARGS).train == root / "train"
    assert _files(root) == _files(_root(made["a"]))
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]


# ---- n_classes (issue #13) -----------------------------------------------------------------


def test_n_classes_gives_that_many_classes_and_eval_images(tmp_path: Path) -> None:
    paths = make_synthetic(tmp_path / "k", n_classes=20, n_train=40, n_clean=20,
                           n_eval_per_class=2, shard_size=50)  # fmt: skip
    names = paths.classnames.read_text().splitlines()
    assert len(names) == 20 and len(set(names)) == 20
    assert names[:10] == list(DEFAULT_CLASSES)  # the default world first: "banana" stays
    folders = sorted(p for p in paths.eval.iterdir() if p.is_dir())
    assert len(folders) == 20
    assert sum(len(list(f.glob("*.jpg"))) for f in folders) == 20 * 2
    # 40 pairs in balanced blocks of 20: every class twice, each caption naming its class.
    with tarfile.open(paths.train / "00000.tar") as tar:
        metas = [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    labels = [m["label"] for m in metas]
    assert sorted(labels) == sorted(list(range(20)) * 2)
    assert all(contains_word(m["caption"], names[m["label"]]) for m in metas)
    for m in metas:
        others = [c for c in names if c != names[m["label"]] and contains_word(m["caption"], c)]
        assert not others, (m["caption"], others)


def test_n_classes_10_is_the_default_world_byte_for_byte(
    made: dict[str, SyntheticPaths], tmp_path: Path
) -> None:
    ten = make_synthetic(tmp_path / "ten", seed=0, n_classes=10, **ARGS)
    assert _files(_root(ten)) == _files(_root(made["a"]))


def test_n_classes_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_classes must be between 2 and 30"):
        make_synthetic(tmp_path / "x", n_classes=31)
    with pytest.raises(ConfigError, match="n_classes must be between 2 and 30"):
        make_synthetic(tmp_path / "x", n_classes=1)
