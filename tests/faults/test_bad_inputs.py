"""A catalogue of malformed inputs: each one gives a clear error (or is skipped and counted)
and leaves the store as it was.

Specs and store paths go through the real CLI in-process (`main([...])`: exit code 2 and one
message on stderr naming the file, field or path); data and checkpoints through the
trainers' own readers, loader and checkpoint loader. Where a store is involved, every file
and folder of the test's world (the store, a sweep beside it, a folder that is no store) is
compared before and after: names, sizes, mtimes and bytes.
"""

from __future__ import annotations

import copy
import hashlib
import io
import pickle
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from results.errors import SchemaError
from results.store import StoreWriter, read_epochs
from sweeper.cli import main
from sweeper.plan import load_spec, plan_sweep
from sweeper.plan_io import save_plan
from tests.sweeper.test_launch import tiny_spec
from trainers.checkpoint import load_checkpoint, load_weights, save_checkpoint
from trainers.config import DataConfig, PoisonConfig
from trainers.data import build_train_data, index_pairs, load_eval_data
from trainers.errors import CheckpointError, DataError
from trainers.models import create_model, get_tokenizer

SWEEP = "good-sweep"
SIZE = 32  # the tiny models' image size


def snapshot(root: Path) -> dict[str, tuple[bool, int, int, str]]:
    """Every file and folder under `root`: kind, size, mtime and content hash.

    A folder's mtime changes when an entry is created or removed in it, so even a
    temporary file that was cleaned up again shows.
    """
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        is_file = path.is_file()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if is_file else ""
        out[path.relative_to(root).as_posix()] = (
            path.is_dir(),
            st.st_size if is_file else 0,
            st.st_mtime_ns,
            digest,
        )
    return out


# ------------------------------------------------------------------------ the world


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one real, finished-looking sweep (spec, plan, epochs, trials)."""
    root = tmp_path_factory.mktemp("template")
    spec = tiny_spec(root)
    plan = plan_sweep(load_spec(spec), spec_path=spec)
    writer = StoreWriter(root / "store", SWEEP)
    writer.write_spec(plan.spec_text)
    save_plan(writer.sweep_dir / "plan.json", plan)
    at = datetime(2025, 1, 1, tzinfo=timezone.utc)
    writer.append_epochs(
        [
            {"stage": s, "trial_id": t, "method": "cleanclip", "epoch": e, "clean_acc": 10.0 + e,
             "clean_top5": 50.0, "asr": 90.0 - 40 * e, "written_at": at}
            for s, t in (("pretrain", "pretrain-mmcl"), ("clean", "clean-mmcl-lr=0.001-r0"))
            for e in range(3)
        ]
    )  # fmt: skip
    writer.append_trials(
        [
            {"trial_id": t, "stage": s, "method": "cleanclip", "status": "completed",
             "params": "{}", "written_at": at}
            for s, t in (("pretrain", "pretrain-mmcl"), ("clean", "clean-mmcl-lr=0.001-r0"))
        ]
    )  # fmt: skip
    return root / "store"


@dataclass(frozen=True)
class World:
    root: Path  # everything a command may touch; snapshotted before and after
    store: Path  # <root>/store, holding SWEEP
    outside: Path  # <root>/outside: a whole sweep directory beside the store, not in it
    not_store: Path  # <root>/not-a-store: a folder of unrelated files
    specs: Path  # where the test writes its search spaces (outside root)


@pytest.fixture
def world(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    root = tmp_path / "world"
    shutil.copytree(template, root / "store")
    shutil.copytree(template / SWEEP, root / "outside")
    (root / "not-a-store").mkdir()
    (root / "not-a-store" / "notes.txt").write_text("shopping list\n")
    # Relative sweep paths must not resolve against the project folder by chance.
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    specs = tmp_path / "specs"
    specs.mkdir()
    return World(root, root / "store", root / "outside", root / "not-a-store", specs)


def cli(world: World, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI; returns (exit code, stderr) after checking the world did not change."""
    before = snapshot(world.root)
    code = main(argv)
    err = capsys.readouterr().err
    assert snapshot(world.root) == before, f"{argv} changed the store"
    assert "Traceback" not in err
    return code, err


