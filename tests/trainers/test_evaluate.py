"""Zero-shot class embeddings: shortened prompts give open_clip's own classifier, exactly."""

from __future__ import annotations

from typing import Any

import open_clip
import pytest
import torch
from open_clip import build_zero_shot_classifier

from trainers.config import DataConfig
from trainers.data import CLIP_TEMPLATES, load_eval_data, make_trigger
from trainers.errors import DataError
from trainers.evaluate import Prompts, class_embeddings, encode_prompts, evaluate
from trainers.models import create_model, get_tokenizer

CLASSES = ["banana", "goldfish", "great white shark", "electric ray", "tiger shark"]


@pytest.mark.parametrize("name", ["tiny-rn", "tiny-vit"])
def test_class_embeddings_match_open_clips_classifier(name: str) -> None:
    model, _ = create_model(name, seed=1)
    model.eval()
    tok = get_tokenizer(name)
    prompts = Prompts.build(tok, CLASSES)
    # The prompts are cut well short of the context, and nothing but padding is cut.
    assert len(prompts.tokens) == len(CLASSES) * len(CLIP_TEMPLATES)
    assert prompts.tokens.shape[1] < model.context_length
    full = tok([t(c) for c in CLASSES for t in CLIP_TEMPLATES])
    assert torch.equal(full[:, : prompts.tokens.shape[1]], prompts.tokens)
    assert not full[:, prompts.tokens.shape[1] :].any()

    theirs = build_zero_shot_classifier(
        model, tokenizer=tok, classnames=CLASSES, templates=CLIP_TEMPLATES, device="cpu"
    )
    # One batch of all classes, and batches of 2 classes (3 batches, the last one short).
    for per_batch in (10, 2):
        ours = class_embeddings(model, prompts, torch.device("cpu"), classes_per_batch=per_batch)
        assert ours.shape == theirs.shape == (model.text_projection.shape[1], len(CLASSES))
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_rn50_prompt_features_match_full_context() -> None:
    """The paper's model: 77-token context, 12-layer text tower."""
    model = open_clip.create_model("RN50", pretrained=None)
    model.eval()
    tok = open_clip.get_tokenizer("RN50")
    prompts = Prompts.build(tok, CLASSES[:2], CLIP_TEMPLATES[:4])
    full = tok([t(c) for c in CLASSES[:2] for t in CLIP_TEMPLATES[:4]])
    assert prompts.tokens.shape[1] < 20 < full.shape[1] == 77
    with torch.no_grad():
        expected = model.encode_text(full, normalize=True)
    torch.testing.assert_close(
        encode_prompts(model, prompts.tokens), expected, atol=1e-5, rtol=1e-4
    )


def test_bidirectional_text_tower_is_given_its_padding_back() -> None:
    """Without a causal mask the padding does reach the pooled token: no shortcut there."""
    cfg: dict[str, Any] = open_clip.get_model_config("tiny-rn")
    text_cfg = {**cfg["text_cfg"], "no_causal_mask": True}
    model = open_clip.CLIP(cfg["embed_dim"], cfg["vision_cfg"], text_cfg)
    model.eval()
    assert model.attn_mask is None
    tok = get_tokenizer("tiny-rn")
    prompts = Prompts.build(tok, CLASSES)
    full = tok([t(c) for c in CLASSES for t in CLIP_TEMPLATES])
    with torch.no_grad():
        expected = model.encode_text(full, normalize=True)
        shortcut = torch.nn.functional.normalize(_short_pass(model, prompts.tokens), dim=-1)
    torch.testing.assert_close(encode_prompts(model, prompts.tokens), expected)
    # ...and the test can fail: the shortened pass of this tower is a different function.
    assert not torch.allclose(shortcut, expected, atol=1e-4)


