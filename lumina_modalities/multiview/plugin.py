"""The "multiview" modality: V posed views of one object as one token sequence on a 3-D (view, h, w) grid.

A sample is a tensor ``(V, C + 12, H, W)``: per view, C colour channels in [-1, 1], then the view's camera
(rows 0-2 of its 4 x 4 camera-to-world matrix, 12 numbers, see :mod:`.cameras`) broadcast over the pixels, so
one tensor carries the images and their poses through datasets, batching, generation and previews.

Tokens are ``p x p`` patches of the colour channels of every view, flattened in (C, ph, pw) order; positions
are ``(view, row, column)`` in patch units, so the views sit on the first RoPE axis (head dimension split
``axis_split``, default d/4 : 3d/8 : 3d/8). Cameras are made relative to the first view and reach the
model as per-token conditioning (``TokenBatch.token_cond``, added to the token embedding by the adapter):

* ``camera="plucker"``: the Plücker rays ``(d, o x d)`` of the patch's p x p pixels (6 p^2 numbers per token);
  rays do not depend on the resolution;
* ``camera="matrix"``: the view's relative camera-to-world rows (12 numbers, the same for all its tokens)
  through the adapter's MLP, as MVDream embeds cameras;
* ``camera="none"``: no camera input (a baseline).

The shape descriptor of a sample is a :class:`~.request.ViewsRequest`: the views' size and their cameras
(packed as the tuple ``(V, C, H, W, *cameras)``, 12 V camera numbers), so ``layout`` can rebuild the camera
conditioning of any number of views at any poses: generating 8 views from
a model trained on 4 is ``shape_for(8)`` (or the ``sample_views`` parameter).

**A given first view** (image-to-multi-view, ``given_views=k``, usually 1): the first k views of a sample are
a condition, not generated. Their tokens sit in the sequence, clean, at their own (view, h, w) positions, and
are marked ``TokenBatch.given``: the flow objective keeps them at the data at every t and grades only the other
views; generation starts them at the given pixels and holds them, so they come back exactly as given. The
model tells them apart by one more per-token conditioning channel (1 on given tokens, 0 elsewhere). The request
then also carries the given views' pixels (``ViewsRequest.given``), so ``layout`` (and with it evaluation
and previews) rebuilds them; ``given_image`` supplies the first view of
``default_shape`` (``lumina sample``) from a picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core import grid
from lumina_core.grid import grid_positions
from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import MODALITIES
from lumina_core.tokens import TokenBatch

from .cameras import check_rigid, orbit, plucker, relative_to_first
from .preview import write_views_previews
from .request import CAM, ViewsRequest

CAMERA_ENCODINGS = ("plucker", "matrix", "none")


def patchify(x: Tensor, p: int) -> Tensor:
    """(V, C, H, W) -> (V * H/p * W/p, C p p), views then rows then columns, each patch in (C, ph, pw) order
    (:func:`lumina_core.grid.patchify` with a one-view patch on the view axis)."""
    return grid.patchify(x, (1, p, p), channel_dim=1)


def cameras_of(sample: Tensor, channels: int) -> Tensor:
    """(V, 4, 4) camera-to-world matrices stored in a sample's camera channels."""
    rows = sample[:, channels : channels + CAM, 0, 0].reshape(-1, 3, 4).double()
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=rows.dtype).expand(rows.shape[0], 1, 4)
    return torch.cat([rows, bottom], dim=1)


def attach_cameras(images: Tensor, c2w: Tensor) -> Tensor:
    """(V, C, H, W) images + (V, 4, 4) cameras -> the (V, C + 12, H, W) sample."""
    v, _, h, w = images.shape
    cams = c2w[:, :3, :4].reshape(v, CAM, 1, 1).to(images.dtype).expand(v, CAM, h, w)
    return torch.cat([images, cams], dim=1)


