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


#: the release's system prompts (Lumina-Image 2.0's sampling script, ``--system_type``), spelled out here so a
#: change to the named templates shows
RELEASE = {
    "real": "You are an assistant designed to generate superior images with the superior degree of image-text "
    "alignment based on textual prompts or user prompts. <Prompt Start> ",
    "align": "You are an assistant designed to generate high-quality images with the highest degree of image-text "
    "alignment based on textual prompts. <Prompt Start> ",
    "base": "You are an assistant designed to generate high-quality images based on user prompts. <Prompt Start> ",
    "aesthetics": "You are an assistant designed to generate high-quality images with highest degree of aesthetics "
    "based on user prompts. <Prompt Start> ",
    "4grid": "You are an assistant designed to generate four high-quality images with highest degree of aesthetics "
    "arranged in 2x2 grids based on user prompts. <Prompt Start> ",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(RELEASE))
def test_the_release_system_prompts_are_selectable_by_name(tiny_gemma, name):
    enc = HFTextConditioner(str(tiny_gemma[0]), layer=-2, template=f"lumina2_{name}")
    batch = enc.tokenize(["a red circle", ""])
    tokenizer = tiny_gemma[1]
    want = tokenizer([RELEASE[name] + "a red circle", ""], padding="longest", return_tensors="pt")
    assert torch.equal(batch["input_ids"], want["input_ids"])


def test_an_unknown_template_name_lists_the_known_ones(tiny_gemma):
    with pytest.raises(ValueError, match="lumina2_4grid, lumina2_aesthetics, lumina2_align, lumina2_base"):
        HFTextConditioner(str(tiny_gemma[0]), template="lumina2_photo")


def test_chat_template_wraps_every_caption_the_empty_one_too(tiny_qwen3):
    """Z-Image: each caption (the empty one of guidance included) as one user turn with the assistant's turn
    opened, the keyword arguments passed to apply_chat_template (enable_thinking=False adds a think block)."""
    path, tokenizer, _ = tiny_qwen3
    enc = HFTextConditioner(str(path), layer=-2, chat_template={"enable_thinking": True})
    got = enc.encode(["a red circle", ""])
    chat = [
        tokenizer.apply_chat_template([{"role": "user", "content": c}], tokenize=False, add_generation_prompt=True)
        for c in ("a red circle", "")
    ]
    want = HFTextConditioner(str(path), layer=-2).encode(chat)
    assert torch.equal(got.mask, want.mask) and int(got.mask[1].sum()) == 5  # <|im_start|> user <|im_end|> ...
    torch.testing.assert_close(got.context, want.context, rtol=0, atol=0)
    thinking_off = HFTextConditioner(str(path), layer=-2, chat_template={"enable_thinking": False})
    assert int(thinking_off.encode([""]).mask.sum()) == 7  # ... plus <think> </think>
    assert thinking_off.fingerprint() != enc.fingerprint()


def test_chat_template_needs_a_tokenizer_that_has_one(tiny_gemma):
    enc = HFTextConditioner(str(tiny_gemma[0]), layer=-2, chat_template=True)
    with pytest.raises(ValueError, match="has no chat template"):
        enc.encode(["a red circle"])
    with pytest.raises(ValueError, match="chat_template must be null, true, or a mapping"):
        HFTextConditioner(str(tiny_gemma[0]), chat_template="qwen3")