# ------------------------------------------------------------------------------ specs

Spec = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Spec], Spec]:
    def make(spec: Spec) -> Spec:
        node = spec
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        return spec

    return make


def _drop_pretrain_start_from(checkpoint: str) -> Callable[[Spec], Spec]:
    def make(spec: Spec) -> Spec:
        spec.pop("pretrain")
        spec["start"] = {"checkpoint": checkpoint, "objective": "mmcl"}
        return spec

    return make


def _text(
    replace: tuple[str, str] | None = None, text: str | None = None, prefix: str = ""
) -> Callable[[Spec], str]:
    def make(spec: Spec) -> str:
        if text is not None:
            return text
        dumped = yaml.safe_dump(spec, sort_keys=False)
        assert replace is not None and replace[0] in dumped
        return prefix + dumped.replace(*replace)

    return make


# Ten levels of ten aliases (10^10 values once expanded), for a case to refer to as *x9.
_ANCHORS = "".join(
    f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10) if i else '1.0e-4'}]\n" for i in range(10)
)


SHRINK = {"method": "shrink_perturb", "grid": {"shrink": [0.5, 0], "perturb_sigma": [0.0]}}
# (how to spoil the good spec, overrides on the command line, what the message must name)
BAD_SPECS = {
    "yaml syntax error": (_text(("lr:\n", "lr: [1e-4,\n")), [], ["YAML syntax error"]),
    "unknown key": (_set("clen", {}), [], ["clen: unknown key"]),
    "wrong type": (_set("clean.repeats", "twice"), [], ["clean.repeats:", "'twice'"]),
    "empty grid": (_set("clean.grid", {}), [], ["clean.grid: must not be empty"]),
    "empty value list": (_set("clean.grid.lr", []), [], ["clean.grid.lr: must not be empty"]),
    "lambda 0": (lambda s: {**s, "clean": {**s["clean"], **SHRINK}}, [],
                 ["clean.grid.shrink[1]: must be > 0"]),
    "lambda above 1": (_set("clean.grid", {"shrink": [1.5], "perturb_sigma": [0.0]}),
                       ["clean.method=shrink_perturb"], ["clean.grid.shrink[0]: must be <= 1"]),
    "negative lr": (_set("clean.grid.lr", [1e-4, -1e-3]), [], ["clean.grid.lr[1]: must be > 0"]),
    "missing checkpoint file": (_drop_pretrain_start_from("gone.pt"), [],
                                ["start.checkpoint: no such file 'gone.pt'"]),
    "fractional gpus above one": (_set("clean.resources", {"gpu": 1.5, "cpu": 1}), [],
                                  ["clean.resources.gpu: 1.5"]),
    "zero cpus": (_set("clean.resources", {"cpu": 0}), [], ["clean.resources.cpu: must be > 0"]),
    "duplicate key": (_text(("lr:\n", "lr: [1.0]\n    lr:\n")), [], ["duplicate key 'lr'"]),
    "sweep name with a slash": (_set("name", "../../etc/x"), [], ["name: string should match"]),
    "override of an unknown field": (lambda s: s, ["clean.trial.optim.learning_rate=1e-3"],
                                     ["clean.trial.optim.learning_rate: unknown key"]),
    "malformed override": (lambda s: s, ["clean..lr=1"], ["expected dotted.key=value"]),
    "unknown method": (_set("clean.method", "cleanest"), [], ["unknown method 'cleanest'"]),
    "unknown grid parameter": (_set("clean.grid", {"learning_rate": [1e-3]}), [],
                               ["clean.grid.learning_rate: unknown parameter"]),
    "nothing to run": (lambda s: {"name": "x"}, [], ["nothing to run"]),
    "empty file": (_text(text=""), [], ["the file is empty"]),
    "top level is a list": (_text(text="- name: x\n"), [], ["must be a mapping"]),
    # Validation with limits (issue "Every fault ends in a true status").
    "anchor bomb in the grid": (_text(("lr:\n    - 0.0001\n    - 0.001\n", "lr: *x9\n"), prefix=_ANCHORS),
                                [], ["the YAML document is too large"]),
    "lr of 1e400 (inf)": (_text(("- 0.001\n", "- 1e400\n")), [],
                          ["clean.grid.lr[1]: must be a finite number (got inf"]),
    "lr of 'inf'": (_set("clean.grid.lr", [1e-4, "inf"]), [],
                    ["clean.grid.lr[1]: must be a finite number (got 'inf')"]),
    "lr of nan": (_set("clean.grid.lr", [float("nan")]), [],
                  ["clean.grid.lr[0]: must be a finite number (got nan)"]),
    "epochs true": (_set("clean.trial.optim.epochs", True), [],
                    ["clean.trial.optim.epochs: must be a number, not a boolean (got true)"]),
    "epochs true on the command line": (lambda s: s, ["pretrain.trial.optim.epochs=true"],
                                        ["pretrain.trial.optim.epochs: must be a number, not a boolean"]),
    "target label not an eval class": (_set("pretrain.trial.poison.target", "cat"), [],
                                       ["pretrain.trial.poison.target: target label 'cat' is not a class"]),
    "more trials than max_trials": (lambda s: s, ["max_trials=2"],
                                    ["max_trials: the search space plans 3 trials", "max_trials=3"]),
}  # fmt: skip