@MODALITIES.register("multiview")
class MultiviewPlugin(ModalityPlugin):
    """Caption-, class- or un-conditioned generation of V posed views of one object.

    Args:
        views: V of the training samples (sets the RoPE training extent of the view axis).
        size: H = W of a view, or ``(H, W)``.
        channels: C (3 for RGB).
        patch: p, pixels per patch side.
        camera: ``"plucker"``, ``"matrix"`` or ``"none"`` (see the module docstring).
        fov: vertical field of view of every camera, degrees.
        elevation, radius: the default orbit (degrees, scene units) that ``default_shape`` uses.
        sample_views: number of views ``default_shape`` asks for (default ``views``), e.g. 8 from a model
            trained on 4; they are spread evenly over the orbit unless ``azimuths`` lists them (degrees).
        axis_split: share of each head's rotary dimension for (view, h, w).
        rope_theta: RoPE base.
        fps: frame rate of the turntable GIF previews.
        given_views: k, the number of leading views that are given (the condition image) rather than generated;
            0 (default): all views are generated.
        given_image: a picture file (PNG, JPEG...) used as the given first view of ``default_shape`` (resized
            to ``size``), for ``lumina sample`` with ``given_views: 1``; the cameras stay the default orbit's,
            so the picture should be seen from ``elevation`` and ``radius``.
        autoencoder: a registered codec node, e.g. ``{name: autoencoder_kl, params: {path: ...}}`` (the image
            plugin's frozen AutoencoderKL, reached through ``CODECS`` by name): tokens are then patches of each
            view's latents, and the Plücker rays those of the latent pixels.
    """

    name = "multiview"
    api_version = "1.0"
    conditions = frozenset({"text", "class", "none"})
    preview_formats = ("png", "gif")
    default_recipe = "recipes/multiview/scenes_tiny.yaml"
    nested_components = {"autoencoder": "codec"}

    def __init__(
        self,
        views: int = 4,
        size: int | Sequence[int] = 32,
        channels: int = 3,
        patch: int = 4,
        camera: str = "plucker",
        fov: float = 40.0,
        elevation: float = 20.0,
        radius: float = 3.2,
        sample_views: int | None = None,
        azimuths: Sequence[float] | None = None,
        axis_split: Sequence[int] = (2, 3, 3),
        rope_theta: float = 10000.0,
        fps: float = 4.0,
        autoencoder: dict | None = None,
        given_views: int = 0,
        given_image: str | None = None,
    ) -> None:
        problems = []
        self.codec = None
        if autoencoder:  # latents through a registered codec (the image plugin's autoencoder_kl), by name
            from lumina_core.registry import CODECS

            self.codec = CODECS.build(dict(autoencoder))
        factor = int(getattr(self.codec, "factor", 1))
        hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        if len(hw) != 2 or min(hw) < 1:
            problems.append(f"size must be an int or (H, W) of positive ints; got {size!r}")
        elif hw[0] % (patch * factor) or hw[1] % (patch * factor):
            problems.append(f"size {hw} must be a multiple of patch x autoencoder factor = {patch * factor}")
        if camera not in CAMERA_ENCODINGS:
            problems.append(f"camera must be one of {CAMERA_ENCODINGS}; got {camera!r}")
        if views < 1 or (sample_views is not None and sample_views < 1):
            problems.append(f"views and sample_views must be >= 1; got {views}, {sample_views}")
        if azimuths is not None and sample_views is not None and len(azimuths) != sample_views:
            problems.append(f"azimuths lists {len(azimuths)} views but sample_views is {sample_views}")
        if not 0 <= int(given_views) < min(views, sample_views or views):
            problems.append(
                f"given_views must be >= 0 and leave at least one view to generate (views={views}, "
                f"sample_views={sample_views}); got {given_views}"
            )
        if given_image is not None and not Path(given_image).is_file():
            problems.append(
                f"given_image {given_image!r} is not a file (expected a picture of the first view)"
            )
        if given_image is not None and int(given_views) < 1:
            problems.append("given_image needs given_views >= 1 (it is the first view of the samples)")
        if not 0 < fov < 180:
            problems.append(f"fov must be in (0, 180) degrees; got {fov}")
        if problems:
            raise ValueError("invalid multiview parameters: " + "; ".join(problems))
        self.views, self.size, self.channels, self.patch = int(views), hw, int(channels), int(patch)
        self.factor = factor
        self.token_channels = int(self.codec.latent_channels) if self.codec is not None else self.channels
        self.camera, self.fov, self.elevation, self.radius = (
            camera,
            float(fov),
            float(elevation),
            float(radius),
        )
        self.azimuths = None if azimuths is None else [float(a) for a in azimuths]
        self.sample_views = int(sample_views or (len(self.azimuths) if self.azimuths else views))
        self.axis_split = tuple(int(a) for a in axis_split)
        self.rope_theta, self.fps = float(rope_theta), float(fps)
        self.given_views, self.given_image = int(given_views), given_image
        super().__init__(
            views=self.views, size=list(hw), channels=self.channels, patch=self.patch, camera=camera,
            fov=self.fov, elevation=self.elevation, radius=self.radius, sample_views=sample_views,
            azimuths=self.azimuths, axis_split=list(self.axis_split), rope_theta=self.rope_theta,
            fps=self.fps, autoencoder=autoencoder, given_views=self.given_views,
            given_image=given_image,
        )  # fmt: skip

    # -- tokens ------------------------------------------------------------------------------------------
    @property
    def token_dim(self) -> int:
        return self.token_channels * self.patch * self.patch

    @property
    def token_cond_dim(self) -> int:
        cam = {"plucker": 6 * self.patch * self.patch, "matrix": CAM, "none": 0}[self.camera]
        return cam + (1 if self.given_views else 0)  # + the "given" flag

    def adapter_spec(self) -> AdapterSpec:
        d = self.token_dim
        h, w = self.size
        return AdapterSpec(
            in_dim=d,
            out_dim=d,
            num_axes=3,
            axis_split=self.axis_split,
            rope_layout="blocked",
            rope_theta=self.rope_theta,
            train_extent=(float(self.views), float(h // self.multiple), float(w // self.multiple)),
            token_cond_dim=self.token_cond_dim,
        )

    @property
    def multiple(self) -> int:
        """Pixels per token side: the patch times the autoencoder's downsampling factor."""
        return self.patch * self.factor

    def _check(self, i: int, x: Tensor) -> None:
        c = self.channels
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != c + CAM:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"multiview sample {i} must be a tensor (V, {c} + 12, H, W): {c} colour channels and the 12 "
                f"camera numbers of each view; got {got}"
            )
        if x.shape[0] < 1 or x.shape[2] % self.multiple or x.shape[3] % self.multiple:
            raise ValueError(
                f"multiview sample {i}: {x.shape[0]} views of {x.shape[2]}x{x.shape[3]} pixels; need at least one "
                f"view and sides that are multiples of {self.multiple} (patch x autoencoder factor)"
            )
        cams = x[:, c:]
        spread = (cams - cams[:, :, :1, :1]).abs().amax().item() if cams.numel() else 0.0
        if spread > 1e-4:
            raise ValueError(
                f"multiview sample {i}: camera channels must be constant over each view's pixels"
            )
        check_rigid(cameras_of(x, c), what=f"multiview sample {i}: camera of view")

    def camera_condition(self, c2w: Tensor, height: int, width: int) -> Tensor | None:
        """(V * gh * gw, Dk) per-token camera conditioning of one sample's cameras, or None; ``height`` and
        ``width`` are those of the token space (latent pixels with an autoencoder: the rays of their centres)."""
        if self.camera == "none":
            return None
        rel = relative_to_first(c2w)
        gh, gw = height // self.patch, width // self.patch
        if self.camera == "plucker":
            return patchify(plucker(rel, height, width, self.fov), self.patch)
        per_view = rel[:, :3, :4].reshape(-1, CAM)
        return per_view.repeat_interleave(gh * gw, dim=0)

    def token_condition(self, c2w: Tensor, height: int, width: int) -> Tensor | None:
        """(V * gh * gw, Dk) per-token conditioning of one sample: its camera encoding, then (with
        ``given_views``) the flag that is 1 on the given views' tokens; None when there is neither."""
        cam = self.camera_condition(c2w, height, width)
        if not self.given_views:
            return cam
        per_view = (height // self.patch) * (width // self.patch)
        flag = torch.zeros(c2w.shape[0] * per_view, 1)
        flag[: self.given_views * per_view] = 1.0
        return flag if cam is None else torch.cat([cam, flag], dim=1)

    def tokenize(self, samples: Sequence[Tensor], encode: bool = True) -> TokenBatch:
        """Samples to tokens; ``encode=False`` skips the autoencoder (zero tokens, for :meth:`layout`)."""
        if len(samples) == 0:
            raise ValueError("tokenize needs at least one multiview sample")
        tokens, positions, shapes, conds, given = [], [], [], [], []
        for i, x in enumerate(samples):
            self._check(i, x)
            v, _, h, w = x.shape
            if v <= self.given_views:
                raise ValueError(
                    f"multiview sample {i} has {v} views but the first {self.given_views} are given: "
                    "at least one more view is needed to generate"
                )
            x = x.float()
            lh, lw = h // self.factor, w // self.factor
            if self.codec is None:
                z = x[:, : self.channels]
            elif encode:
                z = self.codec.encode(x[:, : self.channels])  # (V, c, H/f, W/f)
            else:
                z = x.new_zeros(v, self.token_channels, lh, lw)
            tokens.append(patchify(z, self.patch))
            positions.append(grid_positions(v, h // self.multiple, w // self.multiple, device=x.device))
            shapes.append(self.sample_shape(x))
            cond = self.token_condition(cameras_of(x, self.channels), lh, lw)
            if cond is not None:
                conds.append(cond.to(device=x.device, dtype=torch.float32))
            if self.given_views:
                flags = torch.zeros(tokens[-1].shape[0], dtype=torch.bool, device=x.device)
                flags[: self.given_views * (lh // self.patch) * (lw // self.patch)] = True
                given.append(flags)
        return TokenBatch.from_sequences(
            tokens, positions, shapes, meta={"patch": self.patch}, token_cond=conds or None,
            given=given or None,
        )  # fmt: skip

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        """Each sample's tokens back to its views, with the cameras of its shape descriptor attached."""
        d = self.token_dim
        if batch.dim < d:
            raise ValueError(f"multiview tokens must be at least {d} wide (C p p); got {batch.dim}")
        out = []
        for i, shape in enumerate(batch.shapes):
            request = ViewsRequest(shape)
            v, c, h, w = request.shape
            n = v * (h // self.multiple) * (w // self.multiple)
            if int(batch.mask[i].sum()) != n:
                raise ValueError(
                    f"sample {i}: shape {shape[:4]} needs {n} tokens; the mask has {int(batch.mask[i].sum())}"
                )
            latent_shape = (v, self.token_channels, h // self.factor, w // self.factor)
            z = grid.unpatchify(
                batch.tokens[i, :n, :d], latent_shape, (1, self.patch, self.patch), channel_dim=1
            )
            images = z if self.codec is None else self.codec.decode(z).to(z.dtype)
            given = request.given
            if given is not None and self.codec is not None:  # the condition, not its lossy reconstruction
                images = torch.cat([given.to(images), images[given.shape[0] :]])
            out.append(attach_cameras(images, request.cameras))
        return out

    def sample_shape(self, sample: Tensor) -> ViewsRequest:
        """The sample's views, their cameras and (``given_views`` k > 0) the pixels of its first k views."""
        v, _, h, w = sample.shape
        cams = sample[:, self.channels : self.channels + CAM, 0, 0].float().flatten().tolist()
        pixels = sample[: self.given_views, : self.channels].float().flatten().tolist()
        return ViewsRequest((int(v), self.channels, int(h), int(w), *cams, *pixels))

    def shape_for(self, views: int | None = None, azimuths: Sequence[float] | None = None,
                  elevation: float | None = None) -> ViewsRequest:  # fmt: skip
        """``views`` views evenly spaced on the default orbit (or at ``azimuths``), none given."""
        az = list(azimuths) if azimuths is not None else None
        c2w = orbit(views or len(az or []) or self.sample_views, self.elevation if elevation is None else elevation,
                    self.radius, azimuths=az)  # fmt: skip
        return ViewsRequest.make(self.channels, self.size, c2w)

    def default_shape(self) -> ViewsRequest:
        """``sample_views`` views on the default orbit; with ``given_views``, the first from ``given_image``."""
        shape = self.shape_for(self.sample_views, self.azimuths)
        if not self.given_views:
            return shape
        if self.given_image is None:
            raise ValueError(
                f"this multiview model generates views from {self.given_views} given view(s): say which picture "
                "is the first view with tasks.0.modality.params.given_image=PATH (a PNG seen from the recipe's "
                "elevation and radius), or sample held-out items (lumina eval)"
            )
        if self.given_views != 1:
            raise ValueError(f"given_image supplies one view; given_views is {self.given_views}")
        return ViewsRequest.make(
            self.channels,
            self.size,
            shape.cameras,
            read_view(self.given_image, self.size, self.channels)[None],
        )

    def layout(
        self, shapes: Sequence[tuple[Any, ...]], device: torch.device | str | None = None
    ) -> TokenBatch:
        blanks = []
        for s in shapes:
            request = ViewsRequest(s)
            views = torch.zeros(request.shape, device=device)
            given = request.given
            if given is not None:
                views[: given.shape[0]] = given.to(device)
            blanks.append(attach_cameras(views, request.cameras))
        batch = self.tokenize(blanks, encode=self.codec is not None and self.given_views > 0)
        if batch.given is None:
            return batch.with_tokens(torch.zeros_like(batch.tokens))
        return batch.with_tokens(batch.tokens * batch.given[..., None])  # the given views' tokens, else 0

    def to(self, device: torch.device | str) -> MultiviewPlugin:
        if self.codec is not None:
            self.codec.to(device)
        return self

    def evaluate(
        self, samples: Sequence[Tensor], items: Sequence[dict], dataset: Any = None
    ) -> dict[str, float]:
        """The dataset's checkers on the generated views only: with ``given_views`` k, the first k views (given,
        returned unchanged) are left out of the fidelity and adherence scores, and consistency is that of the
        generated views against the hull of all the others, given ones included."""
        score = getattr(dataset, "score", None)
        if not callable(score):
            return {}
        return dict(score(list(samples), list(items), given_views=self.given_views) if self.given_views
                    else score(list(samples), list(items)))  # fmt: skip

    def guidance_mask(self, k: int, shape: tuple[Any, ...] | None = None) -> Tensor:
        """Token channels of the first ``k`` colour channels: patches are (C, ph, pw), so the first k p^2."""
        if not 1 <= int(k) <= self.token_channels:
            raise ValueError(f"cfg_channels={k} must be between 1 and {self.token_channels}")
        mask = torch.zeros(self.token_dim, dtype=torch.bool)
        mask[: int(k) * self.patch * self.patch] = True
        return mask

    # -- people-facing output ----------------------------------------------------------------------------
    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        """A PNG grid (one row of views per sample, captioned) and a turntable GIF per sample."""
        return write_views_previews(
            [s[:, : self.channels] for s in samples], conditions, out_dir, stem, self.fps
        )

    def preview_to_tensorboard(self, writer: Any, samples: Sequence[Tensor], step: int, tag: str) -> None:
        for i, s in enumerate(samples):
            views = ((s[:, : self.channels].float().clamp(-1, 1) + 1) / 2).cpu()
            writer.add_image(f"{tag}/{i}", torch.cat(list(views), dim=-1), step)


def given_from_shape(shape: Sequence[Any]) -> Tensor | None:
    """(k, C, H, W) pixels of the given views a shape descriptor carries, or None (``ViewsRequest.given``)."""
    return ViewsRequest(shape).given


def read_view(path: str | Path, size: Sequence[int], channels: int = 3) -> Tensor:
    """(C, H, W) colours in [-1, 1] of a picture file, resized to ``size`` (H, W)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"given view {str(path)!r} is not a readable picture ({err})") from err
    x = torch.from_numpy(arr).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1) / 127.5 - 1
    if tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x[None], size=tuple(size), mode="bilinear", antialias=True)[0]
    return x.clamp(-1, 1)


def cameras_from_shape(shape: Sequence[Any]) -> Tensor:
    """(V, 4, 4) cameras of a shape descriptor (``ViewsRequest.cameras``)."""
    return ViewsRequest(shape).cameras
