"""Checkers of generated views, with ground truth (the scene and its renders) and without (consistency).

* Fidelity against ground-truth renders at the same poses: PSNR ``10 log10(1 / MSE)`` on [0, 1] colours,
  SSIM (Wang et al. 2004, 11 x 11 Gaussian window, sigma 1.5, through ``kornia.metrics.ssim``) and the IoU of
  the silhouettes (both found the same way: pixels that differ from the white background, so true renders
  score 1).
* Cross-view consistency without ground truth: the leave-one-out visual hull. The object's silhouette in view
  ``i`` must be the projection of the 3-D region that projects inside every silhouette. Carve a voxel grid
  with all views but ``i``, project the surviving voxels into view ``i`` and take the IoU with view ``i``'s own
  silhouette. Views of one consistent object agree (IoU near the value of true renders); views that do not
  fit together carve the hull away or contradict it. A view whose silhouette is empty or covers more than
  60 % of the image (noise, not an object in front of a background) scores 0.
* Caption adherence per view, with the scene's ground truth (the image checker's method: colour and shape of
  each object): the colour of an object is the palette colour nearest (by angle in RGB) to the mean generated
  colour over the pixels where the true render shows that object; its shape is the kind whose render (same
  scene, that object replaced by each kind of the same size and place) has the silhouette with the highest IoU
  with the generated silhouette.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cameras import project
from .render import BACKGROUND, COLORS, KINDS, Scene, render


def to01(views: Tensor, channels: int = 3) -> Tensor:
    """(V, >=C, H, W) in [-1, 1] -> (V, C, H, W) colours in [0, 1]."""
    return ((views[:, :channels].float().clamp(-1, 1) + 1) / 2).cpu()


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """(V,) PSNR in dB of images in [0, 1] (V, C, H, W), capped at 60 dB (identical images)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-6))).clamp_max(60.0)


def ssim(a: Tensor, b: Tensor, window: int = 11) -> Tensor:
    """(V,) mean SSIM of images in [0, 1] (V, C, H, W)."""
    import kornia

    return kornia.metrics.ssim(a.float(), b.float(), window).flatten(1).mean(dim=1)


def silhouette(views01: Tensor, threshold: float = 0.12) -> Tensor:
    """(V, H, W) bool: pixels whose colour differs from the white background by more than ``threshold``."""
    return (views01 - BACKGROUND).abs().amax(dim=1) > threshold


def iou(a: Tensor, b: Tensor) -> Tensor:
    """(V,) intersection over union of boolean masks (V, H, W); two empty masks count as 1."""
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def hull_consistency(sil: Tensor, c2w: Tensor, fov: float, bound: float = 1.6, grid: int = 64) -> Tensor:
    """(V,) leave-one-out visual-hull IoU of silhouettes ``sil`` (V, H, W) seen by cameras ``c2w`` (V, 4, 4).

    Voxels: ``grid^3`` centres in ``[-bound, bound]^3`` (the scene's region). A voxel survives view ``j`` when it
    projects inside the image onto a silhouette pixel. For view ``i`` the hull of the other views is projected
    (each voxel marks the pixel it falls in) and compared with silhouette ``i``. With one view there is no
    other view to check against: the result is NaN.
    """
    v, h, w = sil.shape
    if v < 2:
        return torch.full((v,), float("nan"))
    axis = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2 * bound - bound
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    pix, front = project(pts, c2w.float(), h, w, fov)  # (V, N, 2), (V, N)
    row, col = pix[..., 0].floor().long(), pix[..., 1].floor().long()
    inside = front & (row >= 0) & (row < h) & (col >= 0) & (col < w)
    flat = row.clamp(0, h - 1) * w + col.clamp(0, w - 1)  # (V, N)
    on_sil = torch.gather(sil.reshape(v, -1), 1, flat) & inside  # (V, N)
    out = []
    for i in range(v):
        others = torch.cat([on_sil[:i], on_sil[i + 1 :]]).all(dim=0) & inside[i]
        proj = torch.zeros(h * w, dtype=torch.bool)
        proj[flat[i][others]] = True
        out.append(iou(proj.reshape(1, h, w), sil[i : i + 1])[0])
    return torch.stack(out)


