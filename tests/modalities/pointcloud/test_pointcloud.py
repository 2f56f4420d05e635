"""The pointcloud plugin: normalisation, tokens, masks, permutation equivariance, more points, conformance."""

from __future__ import annotations

import pytest
import torch

from lumina_core.testing import PluginConformance
from lumina_modalities.pointcloud import PointCloudPlugin
from lumina_modalities.pointcloud.normalize import normalization_params, normalize_cloud


def _cloud(n: int, seed: int, d: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(n, 3, generator=g) * torch.tensor([2.0, 0.5, 1.0]) + torch.tensor([3.0, -1.0, 0.5])
    if d == 6:
        nrm = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
        pts = torch.cat([pts, nrm], dim=1)
    return pts


def test_sphere_normalisation_fits_unit_ball() -> None:
    x = normalize_cloud(_cloud(300, 0), "sphere")
    assert torch.allclose(x.mean(0), torch.zeros(3), atol=1e-5)
    assert x.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)


def test_box_normalisation_fits_cube_and_keeps_aspect() -> None:
    raw = _cloud(300, 1)
    x = normalize_cloud(raw, "box")
    lo, hi = x.min(0).values, x.max(0).values
    assert torch.allclose((lo + hi) / 2, torch.zeros(3), atol=1e-5)
    assert (hi - lo).max().item() == pytest.approx(2.0, abs=1e-5)
    ext_raw = raw.max(0).values - raw.min(0).values
    assert torch.allclose((hi - lo) / (hi - lo).max(), ext_raw / ext_raw.max(), atol=1e-5)


def test_degenerate_cloud_is_rejected_with_its_name() -> None:
    with pytest.raises(ValueError, match="sample 1.*degenerate"):
        PointCloudPlugin().tokenize([_cloud(10, 0), torch.ones(10, 3)])
    with pytest.raises(ValueError, match="NaN"):
        normalization_params(torch.tensor([[0.0, float("nan"), 1.0], [1.0, 2.0, 3.0]]))


@pytest.mark.parametrize("normals", [False, True])
@pytest.mark.parametrize("normalization", ["sphere", "box", "none"])
def test_round_trip_restores_the_original_frame(normals: bool, normalization: str) -> None:
    plugin = PointCloudPlugin(normals=normals, normalization=normalization, scale=2.0)
    d = 6 if normals else 3
    clouds = [_cloud(40, 0, d), _cloud(25, 1, d), _cloud(33, 2, d)]
    batch = plugin.tokenize(clouds)
    assert batch.tokens.shape == (3, 40, d) and batch.num_axes == 0
    assert batch.lengths.tolist() == [40, 25, 33]
    assert batch.shapes == [(40, d), (25, d), (33, d)]
    if normalization == "sphere":  # tokens are the normalised cloud times `scale`
        assert batch.tokens[1, :25, :3].norm(dim=1).max().item() == pytest.approx(2.0, abs=1e-4)
    for orig, back in zip(clouds, plugin.detokenize(batch), strict=True):
        assert back.shape == orig.shape
        torch.testing.assert_close(back, orig, atol=1e-4, rtol=1e-5)


def test_generated_layout_stays_in_the_canonical_frame() -> None:
    plugin = PointCloudPlugin(scale=2.0)
    layout = plugin.layout([(50, 3), (70, 3)])
    assert layout.tokens.abs().sum() == 0 and layout.lengths.tolist() == [50, 70]
    x = torch.randn(2, 70, 3)
    out = plugin.detokenize(layout.with_tokens(x))
    assert [o.shape for o in out] == [(50, 3), (70, 3)]
    torch.testing.assert_close(out[0], x[0, :50] / 2.0)


def test_bad_samples_are_refused() -> None:
    plugin = PointCloudPlugin()
    with pytest.raises(ValueError, match=r"sample 0 must be an \(N, 3\)"):
        plugin.tokenize([torch.zeros(10, 4)])
    with pytest.raises(ValueError, match="layout shape 0"):
        plugin.layout([(10, 6)])
    with pytest.raises(ValueError, match="normalization"):
        PointCloudPlugin(normalization="cube")


def _tiny_model(plugin: PointCloudPlugin, seed: int = 0):
    from lumina_core.model import LuminaModel, NextDiTConfig

    torch.manual_seed(seed)
    model = LuminaModel(
        NextDiTConfig(dim=32, n_layers=2, n_heads=2, n_kv_heads=1, context_dim=16, multiple_of=16),
        {"pc": plugin.adapter_spec()},
    )
    with torch.no_grad():  # perturb the zero-initialised gates so every layer really acts
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def test_model_is_permutation_equivariant_on_points() -> None:
    from lumina_core.tokens import Condition

    plugin = PointCloudPlugin()
    model = _tiny_model(plugin)
    clouds = [_cloud(30, 0), _cloud(22, 1)]
    batch = plugin.tokenize(clouds)
    cond = Condition(torch.randn(2, 3, 16))
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        out = model.velocity(batch, t, cond, task="pc")
        perms = [torch.randperm(30), torch.randperm(22)]
        permuted = plugin.tokenize([c[p] for c, p in zip(clouds, perms, strict=True)])
        out_p = model.velocity(permuted, t, cond, task="pc")
    assert not torch.allclose(out[0, :30], out[0, :30].mean(0), atol=1e-3)  # outputs differ per point
    for i, (n, p) in enumerate(zip([30, 22], perms, strict=True)):
        torch.testing.assert_close(out_p[i, :n], out[i, :n][p], atol=1e-5, rtol=1e-5)


def test_generation_with_more_points_than_training() -> None:
    from lumina_core.conditioning import ClassConditioner
    from lumina_core.model import LuminaModel, NextDiTConfig
    from lumina_core.sampling import generate

    plugin = PointCloudPlugin(num_points=64)
    cond = ClassConditioner(num_classes=3, dim=16)
    model = LuminaModel(
        NextDiTConfig(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, context_dim=16, multiple_of=16),
        {"pc": plugin.adapter_spec()},
    )
    out = generate(
        model, plugin, cond, "pc", [0, 2], shapes=[(64, 3), (300, 3)], steps=2, solver="euler", seed=0
    )
    assert [tuple(o.shape) for o in out] == [(64, 3), (300, 3)]
    assert all(torch.isfinite(o).all() for o in out)


class TestPointCloudConformance(PluginConformance):
    plugin_name = "pointcloud"
    plugin_params = {"num_points": 48}
    conditions = [0, 2, 1]
    checker_metric, checker_chance = "nn_class_acc", "nn_class_chance"
    dataset_params = {"shapes_lite": {"num_items": 4, "num_points": 64, "emd": False}}

    def make_samples(self) -> list[torch.Tensor]:
        return [_cloud(48, 0), _cloud(30, 1), _cloud(40, 2)]


class TestPointCloudNormalsConformance(PluginConformance):
    plugin_name = "pointcloud"
    plugin_params = {"num_points": 32, "normals": True, "normalization": "box"}
    conditions = ["a torus", "a tall cylinder"]
    checker_metric, checker_chance = "nn_class_acc", "nn_class_chance"
    dataset_params = {"shapes_lite": {"num_items": 2, "num_points": 32, "normals": True, "condition": "text"}}

    def make_samples(self) -> list[torch.Tensor]:
        return [_cloud(32, 3, 6), _cloud(20, 4, 6)]