@pytest.mark.parametrize(
    ("spoil", "overrides", "names"),
    [pytest.param(*case, id=name) for name, case in BAD_SPECS.items()],
)
def test_bad_spec_is_refused_before_anything_is_written(
    world: World,
    spoil: Callable[[Spec], Spec | str],
    overrides: list[str],
    names: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = yaml.safe_load(tiny_spec(world.specs, name="good").read_text())
    made = spoil(copy.deepcopy(good))
    path = world.specs / "bad.yaml"
    path.write_text(made if isinstance(made, str) else yaml.safe_dump(made, sort_keys=False))
    code, err = cli(world, ["launch", str(path), "--store", str(world.store), *overrides], capsys)
    assert code == 2
    assert err.startswith(f"sweeper launch: error: {path}"), err
    for name in names:
        assert name in err, err
    if "YAML syntax error" in err:  # a parse error also names the line and column
        assert re.match(rf"sweeper launch: error: {re.escape(str(path))}:\d+:\d+: ", err), err


def test_the_good_spec_of_the_catalogue_is_good(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: unspoilt, the catalogue's spec validates (so each case fails for its own
    reason)."""
    path = tiny_spec(world.specs, name="good")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_missing_spec_file(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    path = world.specs / "nowhere.yaml"
    code, err = cli(world, ["launch", str(path), "--store", str(world.store)], capsys)
    assert code == 2 and f"{path}: no such search-space file" in err


def test_python_tag_is_refused_by_the_safe_loader(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = world.specs / "pwned"
    path = world.specs / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    assert yaml.unsafe_load(path.read_text()) and marker.exists()  # the tag is live code...
    marker.unlink()
    code, err = cli(world, ["launch", str(path), "--store", str(world.store)], capsys)
    assert code == 2 and f"{path}:1:7: YAML syntax error" in err, err
    assert "python/object/apply" in err
    assert not marker.exists()  # ...which the spec loader never ran


# ------------------------------------------------------------------------ store paths


def _strip_column(store: Path, column: str) -> Path:
    """Rewrite the sweep's epoch part without `column`, as a foreign tool might."""
    (part,) = (store / SWEEP / "epochs").glob("part-*.parquet")
    pq.write_table(pq.read_table(part).drop_columns([column]), part)
    return part


def _garbage_part(store: Path) -> Path:
    part = store / SWEEP / "trials" / "part-00000000000000000000-1-deadbeef.parquet"
    part.write_bytes(b"PAR1 this is not parquet")
    return part


# (command, how to spoil the world first -> a path the message must name, what it must say)
BAD_STORE_PATHS: dict[str, tuple[list[str], Callable[[World], Path | None], list[str]]] = {
    "report: --store is no store": (["report", SWEEP, "--store", "{not_store}"], lambda w: None,
                                    ["no sweep 'good-sweep' in store {not_store}"]),
    "status: --store is no store": (["status", SWEEP, "--store", "{not_store}"], lambda w: None,
                                    ["no sweep 'good-sweep' in store {not_store}"]),
    "resume: --store is no store": (["resume", SWEEP, "--store", "{not_store}"], lambda w: None,
                                    ["no sweep 'good-sweep' in store {not_store}"]),
    "report: --store does not exist": (["report", SWEEP, "--store", "{root}/nope"],
                                       lambda w: None, ["store directory {root}/nope does not exist"]),
    "report: --store is a file": (["report", SWEEP, "--store", "{not_store}/notes.txt"],
                                  lambda w: None, ["{not_store}/notes.txt is a file, not a dir"]),
    "report: store passed as a sweep": (["report", "{store}", "--store", "{store}"],
                                        lambda w: None, ["{store} is a store, not a sweep"]),
    "status: id escapes the store": (["status", "../outside", "--store", "{store}"],
                                     lambda w: None, ["../outside"]),
    "status: id escapes through a sweep": (["status", f"{SWEEP}/../../outside", "--store", "{store}"],
                                           lambda w: None, ["../outside"]),
    "resume: id escapes the store": (["resume", "../outside", "--store", "{store}"],
                                     lambda w: None, ["'../outside' is neither a sweep directory "
                                                      "nor a sweep id of store {store}"]),
    "report: id escapes the store": (["report", "../outside", "--store", "{store}"],
                                     lambda w: None, ["../outside"]),
    "report: a part lacks a column": (["report", SWEEP, "--store", "{store}"],
                                      lambda w: _strip_column(w.store, "epoch"),
                                      ["lacks the required column 'epoch'"]),
    "status: a part lacks a column": (["status", SWEEP, "--store", "{store}"],
                                      lambda w: _strip_column(w.store, "asr"),
                                      ["lacks the required column 'asr'"]),
    "status: a part is not parquet": (["status", SWEEP, "--store", "{store}"],
                                      lambda w: _garbage_part(w.store),
                                      ["not a whole Parquet file"]),
}  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "spoil", "says"),
    [
        pytest.param(
            *case,
            id=name,
        )
        for name, case in BAD_STORE_PATHS.items()
    ],
)
def test_bad_store_path_is_refused_and_nothing_changes(
    world: World,
    argv: list[str],
    spoil: Callable[[World], Path | None],
    says: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = {"root": world.root, "store": world.store, "not_store": world.not_store}
    spoilt = spoil(world)
    code, err = cli(world, [a.format(**names) for a in argv], capsys)
    assert code == 2, err
    assert err.startswith(f"sweeper {argv[0]}: error: "), err
    for text in says:
        assert text.format(**names) in err, err
    if spoilt is not None:
        assert str(spoilt) in err, err  # the message names the bad file
    assert not (world.outside / "report.html").exists()


def test_writer_refuses_a_sweep_id_that_escapes(world: World) -> None:
    before = snapshot(world.root)
    for sweep in ("../outside", f"{SWEEP}/../../x", "..", "/tmp/x", "a/b"):
        with pytest.raises(SchemaError, match="not usable as a directory name"):
            StoreWriter(world.store, sweep)
    assert snapshot(world.root) == before


def test_the_world_itself_reads_fine(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the store cases: unspoilt, the same commands succeed."""
    assert read_epochs(world.store, [SWEEP]).num_rows == 6
    assert main(["status", SWEEP, "--store", str(world.store)]) == 0
    assert main(["status", str(world.outside)]) == 0  # a sweep *path* is fine
    assert "6 epoch rows" in capsys.readouterr().out


# ------------------------------------------------------------------------------- data


def image_bytes(mode: str = "RGB", color: Any = (200, 30, 30), fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 30), color).save(buf, fmt)
    return buf.getvalue()


def good_pair(i: int) -> dict[str, bytes]:
    return {"jpg": image_bytes(color=(10 * i, 100, 100)), "txt": f"a photo of a dog {i}".encode()}


def write_shard(path: Path, samples: list[dict[str, bytes]]) -> Path:
    """A WebDataset shard: sample i is `{i:05d}.<ext>` members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for i, members in enumerate(samples):
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def tokenizer() -> Callable[[list[str]], torch.Tensor]:
    return get_tokenizer("tiny-rn")


def one_epoch(train: Path, tokenizer: Callable[[list[str]], torch.Tensor]) -> dict[str, Any]:
    """Every pair one epoch yields, in order: what a trial would train on."""
    data = build_train_data(
        DataConfig(train=str(train), batch_size=2),
        PoisonConfig(),
        image_size=SIZE,
        tokenizer=tokenizer,
        ssl=False,
        seed=0,
        drop_last=False,
        shuffle=False,
    )
    batches = list(data)
    images = {int(i): b.image[k] for b in batches for k, i in enumerate(b.index.tolist())}
    return {
        "images": images,
        "skipped": sum(b.skipped for b in batches),
        "shapes": {tuple(b.image.shape[1:]) for b in batches},
        "indexed": len(data.index),
    }


# (the fourth pair of a shard whose first three are good; None: it must be skipped and
# counted, else the RGB value its pixels must decode to)
BAD_PAIRS: dict[str, tuple[dict[str, bytes], tuple[int, int, int] | None]] = {
    "corrupt image member": ({"jpg": b"\xff\xd8\xff\xe0 not a jpeg", "txt": b"a dog"}, None),
    "truncated image member": ({"jpg": image_bytes()[:60], "txt": b"a dog"}, None),
    "caption missing": ({"jpg": image_bytes()}, None),
    "caption empty": ({"jpg": image_bytes(), "txt": b"  \n"}, None),
    "image missing": ({"txt": b"a dog without its photo"}, None),
    "image of an unread format (tif)": ({"tif": image_bytes(fmt="TIFF"), "txt": b"a dog"}, None),
    "grayscale image": ({"png": image_bytes("L", 128, "PNG"), "txt": b"a dog"}, (128, 128, 128)),
    "grayscale with alpha": ({"png": image_bytes("LA", (90, 7), "PNG"), "txt": b"a dog"},
                             (90, 90, 90)),
    "CMYK image": ({"jpg": image_bytes("CMYK", (0, 255, 255, 0)), "txt": b"a dog"}, (255, 0, 0)),
    "RGBA image": ({"png": image_bytes("RGBA", (0, 0, 255, 0), "PNG"), "txt": b"a dog"},
                   (0, 0, 255)),
    "1-bit image": ({"png": image_bytes("1", 1, "PNG"), "txt": b"a dog"}, (255, 255, 255)),
}  # fmt: skip


@pytest.mark.parametrize(
    ("pair", "rgb"), [pytest.param(*case, id=name) for name, case in BAD_PAIRS.items()]
)
def test_bad_pair_in_a_shard_is_skipped_and_counted_or_converted(
    tmp_path: Path,
    tokenizer: Callable[[list[str]], torch.Tensor],
    pair: dict[str, bytes],
    rgb: tuple[int, int, int] | None,
) -> None:
    write_shard(tmp_path / "shards" / "00000.tar", [good_pair(i) for i in range(3)] + [pair])
    got = one_epoch(tmp_path / "shards", tokenizer)
    assert got["indexed"] == 4
    assert got["shapes"] == {(3, SIZE, SIZE)}
    if rgb is None:
        assert sorted(got["images"]) == [0, 1, 2] and got["skipped"] == 1
    else:
        assert sorted(got["images"]) == [0, 1, 2, 3] and got["skipped"] == 0
        pixel = (got["images"][3][:, SIZE // 2, SIZE // 2] * 255).round().tolist()
        assert pixel == list(rgb)


def test_truncated_tar_keeps_what_it_can_and_counts_the_rest(
    tmp_path: Path, tokenizer: Callable[[list[str]], torch.Tensor]
) -> None:
    shard = write_shard(tmp_path / "shards" / "00000.tar", [good_pair(i) for i in range(6)])
    data = shard.read_bytes()
    shard.write_bytes(data[: int(len(data) * 0.6)])  # cut inside a member
    index = index_pairs(str(tmp_path / "shards"))
    assert index.problems and str(shard) in index.problems[0]
    got = one_epoch(tmp_path / "shards", tokenizer)
    assert 1 <= len(got["images"]) < 6
    # Every indexed pair is either trained on or counted as skipped.
    assert len(got["images"]) + got["skipped"] == got["indexed"]


def test_csv_row_whose_image_is_missing_is_skipped_and_counted(
    tmp_path: Path, tokenizer: Callable[[list[str]], torch.Tensor]
) -> None:
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(good_pair(i)["jpg"])
    rows = [f"{i}.jpg,a photo of a dog {i}" for i in range(3)] + ["gone.jpg,a photo of a cat"]
    (tmp_path / "train.csv").write_text("image,caption\n" + "\n".join(rows) + "\n")
    got = one_epoch(tmp_path / "train.csv", tokenizer)
    assert sorted(got["images"]) == [0, 1, 2] and got["skipped"] == 1


def _csv(text: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / "train.csv").write_bytes(text)
        return tmp / "train.csv"

    return make


def _folder_of(*names: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / "shards").mkdir()
        for name in names:
            (tmp / "shards" / name).write_text("not a shard\n")
        return tmp / "shards"

    return make


def _eval(
    classes: list[str], images: bool = True, names: str | None = None
) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = tmp / "eval"
        root.mkdir()
        for c in classes:
            (root / c).mkdir()
            if images:
                (root / c / "0.png").write_bytes(image_bytes(fmt="PNG"))
        if names is not None:
            (root / "classnames.txt").write_text(names)
        return root

    return make


# (what to build, how the trainers read it, what the DataError must say; {path} is the
# built path)
BAD_DATA: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "empty CSV": (_csv(b""), "train", "CSV {path} needs columns 'image' and 'caption' (found: none)"),
    "CSV with a header only": (_csv(b"image,caption\n"), "train", "no image-text samples in {path}"),
    "CSV without a caption column": (_csv(b"image,text\n0.jpg,a dog\n"), "train",
                                     "(found: image, text)"),
    "CSV that is not UTF-8": (_csv("image,caption\n0.jpg,caf\xe9\n".encode("latin-1")), "train",
                              "cannot read the training CSV {path}"),
    "shard folder without shards": (_folder_of("notes.txt"), "train",
                                    "no .tar shards in the folder {path}"),
    "empty shard": (lambda t: write_shard(t / "s" / "0.tar", []).parent, "train",
                    "no image-text samples in {path}"),
    "eval folder without classes": (_eval([]), "eval", "eval folder {path} has no class subfolders"),
    "eval classes without images": (_eval(["cat", "dog"], images=False), "eval",
                                    "eval folder {path} has class subfolders but no images"),
    "class names count mismatch": (_eval(["cat", "dog"], names="cat\ndog\nbanana\n"), "eval",
                                   "lists 3 class names but the eval folder {path} has 2"),
    "eval folder missing": (lambda t: t / "no-eval", "eval", "eval folder {path} does not exist"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("build", "kind", "says"), [pytest.param(*case, id=name) for name, case in BAD_DATA.items()]
)
def test_bad_data_is_a_data_error_naming_the_path(
    tmp_path: Path,
    tokenizer: Callable[[list[str]], torch.Tensor],
    build: Callable[[Path], Path],
    kind: str,
    says: str,
) -> None:
    path = build(tmp_path)
    with pytest.raises(DataError) as caught:
        if kind == "train":
            one_epoch(path, tokenizer)
        else:
            load_eval_data(DataConfig(eval=str(path)), image_size=SIZE)
    assert says.format(path=path) in str(caught.value)


# ------------------------------------------------------------------------ checkpoints


class _Opens:
    """Pickles as a call to `open(marker, "w")`: loading it runs code, unless refused."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _NotWeights:
    pass


@pytest.fixture(scope="module")
def tiny_rn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = create_model("tiny-rn", seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-rn.pt"
    return save_checkpoint(path, model, model_name="tiny-rn", config={}, meta={})


def _cut(fraction: float) -> Callable[[Path, Path], Path]:
    def make(good: Path, tmp: Path) -> Path:
        data = good.read_bytes()
        (tmp / "cut.pt").write_bytes(data[: int(len(data) * fraction)])
        return tmp / "cut.pt"

    return make


def _written(data: bytes) -> Callable[[Path, Path], Path]:
    def make(good: Path, tmp: Path) -> Path:
        (tmp / "s.pt").write_bytes(data)
        return tmp / "s.pt"

    return make


def _saved(obj: Any, *, plain_pickle: bool = False) -> Callable[[Path, Path], Path]:
    def make(good: Path, tmp: Path) -> Path:
        path = tmp / "obj.pt"
        if plain_pickle:
            path.write_bytes(pickle.dumps(obj))
        else:
            torch.save(obj, path)
        return path

    return make


# (how to make the bad file from a good tiny-rn checkpoint, what the error must say)
BAD_CHECKPOINTS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "truncated file": (_cut(0.5), "truncated, corrupt"),
    "cut to its header": (_cut(0.02), "truncated, corrupt"),
    "empty file": (_cut(0.0), "truncated, corrupt"),
    "pickle of an object": (_saved(_NotWeights(), plain_pickle=True), "weights_only=True"),
    "torch.save of a list": (_saved(["not", "weights"]), "holds a list, not model weights"),
    "dict without tensors": (_saved({"lr": 1e-3, "epochs": 3}), "holds a dict, not model weights"),
    "YAML named .pt": (_written(b"name: x\n"), "could not be read"),
}  # fmt: skip


# torch warns that a plain pickle uses a newer protocol than its own files, then refuses it.
_PLAIN_PICKLE_WARNING = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")


@_PLAIN_PICKLE_WARNING
@pytest.mark.parametrize(
    ("make", "says"), [pytest.param(*case, id=name) for name, case in BAD_CHECKPOINTS.items()]
)
def test_bad_checkpoint_is_a_checkpoint_error_naming_the_file(
    tmp_path: Path, tiny_rn_checkpoint: Path, make: Callable[[Path, Path], Path], says: str
) -> None:
    path = make(tiny_rn_checkpoint, tmp_path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert f"checkpoint {path} " in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize("bare", [False, True], ids=["sweeper checkpoint", "bare state dict"])
def test_checkpoint_of_another_architecture(
    tmp_path: Path, tiny_rn_checkpoint: Path, bare: bool
) -> None:
    path = tiny_rn_checkpoint
    if bare:  # an open_clip-style state dict: no model name to compare, so the shapes decide
        path = tmp_path / "bare.pt"
        torch.save(load_checkpoint(tiny_rn_checkpoint).state_dict, path)
    model, _ = create_model("tiny-vit", seed=0)
    with pytest.raises(CheckpointError) as caught:
        load_weights(model, load_checkpoint(path), model_name="tiny-vit")
    text = str(caught.value)
    assert str(path) in text
    assert ("holds a 'tiny-rn' model" in text) if not bare else ("another architecture" in text)


@_PLAIN_PICKLE_WARNING
@pytest.mark.parametrize("how", ["torch.save", "torch.save legacy format", "pickle.dump"])
def test_pickled_code_never_runs_when_a_checkpoint_loads(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"state_dict": _Opens(marker)}
    path = tmp_path / "evil.pt"
    if how == "pickle.dump":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=how == "torch.save")
    with pytest.raises(CheckpointError, match=f"checkpoint {path} could not be read"):
        load_checkpoint(path)
    assert not marker.exists()
    # The control: the same bytes under a full unpickler do run the code.
    if how == "pickle.dump":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()
