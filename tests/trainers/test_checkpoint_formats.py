"""Weights from outside sweeper: OpenAI's TorchScript CLIP files and open_clip state dicts
(.bin, .pt, .safetensors), each made here from a tiny model, loaded safely and strictly."""

from __future__ import annotations

import warnings
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from trainers.checkpoint import load_checkpoint, load_weights
from trainers.errors import CheckpointError
from trainers.models import create_model, register_tiny_models, uses_quick_gelu


def _script(model: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        torch.jit.script(model).save(str(path))
    return path


def _openai_like(quick_gelu: bool) -> nn.Module:
    """A tiny CLIP shaped like OpenAI's release: QuickGELU, fp16 weights, and the three
    Python ints OpenAI's TorchScript files keep in their state dict."""
    register_tiny_models()
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-rn", pretrained=None, force_quick_gelu=quick_gelu)
    for name in ("input_resolution", "context_length", "vocab_size"):
        if hasattr(model, name):
            delattr(model, name)  # open_clip keeps two of them as plain ints
        model.register_buffer(name, torch.tensor(32))
    return model.half()


def _same_weights(model: nn.Module, source: nn.Module) -> None:
    want = {k: v for k, v in source.state_dict().items() if k in model.state_dict()}
    got = model.state_dict()
    assert set(want) == set(got)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v.to(got[k].dtype), rtol=0, atol=0, msg=k)


def test_openai_torchscript_file_loads_into_a_quickgelu_model(tmp_path: Path) -> None:
    source = _openai_like(quick_gelu=True)
    path = _script(source, tmp_path / "RN50.pt")
    with pytest.raises(RuntimeError, match="TorchScript"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=True)  # what the old loader did
    ckpt = load_checkpoint(path)
    assert ckpt.model_name is None and ckpt.quick_gelu is True
    assert not {"input_resolution", "context_length", "vocab_size", "attn_mask"} & set(
        ckpt.state_dict
    )
    target = open_clip.create_model("tiny-rn", pretrained=None, force_quick_gelu=True)
    assert uses_quick_gelu(target)
    load_weights(target, ckpt, model_name="tiny-rn-quickgelu")
    _same_weights(target, source)
    assert next(target.parameters()).dtype == torch.float32  # fp16 weights, fp32 model


def test_openai_weights_in_a_gelu_model_are_an_error(tmp_path: Path) -> None:
    path = _script(_openai_like(quick_gelu=True), tmp_path / "RN50.pt")
    model, _ = create_model("tiny-rn", seed=1)
    with pytest.raises(CheckpointError) as caught:
        load_weights(model, load_checkpoint(path), model_name="tiny-rn")
    text = str(caught.value)
    assert str(path) in text and "QuickGELU" in text and "model.name: tiny-rn-quickgelu" in text


def test_torchscript_of_a_gelu_model_loads(tmp_path: Path) -> None:
    source, _ = create_model("tiny-rn", seed=0)
    ckpt = load_checkpoint(_script(source, tmp_path / "scripted.pt"))
    assert ckpt.quick_gelu is False
    model, _ = create_model("tiny-rn", seed=1)
    load_weights(model, ckpt, model_name="tiny-rn")
    _same_weights(model, source)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth"])
def test_open_clip_state_dict_loads(tmp_path: Path, suffix: str) -> None:
    source, _ = create_model("tiny-rn", seed=0)
    path = tmp_path / f"open_clip_pytorch_model{suffix}"
    torch.save(source.state_dict(), path)
    model, _ = create_model("tiny-rn", seed=1)
    ckpt = load_checkpoint(path)
    assert ckpt.model_name is None and ckpt.quick_gelu is None
    load_weights(model, ckpt, model_name="tiny-rn")
    _same_weights(model, source)


def test_safetensors_state_dict_loads(tmp_path: Path) -> None:
    source, _ = create_model("tiny-rn", seed=0)
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model, _ = create_model("tiny-rn", seed=1)
    load_weights(model, load_checkpoint(path), model_name="tiny-rn")
    _same_weights(model, source)


def test_safetensors_of_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    source, _ = create_model("tiny-rn", seed=0)
    path = tmp_path / "rn.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model, _ = create_model("tiny-vit", seed=0)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} does not fit"):
        load_weights(model, load_checkpoint(path), model_name="tiny-vit")


@pytest.mark.parametrize("name", ["bad.safetensors", "bad-torchscript.pt"])
def test_corrupt_files_name_their_path(tmp_path: Path, name: str) -> None:
    source, _ = create_model("tiny-rn", seed=0)
    good = tmp_path / f"good-{name}"
    if name.endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(good))
    else:
        _script(source, good)
    bad = tmp_path / name
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {bad} could not be read"):
        load_checkpoint(bad)


def test_missing_file_names_the_formats(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist.*safetensors.*OpenAI"):
        load_checkpoint(tmp_path / "RN50.pt")


@pytest.mark.parametrize(
    "content",
    [b"this is not a checkpoint" * 100, b"\x80\x02}q\x00", bytes(range(256)) * 4],
    ids=["text", "cut-pickle", "bytes"],
)
def test_bytes_that_are_no_checkpoint_are_a_checkpoint_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_a_full_disk_leaves_no_half_written_checkpoint(tmp_path: Path) -> None:
    import subprocess

    from trainers.checkpoint import save_checkpoint

    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        model = nn.Linear(256, 256)  # 257 KiB of weights: more than the disk holds
        with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*m\.pt"):
            save_checkpoint(disk / "m.pt", model, model_name="x", config={}, meta={})
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)
