"""A given first view (image-to-multi-view): TokenBatch.given in the flow objective and in generation, the
plugin's given-view tokens and shape descriptors, and a trained model whose views fit the given one."""

import tempfile
from pathlib import Path

import pytest
import torch

from lumina_core.flow import FlowMatching
from lumina_core.model import LuminaModel, NextDiTConfig
from lumina_core.sampling import generate
from lumina_core.testing import PluginConformance
from lumina_core.tokens import Condition, TokenBatch
from lumina_modalities.multiview import MultiviewPlugin, MultiviewScenes
from lumina_modalities.multiview.metrics import hull_consistency, iou, object_like, silhouette, to01
from lumina_modalities.multiview.plugin import cameras_of, given_from_shape

TINY = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, multiple_of=32)


def _scenes(views=3, length=4, **kw):
    return MultiviewScenes(views=views, size=16, length=length, supersample=1, condition="none", **kw)


def _png_of_first_view() -> str:
    from PIL import Image

    x = _scenes()[0]["sample"][0, :3]
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    path = Path(tempfile.mkdtemp(prefix="mv_given_")) / "view0.png"
    Image.fromarray(arr).save(path)
    return str(path)


GIVEN_PNG = _png_of_first_view()


# -- the core contract ---------------------------------------------------------------------------------------
def test_given_is_padded_selected_and_checked():
    toks = [torch.randn(6, 4), torch.randn(3, 4)]
    pos = [torch.arange(6.0)[:, None], torch.arange(3.0)[:, None]]
    given = [torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool), torch.tensor([1, 0, 0], dtype=torch.bool)]
    b = TokenBatch.from_sequences(toks, pos, [(6,), (3,)], given=given)
    assert b.given.tolist() == [
        [True, True, False, False, False, False],
        [True, False, False, False, False, False],
    ]
    assert torch.equal(b.with_tokens(torch.zeros_like(b.tokens)).given, b.given)
    assert torch.equal(b.select([1]).given, b.given[1:, :3]) and torch.equal(b.to("cpu").given, b.given)
    with pytest.raises(ValueError, match="given must be a bool tensor"):
        TokenBatch(b.tokens, b.positions, b.mask, b.shapes, given=torch.zeros(2, 6))
    with pytest.raises(ValueError, match="one \\(L_i,\\) bool tensor per sample"):
        TokenBatch.from_sequences(toks, pos, [(6,), (3,)], given=given[:1])


class _Recorder:
    """A velocity model whose prediction is a free tensor, recording the batch it was shown."""

    def __init__(self, shape):
        self.pred = torch.zeros(shape, requires_grad=True)
        self.seen = None

    def velocity(self, batch, t, cond, task=None):
        self.seen = batch.tokens.detach().clone()
        return self.pred


def test_flow_objective_keeps_given_tokens_clean_and_ungraded():
    x1 = torch.randn(2, 5, 3)
    given = torch.zeros(2, 5, dtype=torch.bool)
    given[:, :2] = True
    batch = TokenBatch(x1, torch.zeros(2, 5, 1), torch.ones(2, 5, dtype=torch.bool), [(5,)] * 2, given=given)
    model = _Recorder(x1.shape)
    loss, _ = FlowMatching().loss(model, "t", batch, Condition(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.seen[:, :2], x1[:, :2])  # given tokens are the data at any t
    assert not torch.allclose(model.seen[:, 2:], x1[:, 2:])  # the others are noised
    loss.backward()
    assert model.pred.grad[:, :2].abs().max() == 0  # the given tokens are not graded
    assert model.pred.grad[:, 2:].abs().min() > 0


# -- the plugin ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("camera,width", [("plucker", 6 * 16 + 1), ("matrix", 13), ("none", 1)])
def test_given_view_tokens_flag_and_layout(camera, width):
    plugin = MultiviewPlugin(views=3, size=16, patch=4, camera=camera, given_views=1)
    x = _scenes()[0]["sample"]
    batch = plugin.tokenize([x])
    assert plugin.adapter_spec().token_cond_dim == width == batch.token_cond.shape[-1]
    assert batch.given[0].tolist() == [True] * 16 + [False] * 32  # view 0's 4 x 4 tokens
    assert torch.equal(batch.token_cond[0, :, -1], batch.given[0].float())  # the flag the model sees
    shape = plugin.sample_shape(x)
    assert torch.equal(given_from_shape(shape)[0], x[0, :3])
    layout = plugin.layout([shape])
    assert torch.equal(layout.given, batch.given) and torch.equal(layout.token_cond, batch.token_cond)
    assert torch.equal(layout.tokens[0, :16], batch.tokens[0, :16]) and layout.tokens[0, 16:].abs().sum() == 0


def test_generation_returns_the_given_view_unchanged():
    plugin = MultiviewPlugin(views=3, size=16, patch=4, camera="plucker", given_views=1)
    torch.manual_seed(0)
    model = LuminaModel(NextDiTConfig(**TINY), {"views": plugin.adapter_spec()})
    with torch.no_grad():  # switch the zero-initialised layers on, so the model does depend on its inputs
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = _scenes()
    xs = [data[0]["sample"], data[1]["sample"]]
    for solver in ("euler", "midpoint", "heun"):
        out = generate(model, plugin, None, "views", None, shapes=[plugin.sample_shape(x) for x in xs],
                       steps=4, solver=solver)  # fmt: skip
        for x, y in zip(xs, out, strict=True):
            assert torch.equal(y[0], x[0])  # pixels and camera of the given view, bit for bit
            assert torch.equal(cameras_of(y, 3), cameras_of(x, 3))
            assert (y[1:, :3] - x[1:, :3]).abs().mean() > 0.1  # the rest was generated


def test_given_view_errors_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="leave at least one view to generate"):
        MultiviewPlugin(views=2, size=16, given_views=2)
    with pytest.raises(ValueError, match="given_image .* is not a file"):
        MultiviewPlugin(views=3, size=16, given_views=1, given_image=str(tmp_path / "nope.png"))
    with pytest.raises(ValueError, match="given_image needs given_views >= 1"):
        MultiviewPlugin(views=3, size=16, given_image=GIVEN_PNG)
    with pytest.raises(ValueError, match="given_image=PATH"):
        MultiviewPlugin(views=3, size=16, given_views=1).default_shape()
    plugin = MultiviewPlugin(views=3, size=16, given_views=1)
    with pytest.raises(ValueError, match="at least one more view is needed"):
        plugin.tokenize([_scenes(views=1)[0]["sample"]])
    shape = plugin.sample_shape(_scenes()[0]["sample"])
    with pytest.raises(ValueError, match="pixel values per given view"):
        plugin.layout([shape[:-5]])
    (tmp_path / "bad.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not a readable picture"):
        MultiviewPlugin(
            views=3, size=16, given_views=1, given_image=str(tmp_path / "bad.png")
        ).default_shape()


