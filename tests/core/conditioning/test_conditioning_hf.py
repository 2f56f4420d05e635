"""The `hf` conditioner on a randomly initialised tiny Gemma (decoder LM) and a tiny BERT (encoder), offline."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from fixtures.text_encoders import CORPUS, word_tokenizer  # noqa: E402  (tiny_gemma, tiny_bert: fixtures)

from lumina_core.conditioning import CachedConditioner, HFTextConditioner  # noqa: E402
from lumina_core.registry import CONDITIONERS  # noqa: E402


def _reference_hidden(model, tok, texts, layer, padding_side="right", max_length=256):
    tok.padding_side = padding_side
    batch = tok(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return out.hidden_states[layer], batch["attention_mask"].bool()


def test_gemma_uses_second_to_last_hidden_state(tiny_gemma):
    path, tok, model = tiny_gemma
    cond = CONDITIONERS.build({"name": "hf", "params": {"path": str(path)}})
    assert cond.is_decoder and cond.layer == -2 and cond.dim == 32
    assert cond.kind == "text" and cond.null_value == "" and not cond.trainable
    assert list(cond.parameters()) == []
    texts = CORPUS[:3] + [""]
    out = cond.encode(texts)
    ref, mask = _reference_hidden(model, tok, texts, -2)
    assert torch.equal(out.mask, mask)
    torch.testing.assert_close(out.context[mask], ref[mask], atol=1e-5, rtol=1e-5)
    last, _ = _reference_hidden(model, tok, texts, -1)
    assert not torch.allclose(out.context[mask], last[mask], atol=1e-3)  # it is not the last layer
    assert (out.context[~mask] == 0).all()
    assert out.mask[3].sum() == 1  # "" -> <bos> only


def test_gemma_padding_side_and_max_length(tiny_gemma):
    path, tok, model = tiny_gemma
    cond = HFTextConditioner(str(path), padding_side="left", max_length=4)
    texts = [CORPUS[3], "a red"]
    out = cond.encode(texts)
    assert out.context.shape == (2, 4, 32)
    assert out.mask.tolist() == [[True] * 4, [False, True, True, True]]
    ref, mask = _reference_hidden(model, tok, texts, -2, padding_side="left", max_length=4)
    torch.testing.assert_close(out.context[mask], ref[mask], atol=1e-5, rtol=1e-5)
    right = HFTextConditioner(str(path), padding_side="right", max_length=4).encode(texts)
    assert right.mask.tolist() == [[True] * 4, [True, True, True, False]]


def test_layer_override_and_bad_layer(tiny_gemma):
    path, tok, model = tiny_gemma
    cond = HFTextConditioner(str(path), layer=1)
    out = cond.encode(CORPUS[:2])
    ref, mask = _reference_hidden(model, tok, CORPUS[:2], 1)
    torch.testing.assert_close(out.context[mask], ref[mask], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        HFTextConditioner(str(path), layer=9)


def test_bfloat16_weights_give_float32_features(tiny_gemma):
    path, _, _ = tiny_gemma
    cond = HFTextConditioner(str(path), dtype="bfloat16")
    out = cond.encode(CORPUS[:2])
    assert out.context.dtype == torch.float32
    ref = HFTextConditioner(str(path)).encode(CORPUS[:2])
    torch.testing.assert_close(out.context, ref.context, atol=0.1, rtol=0.1)
    with pytest.raises(ValueError, match="unknown dtype"):
        HFTextConditioner(str(path), dtype="float8")


def test_pad_to_multiple_of_and_cache(tiny_gemma):
    path, _, _ = tiny_gemma
    cond = HFTextConditioner(str(path), pad_to_multiple_of=8)
    out = cond.encode(CORPUS[:2])
    assert out.context.shape[1] == 8
    cached = CachedConditioner(cond)
    got = cached.encode(CORPUS[:2])
    assert torch.equal(got.mask, out.mask)
    torch.testing.assert_close(got.context, out.context, atol=1e-6, rtol=0)


def test_encoder_model_uses_last_hidden_state(tiny_bert):
    path, tok, model = tiny_bert
    cond = HFTextConditioner(str(path))
    assert not cond.is_decoder and cond.layer == -1 and cond.dim == 24
    out = cond.encode(CORPUS[:2])
    with torch.no_grad():
        batch = tok(CORPUS[:2], padding="longest", return_tensors="pt")
        ref = model(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(out.context[mask], ref[mask], atol=1e-5, rtol=1e-5)
    forced = HFTextConditioner(str(path), architecture="decoder")
    assert forced.layer == -2


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Nothing is downloaded"):
        HFTextConditioner(str(tmp_path / "no_such_model"))
    with pytest.raises(ValueError, match="padding_side"):
        HFTextConditioner(str(tmp_path), padding_side="top")


def test_copies_reload_lazily(tiny_gemma):
    import copy

    path, _, _ = tiny_gemma
    cond = HFTextConditioner(str(path))
    ref = cond.encode(CORPUS[:2])
    twin = copy.deepcopy(cond)
    assert cond.loaded and not twin.loaded  # the frozen model is not duplicated
    got = twin.encode(CORPUS[:2])
    torch.testing.assert_close(got.context, ref.context)


def test_caption_with_no_tokens_becomes_one_zero_token(tiny_bert, tmp_path):
    _, _, model = tiny_bert
    bare = word_tokenizer(bos=False)  # no special tokens: "" tokenizes to nothing
    model.save_pretrained(tmp_path)
    bare.save_pretrained(tmp_path)
    cond = HFTextConditioner(str(tmp_path))
    out = cond.encode(["", "a red circle"])
    assert out.mask.tolist() == [[True, False, False], [True, True, True]]
    assert (out.context[0] == 0).all()
    only_empty = cond.encode(["", ""])
    assert (
        only_empty.context.shape == (2, 1, 24) and only_empty.mask.all() and (only_empty.context == 0).all()
    )
