"""Video tokens: exact round trips, (t, h, w) positions, mixed lengths and sizes, layouts beyond training."""

from __future__ import annotations

import pytest
import torch
from lumina_video.modality import VideoPlugin
from lumina_video.patches import grid_positions, patchify, unpatchify

from lumina_core.registry import MODALITIES


def _clip(t: int, h: int, w: int, seed: int = 0, c: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, c, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("patch", [(1, 4, 4), (2, 4, 4), (2, 2, 4)])
def test_round_trip_is_exact_for_mixed_clips(patch):
    plugin = VideoPlugin(patch=patch)
    clips = [_clip(8, 16, 16, 0), _clip(4, 32, 16, 1), _clip(12, 8, 24, 2)]
    batch = plugin.tokenize(clips)
    back = plugin.detokenize(batch)
    assert [tuple(b.shape) for b in back] == [tuple(c.shape) for c in clips]
    for b, c in zip(back, clips, strict=True):
        assert torch.equal(b, c)


def test_registered_and_built_by_name():
    plugin = MODALITIES.build({"name": "video", "params": {"patch": [2, 4, 4], "frames": 8, "size": 16}})
    assert isinstance(plugin, VideoPlugin)
    assert plugin.patch == (2, 4, 4)


def test_positions_are_t_h_w_patch_indices_and_tokens_sit_at_them():
    """Known answer: pixel value encodes (frame, channel, row, col); each token must hold its own box."""
    t, c, h, w = 4, 3, 8, 12
    pt, ph, pw = 2, 4, 4
    f = torch.arange(t)[:, None, None, None].float()
    ch = torch.arange(c)[None, :, None, None].float()
    r = torch.arange(h)[None, None, :, None].float()
    k = torch.arange(w)[None, None, None, :].float()
    clip = f * 1000 + ch * 100 + r * 10 + k * 0.01 + torch.zeros(t, c, h, w)
    batch = VideoPlugin(patch=(pt, ph, pw)).tokenize([clip])
    pos = batch.positions[0]
    assert batch.num_axes == 3
    assert pos.shape == (2 * 2 * 3, 3)
    # raster order: t slowest, w fastest
    assert pos[:4].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]]
    assert pos[:, 0].max() == 1 and pos[:, 1].max() == 1 and pos[:, 2].max() == 2
    for token, (ti, hi, wi) in zip(batch.tokens[0], pos.long().tolist(), strict=True):
        box = clip[
            ti * pt : (ti + 1) * pt, :, hi * ph : (hi + 1) * ph, wi * pw : (wi + 1) * pw
        ]  # (pt, C, ph, pw)
        # flattened in (C, pt, ph, pw) order
        assert torch.equal(token, box.permute(1, 0, 2, 3).reshape(-1))


def test_patchify_matches_released_image_order_for_single_frames():
    """With pt = 1 each frame's tokens are the released (C, ph, pw) image patches."""
    clip = _clip(3, 8, 8)
    tokens = patchify(clip, (1, 4, 4)).reshape(3, 4, 48)
    for f in range(3):
        img = clip[f]  # (C, H, W)
        patches = img.reshape(3, 2, 4, 2, 4).permute(1, 3, 0, 2, 4).reshape(4, 48)
        assert torch.equal(tokens[f], patches)
    assert torch.equal(unpatchify(patchify(clip, (1, 4, 4)), clip.shape, (1, 4, 4)), clip)


def test_mixed_lengths_and_sizes_pad_with_masks_without_changing_real_tokens():
    plugin = VideoPlugin(patch=(2, 4, 4))
    clips = [_clip(8, 16, 16, 0), _clip(2, 8, 8, 1), _clip(16, 16, 8, 2)]
    batch = plugin.tokenize(clips)
    lengths = [4 * 4 * 4, 1 * 2 * 2, 8 * 4 * 2]
    assert batch.lengths.tolist() == lengths
    assert batch.length == max(lengths)
    for i, clip in enumerate(clips):
        alone = plugin.tokenize([clip])
        n = lengths[i]
        assert torch.equal(batch.tokens[i, :n], alone.tokens[0])
        assert torch.equal(batch.positions[i, :n], alone.positions[0])
        assert not batch.mask[i, n:].any()
        assert torch.all(batch.tokens[i, n:] == 0)
    assert batch.shapes == [tuple(c.shape) for c in clips]
    # the third clip's positions run to t = 7 (16 frames / pt 2)
    assert batch.positions[2, : lengths[2], 0].max() == 7


def test_layout_for_more_frames_than_trained():
    plugin = VideoPlugin(patch=(1, 4, 4), frames=8, size=16)
    spec = plugin.adapter_spec()
    assert spec.train_extent == (8.0, 4.0, 4.0)
    longer = plugin.layout([plugin.default_shape(), plugin.longer_shape(24)])
    assert longer.mask.sum(dim=1).tolist() == [8 * 16, 24 * 16]
    assert torch.all(longer.tokens == 0)
    assert longer.positions[1, :, 0].max() == 23  # beyond the trained extent of 8 frames
    assert torch.equal(longer.positions[1, : 24 * 16], grid_positions((24, 4, 4)))
    clips = plugin.detokenize(longer.with_tokens(torch.ones_like(longer.tokens)))
    assert tuple(clips[1].shape) == (24, 3, 16, 16)


def test_adapter_spec_is_3d_blocked_with_the_d4_3d8_3d8_split():
    spec = VideoPlugin(patch=(2, 4, 4)).adapter_spec()
    assert (spec.in_dim, spec.out_dim, spec.num_axes) == (96, 96, 3)
    assert spec.axis_split == (2, 3, 3) and spec.rope_layout == "blocked"
    d = 32  # shares of a head dimension d: d/4, 3d/8, 3d/8
    assert [d * s // sum(spec.axis_split) for s in spec.axis_split] == [8, 12, 12]
    assert VideoPlugin(patch=(1, 4, 4)).adapter_spec().with_learn_sigma().out_dim == 96  # a learn_sigma task
    grey = VideoPlugin(patch=(1, 2, 2), channels=1).adapter_spec()
    assert grey.in_dim == 4


def test_detokenize_reads_only_the_velocity_channels():
    plugin = VideoPlugin(patch=(1, 4, 4))
    clip = _clip(2, 8, 8)
    batch = plugin.tokenize([clip])
    wide = batch.with_tokens(torch.cat([batch.tokens, torch.full_like(batch.tokens, 9.0)], dim=-1))
    assert torch.equal(plugin.detokenize(wide)[0], clip)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(8, 16, 16), "(T, C, H, W)"),
        (torch.zeros(8, 1, 16, 16), "channels"),
        (torch.zeros(8, 3, 15, 16), "cannot be cut into patches"),
        (torch.zeros(3, 3, 16, 16), "cannot be cut into patches"),
    ],
)
def test_bad_clips_are_refused_with_a_readable_error(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        VideoPlugin(patch=(2, 4, 4)).tokenize([bad])


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="patch"):
        VideoPlugin(patch=(1, 4))
    with pytest.raises(ValueError, match="channels"):
        VideoPlugin(channels=4)
    with pytest.raises(ValueError, match="cannot be cut"):
        VideoPlugin(patch=(1, 4, 4), size=18)
