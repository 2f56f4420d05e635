"""Previews: a looping GIF per clip with every frame, and a captioned PNG filmstrip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lumina_video.modality import VideoPlugin
from lumina_video.moving_shapes import MovingShapes
from lumina_video.preview import caption_text
from PIL import Image


def test_gifs_and_filmstrip(tmp_path):
    ds = MovingShapes(num=3, frames=[4, 8], seed=2)
    items = [ds[i] for i in range(3)]
    clips = [it["sample"] for it in items]
    paths = VideoPlugin().write_preview(clips, [it["condition"] for it in items], tmp_path, "step10")
    assert [p.name for p in paths] == [
        "step10_00.gif",
        "step10_01.gif",
        "step10_02.gif",
        "step10_filmstrip.png",
    ]
    for clip, path in zip(clips, paths[:-1], strict=True):
        with Image.open(path) as gif:
            assert gif.format == "GIF" and gif.n_frames == clip.shape[0]
            assert gif.size == (64, 64)  # 16 px enlarged 4x
            for f in range(gif.n_frames):
                gif.seek(f)
                # the enlarged frame shows the clip's own pixels (nearest neighbour), colour for colour
                shown = torch.from_numpy(np.array(gif.convert("RGB"))[::4, ::4]).permute(2, 0, 1).float()
                truth = ((clip[f] + 1) * 127.5).round()
                assert (shown - truth).abs().max() <= 24  # GIF palette quantisation
    with Image.open(paths[-1]) as strip:
        assert strip.format == "PNG"
        # rows of 64 px frames with 2 px gaps, each under a 14 px caption line
        assert strip.size == (max(c.shape[0] for c in clips) * 66 + 2, 3 * (14 + 64 + 2) + 2)


def test_captions_for_every_condition_kind(tmp_path):
    assert caption_text("a red circle moving up") == "a red circle moving up"
    assert caption_text(7) == "class 7"
    assert caption_text(None) == "(unconditional)"
    grey = [torch.rand(2, 1, 8, 8) * 2 - 1]
    paths = VideoPlugin(channels=1, patch=(1, 2, 2), size=8).write_preview(grey, [None], tmp_path, "g")
    assert all(p.exists() for p in paths)
    with pytest.raises(ValueError, match="one condition per clip"):
        VideoPlugin().write_preview(grey * 2, [None], tmp_path, "bad")


def test_tensorboard_gets_one_filmstrip_image_per_clip():
    class Writer:
        def __init__(self):
            self.calls = []

        def add_image(self, tag, img, step):
            self.calls.append((tag, tuple(img.shape), img.dtype, step))

    writer = Writer()
    clips = [MovingShapes(num=1, frames=t, seed=t)[0]["sample"] for t in (4, 6)]
    VideoPlugin().preview_to_tensorboard(writer, clips, step=7, tag="video")
    assert writer.calls == [
        ("video/0", (3, 64, 4 * 64), torch.uint8, 7),
        ("video/1", (3, 64, 6 * 64), torch.uint8, 7),
    ]
