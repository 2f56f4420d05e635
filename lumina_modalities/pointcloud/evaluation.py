"""Generative metrics in the PointFlow protocol, plus a per-class nearest-reference adherence check.

With a generated set G, a held-out reference set R and a distance D (Chamfer or EMD):

* **MMD** (minimum matching distance, lower is better): ``mean_{r in R} min_{g in G} D(g, r)``.
* **COV** (coverage, higher is better): the fraction of references that are the nearest reference of at
  least one generated cloud, ``|{argmin_r D(g, r) : g in G}| / |R|``.
* **1-NNA** (lower is better, 50 % is ideal): the leave-one-out accuracy of the 1-nearest-neighbour
  classifier that tells G from R on ``G u R``; 100 % when the sets are separable.
* **Nearest-reference class accuracy** (the adherence score): a generated cloud asked for class c is
  classified as the class of its Chamfer-nearest reference (over all classes); chance is ``1 / K`` for K
  classes present among the references. ``nn_class_acc_real`` is the same classifier on the references
  themselves (leave-one-out): the ceiling the generated clouds can reach.

Every cloud is brought to the same canonical frame first (``normalization``, see :mod:`.normalize`), so
the metrics compare shapes, not positions or sizes. Per-class values are reported under ``"<metric>/<class>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .metrics import pairwise_chamfer, pairwise_emd
from .normalize import normalize_cloud


def mmd_cov(d_gr: Tensor) -> tuple[float, float]:
    """MMD and COV from a (G, R) distance matrix."""
    mmd = d_gr.min(dim=0).values.mean().item()
    cov = d_gr.argmin(dim=1).unique().numel() / d_gr.shape[1]
    return mmd, cov


def one_nna(d_gg: Tensor, d_rr: Tensor, d_gr: Tensor) -> float:
    """Leave-one-out 1-NN accuracy of telling generated (G) from reference (R) clouds."""
    g, r = d_gr.shape
    full = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0).clone()
    full.fill_diagonal_(float("inf"))
    labels = torch.cat([torch.zeros(g, dtype=torch.bool), torch.ones(r, dtype=torch.bool)])
    nearest = full.argmin(dim=1)
    return (labels[nearest] == labels).float().mean().item()


def nearest_reference_accuracy(d_gr: Tensor, gen_labels: Sequence[Any], ref_labels: Sequence[Any]) -> float:
    """Fraction of generated clouds whose nearest reference has the generated cloud's label."""
    nearest = d_gr.argmin(dim=1).tolist()
    hits = [ref_labels[j] == gen_labels[i] for i, j in enumerate(nearest)]
    return sum(hits) / len(hits)


def _matrices(
    gen: Sequence[Tensor], ref: Sequence[Tensor], emd: bool, emd_points: int
) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """Per distance ("cd", "emd"): the (G, G), (R, R) and (G, R) distance matrices."""
    fns = {"cd": pairwise_chamfer}
    if emd:
        fns["emd"] = lambda a, b: pairwise_emd(a, b, max_points=emd_points)
    return {key: (fn(gen, gen), fn(ref, ref), fn(gen, ref)) for key, fn in fns.items()}


def _set_metrics_from(mats: dict[str, tuple[Tensor, Tensor, Tensor]], gi: list[int], ri: list[int]) -> dict:
    out: dict[str, float] = {}
    for key, (d_gg, d_rr, d_gr) in mats.items():
        sub_gr = d_gr[gi][:, ri]
        out[f"{key}_mmd"], out[f"{key}_cov"] = mmd_cov(sub_gr)
        if len(gi) + len(ri) > 2:
            out[f"{key}_1nna"] = one_nna(d_gg[gi][:, gi], d_rr[ri][:, ri], sub_gr)
    return out


def set_metrics(
    gen: Sequence[Tensor], ref: Sequence[Tensor], emd: bool = True, emd_points: int = 128
) -> dict[str, float]:
    """MMD, COV and 1-NNA under Chamfer (and EMD) for one generated and one reference set."""
    mats = _matrices(gen, ref, emd, emd_points)
    return _set_metrics_from(mats, list(range(len(gen))), list(range(len(ref))))


def score_pointclouds(
    samples: Sequence[Tensor],
    items: Sequence[dict],
    normalization: str = "sphere",
    emd: bool = True,
    emd_points: int = 128,
    per_class: bool = True,
) -> dict[str, float]:
    """Score generated ``samples[i]`` (made for ``items[i]``'s condition) against the items' own clouds.

    Returns the PointFlow set metrics over all clouds and per class, and the nearest-reference class
    accuracy with its chance level and its ceiling on real clouds. Each distance matrix is computed once;
    per-class metrics use its sub-matrices.
    """
    if len(samples) != len(items) or not samples:
        raise ValueError(f"score needs one generated sample per item; got {len(samples)} and {len(items)}")
    gen = [
        normalize_cloud(s.detach().float().cpu(), normalization, f"generated sample {i}")
        for i, s in enumerate(samples)
    ]
    ref = [
        normalize_cloud(it["sample"].float(), normalization, f"reference {it.get('meta', {}).get('name', i)}")
        for i, it in enumerate(items)
    ]
    labels = [it.get("meta", {}).get("class") for it in items]
    mats = _matrices(gen, ref, emd, emd_points)
    everyone = list(range(len(gen)))
    out = _set_metrics_from(mats, everyone, everyone)
    classes = sorted({c for c in labels if c is not None})
    if classes:
        d_gr = mats["cd"][2]
        out["nn_class_acc"] = nearest_reference_accuracy(d_gr, labels, labels)
        out["nn_class_chance"] = 1.0 / len(classes)
        if len(ref) > 1:
            d_rr = mats["cd"][1].clone().fill_diagonal_(float("inf"))
            out["nn_class_acc_real"] = nearest_reference_accuracy(d_rr, labels, labels)
        if per_class and len(classes) > 1:
            for c in classes:
                idx = [i for i, lab in enumerate(labels) if lab == c]
                out[f"nn_class_acc/{c}"] = nearest_reference_accuracy(d_gr[idx], [c] * len(idx), labels)
                out.update({f"{k}/{c}": v for k, v in _set_metrics_from(mats, idx, idx).items()})
    return out