def object_like(sil: Tensor, max_cover: float = 0.6) -> Tensor:
    """(V,) 1.0 where the silhouette (V, H, W) is non-empty and covers at most ``max_cover`` of the image
    (the scenes are framed with background around the object), else 0.0: a view that is mostly foreground
    (noise) is not a view of an object, however well its loose hull "agrees"."""
    cover = sil.flatten(1).float().mean(1)
    return ((cover > 0) & (cover <= max_cover)).float()


def _nearest_color(rgb: Tensor) -> str:
    """The palette colour at the smallest angle from ``rgb`` (3,)."""
    names = list(COLORS)
    pal = torch.tensor([COLORS[n] for n in names])
    cos = (pal @ rgb) / (pal.norm(dim=1) * rgb.norm().clamp_min(1e-8))
    return names[int(cos.argmax())]


def adherence(views01: Tensor, scene: Scene, c2w: Tensor, fov: float, truth: dict[str, Tensor] | None = None,
              ) -> dict[str, float]:  # fmt: skip
    """Per-view colour and shape accuracy of generated views (V, 3, H, W) in [0, 1] for the captioned scene
    seen by cameras ``c2w``. ``truth``: the scene's render at those poses (computed when None)."""
    v, _, h, w = views01.shape
    truth = truth or render(scene, c2w, h, w, fov)
    gen_sil = silhouette(views01)
    color_hits, shape_hits = [], []
    for k, obj in enumerate(scene.objects):
        region = truth["object_id"] == k  # (V, H, W)
        for i in range(v):
            if int(region[i].sum()) == 0:
                continue  # the object is hidden in this view
            mean = views01[i][:, region[i]].mean(dim=1)
            color_hits.append(float(_nearest_color(mean) == obj.color))
        variants = [render(scene.with_kind(k, kind), c2w, h, w, fov, 2)["rgb"] for kind in KINDS]
        ious = torch.stack([iou(gen_sil, silhouette(rgb)) for rgb in variants])  # (kinds, V)
        shape_hits += (ious.argmax(dim=0) == KINDS.index(obj.kind)).float().tolist()
    color = sum(color_hits) / max(1, len(color_hits))
    shape = sum(shape_hits) / max(1, len(shape_hits))
    return {"color_acc": color, "shape_acc": shape, "adherence": (color + shape) / 2}


def score_views(views: Tensor, scene: Scene, c2w: Tensor, fov: float, bound: float = 1.6, given: int = 0,
                ) -> dict[str, float]:  # fmt: skip
    """All checks of one sample's colour views (V, C, H, W) in [-1, 1] against ``scene``. With ``given`` = k,
    the first k views were given (a condition) rather than generated: fidelity and adherence are those of
    views k.. only, and consistency is each generated view's agreement with the hull of all the others (the
    given views carve it too)."""
    gen = to01(views)
    v, _, h, w = gen.shape
    truth = render(scene, c2w, h, w, fov, supersample=2)
    gen_sil = silhouette(gen)
    g = slice(int(given), None)
    out = {
        "psnr": float(psnr(gen[g], truth["rgb"][g]).mean()),
        "ssim": float(ssim(gen[g], truth["rgb"][g]).mean()),
        "silhouette_iou": float(iou(gen_sil[g], silhouette(truth["rgb"][g])).mean()),
    }
    cons = hull_consistency(gen_sil, c2w, fov, bound) * object_like(gen_sil)
    out["consistency"] = float(cons[g].nanmean())
    out.update(adherence(gen[g], scene, c2w[g], fov, {k: t[g] for k, t in truth.items()}))
    return out
