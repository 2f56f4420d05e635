"""ViewsRequest: what a multi-view sample to generate needs besides a shape, by name, and packed as the shape."""

from __future__ import annotations

import pytest
import torch

from lumina_core.sampling import generate
from lumina_modalities.multiview import MultiviewPlugin, MultiviewScenes
from lumina_modalities.multiview.cameras import orbit
from lumina_modalities.multiview.plugin import cameras_of
from lumina_modalities.multiview.request import ViewsRequest


def test_the_parts_round_trip_through_the_packed_descriptor():
    cams = orbit(3, 20.0, 2.0)
    given = torch.rand(1, 3, 8, 8) * 2 - 1
    request = ViewsRequest.make(3, (8, 8), cams, given)
    assert (request.views, request.channels, request.size, request.num_given) == (3, 3, (8, 8), 1)
    assert request.shape == (3, 3, 8, 8) and len(request) == 4 + 12 * 3 + 3 * 8 * 8
    torch.testing.assert_close(request.cameras, cams.double(), atol=1e-6, rtol=0)
    assert torch.equal(request.given, given)
    packed = tuple(request)  # what TokenBatch.shapes keeps and serve's shape field parses
    assert type(packed) is tuple and ViewsRequest(packed) == request and ViewsRequest(packed).num_given == 1
    assert ViewsRequest.make(3, (8, 8), cams).given is None


def test_a_sample_s_request_carries_its_cameras_and_given_view():
    plugin = MultiviewPlugin(views=2, size=16, patch=4, given_views=1)
    x = MultiviewScenes(views=2, size=16, length=2, supersample=1)[0]["sample"]
    request = plugin.sample_shape(x)
    assert isinstance(request, ViewsRequest) and request.shape == (2, 3, 16, 16)
    torch.testing.assert_close(request.cameras, cameras_of(x, 3), atol=1e-6, rtol=0)
    assert torch.equal(request.given[0], x[0, :3].float())
    assert isinstance(plugin.shape_for(4), ViewsRequest) and plugin.shape_for(4).num_given == 0


def test_generate_hands_the_plugin_its_request_type():
    plugin = MultiviewPlugin(views=2, size=8, patch=4, camera="none")
    seen = []
    layout = plugin.layout

    def spy(shapes, device=None):
        seen.extend(shapes)
        return layout(shapes, device=device)

    plugin.layout = spy

    class Zero(torch.nn.Module):
        def velocity(self, batch, t, cond, task=None, **kw):
            return torch.zeros_like(batch.tokens)

    (out,) = generate(Zero(), plugin, None, "views", None, [plugin.shape_for(2)], steps=1, solver="euler")
    assert isinstance(seen[0], ViewsRequest) and tuple(out.shape) == (2, 3 + 12, 8, 8)


def test_a_bad_descriptor_says_what_a_request_is():
    with pytest.raises(ValueError, match="12 camera numbers per view"):
        ViewsRequest((2, 3, 8, 8, 0.0, 1.0))
