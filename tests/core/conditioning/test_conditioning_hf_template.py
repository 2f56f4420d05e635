"""The hf conditioner's caption template (Lumina-Image 2.0's system prompt) and its separate tokenizer folder."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from lumina_core.conditioning import HFTextConditioner  # noqa: E402

TEMPLATE = "a blue square <Prompt Start> {caption}"


def test_template_wraps_captions_and_leaves_the_empty_caption_empty(tiny_gemma):
    path = tiny_gemma[0]
    plain = HFTextConditioner(str(path), layer=-2)
    wrapped = HFTextConditioner(str(path), layer=-2, template=TEMPLATE)
    got = wrapped.encode(["a red circle", ""])
    want = plain.encode(["a blue square <Prompt Start> a red circle", ""])
    assert torch.equal(got.mask, want.mask)
    torch.testing.assert_close(got.context, want.context, rtol=0, atol=0)
    assert int(got.mask[1].sum()) == int(plain.encode([""]).mask.sum())  # the null caption: no system prompt
    assert wrapped.fingerprint() != plain.fingerprint()  # cached features of one are not the other's


def test_template_without_caption_slot_is_refused(tiny_gemma):
    with pytest.raises(ValueError, match=r"template must hold \{caption\}"):
        HFTextConditioner(str(tiny_gemma[0]), template="a system prompt")


def test_tokenizer_from_its_own_folder(tiny_gemma, tmp_path):
    _, tokenizer, model = tiny_gemma
    model.save_pretrained(tmp_path / "text_encoder")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    enc = HFTextConditioner(str(tmp_path / "text_encoder"), layer=-2, tokenizer=str(tmp_path / "tokenizer"))
    want = HFTextConditioner(str(tiny_gemma[0]), layer=-2).encode(["a red circle"])
    torch.testing.assert_close(enc.encode(["a red circle"]).context, want.context, rtol=0, atol=0)
