"""Classifier-free guidance: ``v = v_u + w (v_c - v_u)``, optionally on a subset of token channels.

By default every token value is guided. A recipe may restrict guidance to the sample's first k channels
(``sampling.cfg_channels: k``; the rest keep the conditional prediction); which *token* values those are is
the plugin's business: :meth:`lumina_core.plugin.ModalityPlugin.guidance_mask` (a probing default that
plugins override, e.g. the image plugin in latent space, whose docs say which k a released pipeline used).

Two refinements of Lumina-Image 2.0's release (``sampling.cfg_trunc`` and ``sampling.cfg_renorm``):

* truncation: guidance only while ``t < cfg_trunc`` (t = 0 noise, 1 data); from there on the conditional
  velocity alone (one model call instead of two). ``cfg_trunc = 1`` guides throughout.
* renormalisation: the guided velocity's norm over a whole sample (all its tokens and channels) is clipped to
  ``r`` times the conditional one's, ``v <- v min(1, r |v_c| / |v|)`` (:func:`cfg_renormalize`).
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


def cfg_renormalize(guided: Tensor, v_cond: Tensor, factor: float, token_mask: Tensor | None = None) -> Tensor:
    """``guided * min(1, factor |v_cond| / |guided|)`` per sample, the norms over every token and channel of the
    sample (B, N, D) (only the tokens where ``token_mask`` (B, N) is True, if given). A zero guided velocity
    stays zero."""
    if factor <= 0:
        raise ValueError(f"cfg renormalisation needs a factor > 0; got {factor}")
    if token_mask is not None:
        keep = token_mask[..., None].to(guided.dtype)
        g_norm = (guided * keep).flatten(1).norm(dim=1)
        c_norm = (v_cond * keep).flatten(1).norm(dim=1)
    else:
        g_norm, c_norm = guided.flatten(1).norm(dim=1), v_cond.flatten(1).norm(dim=1)
    limit = factor * c_norm
    ratio = torch.where(g_norm > limit, limit / g_norm.clamp_min(torch.finfo(guided.dtype).tiny), 1.0)
    return guided * ratio.view(-1, *([1] * (guided.dim() - 1)))


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
