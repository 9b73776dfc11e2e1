"""index_pairs over shard folders, patterns and CSVs; errors name the path."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from trainers.data import PackedStrings, SyntheticPaths, index_pairs, make_synthetic
from trainers.errors import DataError


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    root = tmp_path_factory.mktemp("readers") / "ds"
    return make_synthetic(root, n_train=90, n_clean=12, n_eval_per_class=1, shard_size=30)


def test_folder_brace_glob_and_single_file_agree(paths: SyntheticPaths) -> None:
    folder = index_pairs(str(paths.train))
    brace = index_pairs(f"{paths.train}/{{00000..00002}}.tar")
    globbed = index_pairs(f"{paths.train}/*.tar")
    assert list(folder.keys) == list(brace.keys) == list(globbed.keys)
    assert list(folder.captions) == list(brace.captions)
    single = index_pairs(str(paths.train / "00001.tar"))
    assert list(single.keys) == list(folder.keys[30:60])


def test_head_keeps_the_first_pairs(paths: SyntheticPaths) -> None:
    index = index_pairs(str(paths.train))
    head = index.head(40)
    assert len(head) == 40 and list(head.keys) == list(index.keys[:40])
    assert head.shards == index.shards[:2] and head.shard_starts == (0, 30, 40)
    assert index.head(1000) is index
    csv_head = index_pairs(str(paths.clean)).head(5)
    assert len(csv_head) == 5 and csv_head.kind == "csv"


@pytest.mark.parametrize(
    "make_path",
    [
        lambda p: str(p.train.parent / "nope"),
        lambda p: f"{p.train}/{{00000..00009}}.tar",
        lambda p: f"{p.train}/*.tgz",
        lambda p: str(p.train.parent / "missing.csv"),
    ],
)
def test_missing_data_names_the_path(paths: SyntheticPaths, make_path) -> None:  # type: ignore[no-untyped-def]
    path = make_path(paths)
    with pytest.raises(DataError) as err:
        index_pairs(path)
    shown = path if "{" not in path else str(paths.train)
    assert shown in str(err.value)


def test_empty_data_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / "empty")):
        index_pairs(str(tmp_path / "empty"))
    with tarfile.open(tmp_path / "empty" / "00000.tar", "w"):
        pass  # a valid archive with no member
    with pytest.raises(DataError, match="no image-text samples in " + str(tmp_path / "empty")):
        index_pairs(str(tmp_path / "empty"))
    (tmp_path / "e.csv").write_text("image,caption\n")
    with pytest.raises(DataError, match="no image-text samples"):
        index_pairs(str(tmp_path / "e.csv"))
    with pytest.raises(DataError, match="data.train"):
        index_pairs("")


def test_csv_needs_image_and_caption_columns(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("filepath,title\na.jpg,hello\n")
    with pytest.raises(DataError, match="filepath, title"):
        index_pairs(str(tmp_path / "bad.csv"))
    (tmp_path / "tab.csv").write_text("image\tcaption\na.jpg\ta, comma\n")
    index = index_pairs(str(tmp_path / "tab.csv"))
    assert index.keys[0] == "a.jpg" and index.captions[0] == "a, comma"


def test_truncated_shard_keeps_what_it_can(paths: SyntheticPaths, tmp_path: Path) -> None:
    shutil.copytree(paths.train, tmp_path / "t")
    shard = tmp_path / "t" / "00001.tar"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    index = index_pairs(str(tmp_path / "t"))
    assert 60 < len(index) < 90
    assert len(index.problems) == 1 and "00001.tar" in index.problems[0]


def test_metadata_members_are_not_samples(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for name, data in [
            ("__meta__", b"x"),
            ("a1.jpg", b"j"),
            ("a1.txt", b"cap"),
            ("b2.txt", b"t"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    index = index_pairs(str(tmp_path / "s.tar"))
    assert list(index.keys) == ["a1", "b2"] and list(index.captions) == ["cap", "t"]


def test_packed_strings_behave_like_a_list() -> None:
    words = ["", "banana", "é clair", "x" * 300]
    packed = PackedStrings.pack(words)
    assert len(packed) == 4 and list(packed) == words
    assert packed[-1] == words[-1] and packed[2] == "é clair"
    assert list(packed[1:3]) == words[1:3] and list(packed[::2]) == words[::2]
    with pytest.raises(IndexError):
        packed[4]