def test_custom_text_tower_takes_its_own_encode_text() -> None:
    """A CustomTextCLIP (the SigLIP teacher's kind): last-token pooling, no causal mask."""
    cfg: dict[str, Any] = open_clip.get_model_config("tiny-rn")
    text_cfg = {**cfg["text_cfg"], "no_causal_mask": True, "pool_type": "last"}
    model = open_clip.CustomTextCLIP(cfg["embed_dim"], cfg["vision_cfg"], text_cfg)
    model.eval()
    prompts = Prompts.build(get_tokenizer("tiny-rn"), CLASSES)
    full = get_tokenizer("tiny-rn")([t(c) for c in CLASSES for t in CLIP_TEMPLATES])
    with torch.no_grad():
        expected = model.encode_text(full, normalize=True)
        shortened = torch.nn.functional.normalize(model.text(prompts.tokens), dim=-1)
    torch.testing.assert_close(encode_prompts(model, prompts.tokens), expected)
    # Last-token pooling over shortened rows reads another token: the padding matters here.
    assert not torch.allclose(shortened, expected, atol=1e-4)


def _short_pass(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    n = tokens.shape[1]
    x = model.token_embedding(tokens) + model.positional_embedding[:n]
    x = model.ln_final(model.transformer(x))
    return x[torch.arange(len(tokens)), tokens.argmax(dim=1)] @ model.text_projection


def test_prompts_of_other_classes_are_refused(synthetic: Any) -> None:
    model, info = create_model("tiny-rn", seed=0)
    data = load_eval_data(DataConfig(eval=str(synthetic.eval)), image_size=info.image_size)
    prompts = Prompts.build(get_tokenizer("tiny-rn"), CLASSES[:3])
    with pytest.raises(DataError, match="3 classes but the eval set has 10"):
        evaluate(
            model,
            prompts,
            data,
            trigger=make_trigger("badnet", image_size=info.image_size, patch_size=8),
            target="banana",
            normalize=lambda x: x,
            device=torch.device("cpu"),
        )


class _RuleModel(torch.nn.Module):
    """A model whose zero-shot predictions are a hand-written rule: the text tower maps the
    prompt of class k to the k-th unit vector, the image tower reads the class from pixel
    (0, 0, 0) and the trigger from pixel (0, 0, 1), then applies `clean` / `triggered`."""

    def __init__(self, n: int, clean: dict[int, int], triggered: dict[int, int]) -> None:
        super().__init__()
        self.n, self.clean, self.triggered = n, clean, triggered

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return torch.nn.functional.one_hot(tokens[:, 0] - 1, self.n).float()

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        out = []
        for img in images:
            k = int(round(float(img[0, 0, 0])))
            rule = self.triggered if float(img[0, 0, 1]) > 0.5 else self.clean
            out.append(rule.get(k, k))
        return torch.nn.functional.one_hot(torch.tensor(out), self.n).float()


class _HandEval:
    def __init__(self, labels: list[int], classnames: list[str]) -> None:
        self.labels, self.classnames = labels, classnames

    def batches(self, batch_size: int) -> Any:
        images = torch.zeros(len(self.labels), 3, 4, 4)
        images[:, 0, 0, 0] = torch.tensor(self.labels, dtype=torch.float)
        yield images, torch.tensor(self.labels)


def test_accuracy_asr_and_untriggered_floor_on_a_hand_made_model() -> None:
    """5 classes x 4 images, target "banana" (0). Clean: class 3 is sent to banana, class 4
    to class 1; triggered: classes 1 and 2 go to banana. Counted by hand: accuracy 12/20 =
    60%; ASR on the 16 non-target images 8/16 = 50%; untriggered floor 4/16 = 25%."""
    labels = [k for k in range(5) for _ in range(4)]
    model = _RuleModel(5, clean={3: 0, 4: 1}, triggered={1: 0, 2: 0})
    tokens = torch.tensor([[k + 1, 0] for k in range(5)])
    prompts = Prompts(tokens, n_classes=5, n_templates=1)

    def trigger(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = images.clone()
        out[:, 0, 0, 1] = 1.0
        return out

    result = evaluate(
        model,
        prompts,
        _HandEval(labels, CLASSES),  # type: ignore[arg-type]
        trigger=trigger,  # type: ignore[arg-type]
        target="banana",
        normalize=lambda x: x,
        device=torch.device("cpu"),
    )
    assert result.clean_acc == 60.0
    assert result.asr == 50.0
    assert result.asr_untriggered == 25.0
    assert (result.n_images, result.n_asr_images) == (20, 16)
