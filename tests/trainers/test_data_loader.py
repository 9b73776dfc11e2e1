"""build_train_data: batches, poisoning while reading, SSL views, skipping, workers."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import open_clip
import pytest
import torch
from torch import Tensor

from trainers.config import DataConfig, PoisonConfig
from trainers.data import (
    CLIP_TEMPLATES,
    Batch,
    SyntheticPaths,
    TrainData,
    build_train_data,
    contains_word,
    index_pairs,
    make_synthetic,
)
from trainers.data.loader import rebatch
from trainers.errors import DataError

NONE = PoisonConfig()


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    root = tmp_path_factory.mktemp("loader") / "ds"
    return make_synthetic(root, n_train=240, n_clean=64, n_eval_per_class=1, shard_size=80)


@pytest.fixture(scope="module")
def tokenizer() -> Callable[[list[str]], Tensor]:
    return open_clip.get_tokenizer("RN50")


def _data(
    train: str | Path,
    tokenizer: Callable[[list[str]], Tensor],
    poison: PoisonConfig = NONE,
    *,
    ssl: bool = False,
    size: int = 32,
    batch_size: int = 32,
    workers: int = 0,
    drop_last: bool = False,
    shuffle: bool = True,
    **data: object,
) -> TrainData:
    cfg = DataConfig(train=str(train), batch_size=batch_size, num_workers=workers, **data)
    return build_train_data(
        cfg,
        poison,
        image_size=size,
        tokenizer=tokenizer,
        ssl=ssl,
        seed=0,
        drop_last=drop_last,
        shuffle=shuffle,
    )


def _by_index(data: TrainData) -> dict[int, tuple[Tensor, ...]]:
    out: dict[int, tuple[Tensor, ...]] = {}
    for batch in data:
        for i, idx in enumerate(batch.index.tolist()):
            assert idx not in out, "a pair came twice in one epoch"
            views = [batch.image[i], batch.text[i], batch.poisoned[i]]
            if batch.image_aug is not None and batch.text_aug is not None:
                views += [batch.image_aug[i], batch.text_aug[i]]
            out[idx] = tuple(views)
    return out


@pytest.mark.parametrize("ssl", [False, True])
def test_batches_have_the_documented_shapes(paths, tokenizer, ssl: bool) -> None:  # type: ignore[no-untyped-def]
    data = _data(paths.train, tokenizer, ssl=ssl, drop_last=True, size=40)
    batches = list(data)
    assert len(batches) == 240 // 32 == data.num_batches == len(data)
    batch = batches[0]
    assert isinstance(batch, Batch) and len(batch) == 32 and batch.skipped == 0
    assert batch.image.dtype == torch.float32 and batch.image.shape == (32, 3, 40, 40)
    assert batch.image.min() >= 0 and batch.image.max() <= 1 and batch.image.std() > 0.05
    assert batch.text.dtype == torch.long and batch.text.shape == (32, 77)
    assert batch.index.dtype == torch.long and batch.poisoned.dtype == torch.bool
    assert len(batch.captions) == 32
    if ssl:
        assert batch.image_aug is not None and batch.text_aug is not None
        assert batch.image_aug.shape == batch.image.shape and batch.image_aug.dtype == torch.float32
        assert batch.image_aug.min() >= 0 and batch.image_aug.max() <= 1
        assert batch.text_aug.shape == batch.text.shape and batch.text_aug.dtype == torch.long
        differs = (batch.image_aug - batch.image).abs().flatten(1).amax(dim=1) > 0
        assert differs.float().mean() > 0.5
    else:
        assert batch.image_aug is None and batch.text_aug is None


@pytest.mark.parametrize("source", ["train", "clean"])
def test_one_epoch_covers_every_pair_once(paths, tokenizer, source: str) -> None:  # type: ignore[no-untyped-def]
    data = _data(getattr(paths, source), tokenizer, batch_size=24)
    seen = _by_index(data)
    assert sorted(seen) == list(range(data.num_samples))


def test_workers_give_the_same_pairs_and_views(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    poison = PoisonConfig(kind="badnet", amount=20)
    solo = _by_index(_data(paths.train, tokenizer, poison, ssl=True))
    pair = _by_index(_data(paths.train, tokenizer, poison, ssl=True, workers=2))
    assert solo.keys() == pair.keys()
    for idx, views in solo.items():
        for a, b in zip(views, pair[idx], strict=True):
            assert torch.equal(a, b), idx


def test_epochs_are_reproducible_and_reshuffled(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    data = _data(paths.train, tokenizer, ssl=True, shuffle_buffer=50)
    data.set_epoch(1)
    first = list(data)
    again = list(data)
    assert [b.index.tolist() for b in first] == [b.index.tolist() for b in again]
    assert all(torch.equal(a.image_aug, b.image_aug) for a, b in zip(first, again, strict=True))
    data.set_epoch(2)
    second = list(data)
    assert [b.index.tolist() for b in first] != [b.index.tolist() for b in second]
    e1, e2 = _views(first), _views(second)
    assert all(torch.equal(e1[i][0], e2[i][0]) for i in e1)  # same image
    assert sum(not torch.equal(e1[i][1], e2[i][1]) for i in e1) > 0.8 * len(e1)  # new AutoAugment
    assert all(torch.equal(e1[i][2], e2[i][2]) for i in e1)  # EDA once per caption


def _views(batches: list[Batch]) -> dict[int, tuple[Tensor, Tensor, Tensor]]:
    return {
        idx: (b.image[k], b.image_aug[k], b.text_aug[k])  # type: ignore[index]
        for b in batches
        for k, idx in enumerate(b.index.tolist())
    }


def test_unshuffled_order_is_the_index_order(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    data = _data(paths.clean, tokenizer, shuffle=False, batch_size=10)
    order = [i for b in data for i in b.index.tolist()]
    assert order == list(range(64))
    data = _data(paths.train, tokenizer, shuffle=False, batch_size=10)
    assert [i for b in data for i in b.index.tolist()] == list(range(240))


def test_in_process_loading_leaves_torch_rng_alone(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    data = _data(paths.clean, tokenizer, PoisonConfig(kind="badnet", amount=5), ssl=True)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for _ in data:
        pass
    assert torch.equal(torch.get_rng_state(), state)


def test_badnet_poison_patches_images_and_rewrites_captions(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    poison = PoisonConfig(kind="badnet", amount=15, seed=4)
    data = _data(paths.train, tokenizer, poison, size=64)
    clean = _data(paths.train, tokenizer, size=64)
    assert len(data.poisoned_keys) == 15
    index = data.index
    assert data.poisoned_keys == [index.keys[p] for p in data.poisoned_positions]
    filled = {t("banana") for t in CLIP_TEMPLATES}
    batches = list(data)
    clean_images = {i: im for b in clean for i, im in zip(b.index.tolist(), b.image, strict=True)}
    flagged = set()
    for batch in batches:
        for k, idx in enumerate(batch.index.tolist()):
            changed = (batch.image[k] - clean_images[idx]).abs().amax(dim=0) > 0
            if batch.poisoned[k]:
                flagged.add(idx)
                assert batch.captions[k] in filled
                ys, xs = changed.nonzero(as_tuple=True)
                # a 5x5 patch at 64 px (16 px at 224), possibly blurred by nothing else
                assert int(ys.max() - ys.min()) + 1 <= 5 and int(xs.max() - xs.min()) + 1 <= 5
            else:
                assert batch.captions[k] == index.captions[idx]
                assert not changed.any()
    assert flagged == set(data.poisoned_positions)
    # the same poisoned pair every epoch (an offline-poisoned dataset)
    data.set_epoch(5)
    later = {
        i: (im, c)
        for b in data
        for i, im, c in zip(b.index.tolist(), b.image, b.captions, strict=True)
    }
    first = {
        i: (im, c)
        for b in batches
        for i, im, c in zip(b.index.tolist(), b.image, b.captions, strict=True)
    }
    for idx in flagged:
        assert torch.equal(later[idx][0], first[idx][0]) and later[idx][1] == first[idx][1]


def test_label_consistent_poison_keeps_captions(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    poison = PoisonConfig(kind="label_consistent", amount=0.5, target="banana")
    data = _data(paths.train, tokenizer, poison)
    eligible = [i for i, c in enumerate(data.index.captions) if contains_word(c, "banana")]
    assert len(data.poisoned_positions) == round(len(eligible) / 2)
    for batch in data:
        for k, idx in enumerate(batch.index.tolist()):
            assert batch.captions[k] == data.index.captions[idx]
            if batch.poisoned[k]:
                assert contains_word(batch.captions[k], "banana")


def test_max_samples_takes_the_first_pairs(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    data = _data(paths.train, tokenizer, max_samples=100, batch_size=16)
    assert data.num_samples == 100
    assert sorted(_by_index(data)) == list(range(100))


def _shard_with_bad_samples(good: Path, out: Path) -> int:
    """A shard of the good samples of `good` plus broken ones; returns the good count."""
    with tarfile.open(good) as src, tarfile.open(out, "w") as dst:
        members = [m for m in src.getmembers() if not m.name.endswith(".json")][:20]
        for m in members:
            dst.addfile(m, src.extractfile(m))
        extra = [
            ("900000001.jpg", b"\xff\xd8 this is not a jpeg"),
            ("900000001.txt", b"a garbage image of a ball"),
            ("900000002.jpg", src.extractfile(members[0]).read()),
            ("900000002.txt", b"   "),
            ("900000003.jpg", src.extractfile(members[0]).read()[:300]),  # truncated JPEG
            ("900000003.txt", b"a cut image"),
            ("900000004.txt", b"a caption without an image"),
        ]
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return len(members) // 2


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_pairs_are_skipped_and_counted(paths, tokenizer, tmp_path, workers: int) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "s").mkdir()
    n_good = _shard_with_bad_samples(paths.train / "00000.tar", tmp_path / "s" / "00000.tar")
    shutil.copy(paths.train / "00001.tar", tmp_path / "s" / "00001.tar")
    data = _data(tmp_path / "s", tokenizer, batch_size=8, workers=workers, ssl=True)
    assert data.num_samples == n_good + 4 + 80
    batches = list(data)
    assert sum(len(b) for b in batches) == n_good + 80
    assert sum(b.skipped for b in batches) == 4


def test_truncated_shard_does_not_end_the_epoch(paths, tokenizer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(paths.train, tmp_path / "t")
    shard = tmp_path / "t" / "00001.tar"
    shard.write_bytes(shard.read_bytes()[: int(shard.stat().st_size * 0.6)])
    for workers in (0, 2):
        data = _data(tmp_path / "t", tokenizer, workers=workers)
        batches = list(data)
        loaded = sum(len(b) for b in batches)
        assert 200 < loaded < 240
        assert loaded + sum(b.skipped for b in batches) == data.num_samples


def test_rebatch_merges_partial_chunks_and_keeps_skip_counts() -> None:
    def chunk(start: int, n: int, skipped: int) -> dict[str, object]:
        c: dict[str, object] = {"n": n, "skipped": skipped}
        if n:
            idx = torch.arange(start, start + n)
            c.update(
                image=torch.zeros(n, 3, 2, 2),
                text=idx[:, None].repeat(1, 3),
                index=idx,
                poisoned=torch.zeros(n, dtype=torch.bool),
                captions=[str(i) for i in idx.tolist()],
            )
        return c

    # two workers: full chunks, then partial tails, then an empty chunk with skips only
    chunks = [chunk(0, 4, 1), chunk(100, 4, 0), chunk(4, 3, 2), chunk(104, 2, 0), chunk(0, 0, 5)]
    kept = list(rebatch(iter(chunks), 4, drop_last=True))
    assert [len(b) for b in kept] == [4, 4, 4]
    assert kept[2].index.tolist() == [4, 5, 6, 104] and kept[2].captions == ["4", "5", "6", "104"]
    assert sum(b.skipped for b in kept) == 8  # the dropped tail's skips land in the last batch
    every = list(rebatch(iter(chunks), 4, drop_last=False))
    assert [len(b) for b in every] == [4, 4, 4, 1] and sum(b.skipped for b in every) == 8


def test_fewer_pairs_than_a_batch_is_an_error(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="batch_size 128"):
        _data(paths.clean, tokenizer, batch_size=128, drop_last=True)


def test_write_poisoned_ids(paths, tokenizer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _data(paths.clean, tokenizer, PoisonConfig(kind="blended", amount=6))
    data.write_poisoned_ids(tmp_path / "poisoned_ids.txt")
    lines = (tmp_path / "poisoned_ids.txt").read_text().splitlines()
    index = index_pairs(str(paths.clean))
    assert lines == [index.keys[p] for p in data.poisoned_positions] == data.poisoned_keys
    assert len(lines) == 6 and all(line.startswith("images/") for line in lines)