def test_given_image_becomes_the_first_view_of_default_samples():
    plugin = MultiviewPlugin(views=3, size=16, given_views=1, given_image=GIVEN_PNG, sample_views=5)
    shape = plugin.default_shape()
    assert shape[0] == 5
    truth = _scenes()[0]["sample"][0, :3]
    assert (given_from_shape(shape)[0] - truth).abs().max() <= 1 / 127.5 + 1e-6  # the PNG's 8-bit rounding


class TestMultiviewGivenViewConformance(PluginConformance):
    plugin_name = "multiview"
    plugin_params = {"views": 3, "size": 16, "patch": 4, "camera": "plucker", "given_views": 1,
                     "given_image": GIVEN_PNG}  # fmt: skip
    conditions = None
    dataset_params = {"multiview_scenes": {"views": 3, "size": 16, "length": 4, "supersample": 1}}
    skip_datasets = ("multiview_folder",)

    def make_samples(self):
        a, b = _scenes(views=3), _scenes(views=4, seed=1)
        return [a[0]["sample"], b[0]["sample"], a[1]["sample"]]


# -- a trained model's views fit the given one -------------------------------------------------------------
def _consistency(samples, given_views=1):
    """Mean leave-one-out visual-hull IoU of the generated views (the given ones carve the hull too)."""
    out = []
    for s in samples:
        sil = silhouette(to01(s[:, :3]))
        cons = hull_consistency(sil, cameras_of(s, 3), 40.0, grid=48) * object_like(sil)
        out.append(float(cons[given_views:].mean()))
    return sum(out) / len(out)


def _silhouette_iou(samples, truths):
    """Mean IoU of the generated views' silhouettes with the true renders' at the same poses."""
    return sum(float(iou(silhouette(to01(s[1:])), silhouette(to01(x[1:]))).mean())
               for s, x in zip(samples, truths, strict=True)) / len(truths)  # fmt: skip


@pytest.mark.slow
def test_trained_views_are_consistent_with_the_given_view():
    """Train a small model on given-view scenes (one primitive, 3 views, 16 px, 500 steps); the views it
    generates from held-out first views fit them by the leave-one-out visual hull and match the true renders'
    silhouettes far better than before training (the given view comes back unchanged)."""
    torch.manual_seed(0)
    plugin = MultiviewPlugin(views=3, size=16, patch=4, camera="plucker", given_views=1, radius=2.4)
    model = LuminaModel(NextDiTConfig(**TINY), {"views": plugin.adapter_spec()})
    train = _scenes(views=3, length=64, max_objects=1, radius=2.4, seed=3)
    val = _scenes(views=3, length=8, max_objects=1, radius=2.4, seed=3, split="val")
    truths = [val[i]["sample"] for i in range(len(val))]
    shapes = [plugin.sample_shape(x) for x in truths]

    def sample():
        return generate(model, plugin, None, "views", None, shapes=shapes, steps=8, solver="midpoint")

    first = sample()
    before, iou_before = _consistency(first), _silhouette_iou(first, truths)
    objective = FlowMatching(time_sampler={"name": "logit_normal", "params": {"m": 0.0, "s": 1.0}})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    for _step in range(500):
        idx = torch.randint(len(train), (8,), generator=gen).tolist()
        batch = plugin.tokenize([train[i]["sample"] for i in idx])
        loss, _ = objective.loss(model, "views", batch, Condition(), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = sample()
    assert all(torch.equal(s[0], x[0]) for s, x in zip(after, truths, strict=True))
    truth = _consistency(truths)  # 0.53 for true renders at 16 px and 3 views
    got, iou_after = _consistency(after), _silhouette_iou(after, truths)
    assert got > 0.5 * truth and got > before + 0.15, (before, got, truth)
    assert iou_after > iou_before + 0.15, (iou_before, iou_after)
