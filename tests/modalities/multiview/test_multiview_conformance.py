"""The plugin through the public conformance suite (each camera encoding), plus its own token properties."""

import pytest
import torch

from lumina_core.testing import PluginConformance
from lumina_modalities.multiview import MultiviewPlugin, MultiviewScenes
from lumina_modalities.multiview.cameras import orbit
from lumina_modalities.multiview.plugin import attach_cameras, cameras_from_shape


def _samples():
    a = MultiviewScenes(views=2, size=16, length=4, supersample=1)
    b = MultiviewScenes(views=3, size=16, length=4, supersample=1, seed=1)
    return [a[0]["sample"], b[0]["sample"], a[1]["sample"]]


class TestMultiviewPluckerConformance(PluginConformance):
    plugin_name = "multiview"
    plugin_params = {"views": 2, "size": 16, "patch": 4, "camera": "plucker"}
    conditions = ["a red box", "a blue torus", "a green sphere"]
    dataset_params = {"multiview_scenes": {"views": 2, "size": 16, "length": 4, "supersample": 1}}
    skip_datasets = ("multiview_folder",)  # needs files; tested in test_multiview_folder.py

    def make_samples(self):
        return _samples()


class TestMultiviewMatrixConformance(TestMultiviewPluckerConformance):
    plugin_params = {"views": 2, "size": 16, "patch": 4, "camera": "matrix"}
    conditions = [0, 5, 11]


class TestMultiviewNoCameraConformance(TestMultiviewPluckerConformance):
    plugin_params = {"views": 2, "size": 16, "patch": 4, "camera": "none"}
    conditions = None


def test_positions_views_and_extent():
    plugin = MultiviewPlugin(views=4, size=16, patch=4, sample_views=8)
    spec = plugin.adapter_spec()
    assert spec.train_extent == (4.0, 4.0, 4.0) and spec.num_axes == 3 and spec.token_cond_dim == 6 * 16
    shape = plugin.default_shape()
    assert shape[:4] == (8, 3, 16, 16) and len(shape) == 4 + 12 * 8
    layout = plugin.layout([shape])
    assert layout.length == 8 * 16
    assert layout.positions[0, :, 0].unique().tolist() == list(range(8))
    assert torch.equal(layout.positions[0, 16], torch.tensor([1.0, 0.0, 0.0]))  # view-major order
    # the 8-view orbit contains the 4 training poses and 4 poses between them
    eight, four = (
        cameras_from_shape(shape),
        cameras_from_shape(MultiviewPlugin(views=4, size=16).default_shape()),
    )
    assert torch.allclose(eight[::2], four, atol=1e-6)


def test_cameras_ride_along_with_generated_views():
    plugin = MultiviewPlugin(views=2, size=8, patch=4, azimuths=[0.0, 30.0, 200.0])
    shape = plugin.default_shape()
    layout = plugin.layout([shape])
    out = plugin.detokenize(layout.with_tokens(torch.randn_like(layout.tokens)))[0]
    assert tuple(plugin.sample_shape(out)) == tuple(shape)
    assert torch.allclose(
        out[:, 3:, 0, 0].reshape(3, 3, 4).double(),
        orbit(3, 20.0, 3.2, azimuths=[0.0, 30.0, 200.0])[:, :3].double(),
        atol=1e-6,
    )


def test_bad_samples_are_refused_clearly():
    plugin = MultiviewPlugin(views=2, size=8, patch=4)
    good = attach_cameras(torch.zeros(2, 3, 8, 8), orbit(2))
    with pytest.raises(ValueError, match=r"\(V, 3 \+ 12, H, W\)"):
        plugin.tokenize([good[:, :3]])
    with pytest.raises(ValueError, match=r"multiples of 4 \(patch x autoencoder factor\)"):
        plugin.tokenize([attach_cameras(torch.zeros(2, 3, 6, 8), orbit(2))])
    squashed = orbit(2).clone()
    squashed[1, :3, 1] *= 0.5
    with pytest.raises(ValueError, match="view 1 is not a rigid"):
        plugin.tokenize([attach_cameras(torch.zeros(2, 3, 8, 8), squashed)])
    with pytest.raises(ValueError, match="camera must be one of"):
        MultiviewPlugin(camera="euler")
