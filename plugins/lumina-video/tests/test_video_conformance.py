"""The core's plugin conformance suite, run on the video plugin (found through the registry like any plugin)."""

from __future__ import annotations

from lumina_video.moving_shapes import MovingShapes

from lumina_core.testing import PluginConformance


def _clips(frames: list[int], sizes: list[int], seed: int) -> list:
    """Real moving-shape clips, one per (frames, size) pair."""
    return [
        MovingShapes(num=1, frames=t, size=s, seed=seed + i)[0]["sample"]
        for i, (t, s) in enumerate(zip(frames, sizes, strict=True))
    ]


class TestVideoConformance(PluginConformance):
    """Text-conditioned, one frame per token: real moving-shape clips of different lengths and sizes."""

    plugin_name = "video"
    plugin_params = {"patch": [1, 4, 4], "frames": 4, "size": 8}
    conditions = ["a red circle moving right", "a blue square moving up", "a cyan circle moving down"]
    dataset_params = {"moving_shapes": {"num": 2}}

    def make_samples(self):
        return _clips(frames=[4, 2, 6], sizes=[8, 16, 8], seed=0)


class TestVideoConformanceTemporalPatches(PluginConformance):
    """Class-conditioned, two frames per token (2 x 4 x 4 patches)."""

    plugin_name = "video"
    plugin_params = {"patch": [2, 4, 4], "frames": 4, "size": 8}
    conditions = [3, 17]
    dataset_params = {"moving_shapes": {"num": 2, "condition": "class"}}

    def make_samples(self):
        return _clips(frames=[4, 8], sizes=[8, 8], seed=5)
