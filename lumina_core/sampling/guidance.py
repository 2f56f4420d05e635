"""Classifier-free guidance: ``v = v_u + w (v_c - v_u)``, optionally on a subset of token channels.

By default every token value is guided. A recipe may restrict guidance to the sample's first k channels
(``sampling.cfg_channels: k``; the rest keep the conditional prediction); which *token* values those are is
the plugin's business: :meth:`lumina_core.plugin.ModalityPlugin.guidance_mask` (a probing default that
plugins override, e.g. the image plugin in latent space, whose docs say which k a released pipeline used).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def cfg_combine(v_cond: Tensor, v_uncond: Tensor, scale: float, channel_mask: Tensor | None = None) -> Tensor:
    """``v_u + scale (v_c - v_u)`` on the channels where ``channel_mask`` (D,) is True (all if None); the
    conditional velocity elsewhere."""
    guided = v_uncond + scale * (v_cond - v_uncond)
    if channel_mask is None:
        return guided
    if channel_mask.dim() != 1 or channel_mask.shape[0] != v_cond.shape[-1]:
        raise ValueError(
            f"cfg channel mask must be (D,) = ({v_cond.shape[-1]},); got {tuple(channel_mask.shape)}"
        )
    return torch.where(channel_mask.to(v_cond.device), guided, v_cond)


def channel_mask(plugin: Any, cfg_channels: Any, shape: tuple[int, ...], in_dim: int) -> Tensor | None:
    """The (D,) bool mask of token channels to guide, or None for all.

    ``cfg_channels`` is None (all), an int k (the first k channels of the sample, i.e. dim 0 of a
    channel-first sample), a (D,) bool tensor / list, or a callable ``(in_dim) -> mask``.
    """
    if cfg_channels is None:
        return None
    if callable(cfg_channels) and not isinstance(cfg_channels, Tensor):
        mask = torch.as_tensor(cfg_channels(in_dim), dtype=torch.bool)
    elif isinstance(cfg_channels, (Tensor, list, tuple)):
        mask = torch.as_tensor(cfg_channels, dtype=torch.bool)
    else:
        k = int(cfg_channels)
        mask = torch.as_tensor(plugin.guidance_mask(k, shape), dtype=torch.bool)
    if mask.shape != (in_dim,):
        raise ValueError(
            f"cfg channel mask must have one entry per token channel ({in_dim}); got {tuple(mask.shape)}"
        )
    return mask
