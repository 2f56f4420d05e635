"""The modality plugin contract.

A modality plugin is everything the core needs to know about one kind of data, and nothing more:

* ``adapter_spec()``  - token width in and out, RoPE axes and how the head dimension is split across them;
* ``tokenize(samples)`` / ``detokenize(batch)`` - samples (one tensor each) to a :class:`TokenBatch` and back;
* ``layout(shapes)`` - an empty TokenBatch (zero tokens, real positions and mask) for samples of the given
  shapes, which is where generation starts (noise is drawn in token space);
* ``conditions`` - which conditions it accepts: ``"text"``, ``"class"``, ``"none"`` (the kinds conditioners
  give; conditions that belong to each token, such as the camera of a view, are ``TokenBatch.token_cond``);
* datasets - registered in :data:`lumina_core.registry.DATASETS` with ``modality = <plugin name>``;
  every dataset yields items ``{"sample": Tensor, "condition": str | int | None, "meta": dict}``;
* ``write_preview(...)`` - files a person can look at or listen to (PNG, WAV, PLY, GIF);
* ``preview_items(paths)`` - how those files are shown on the demo page (``lumina serve``);
* ``evaluate(...)`` - metrics with ground truth (adherence checkers, FID-style scores);
* ``default_recipe`` - the recipe that shows the plugin off (:meth:`ModalityPlugin.default_recipe_path`);
* ``params`` - the constructor keywords it was built with (:meth:`ModalityPlugin.component` rebuilds it).

The core never imports a modality; plugins are found through the registry (entry point group
``lumina.plugins``). Built-in modalities use exactly the same API as external ones.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from lumina_core import CORE_API_VERSION
from lumina_core.registry import ComponentSpec
from lumina_core.tokens import TokenBatch

#: the kinds of whole-sample condition a conditioner gives (``Conditioner.kind``); per-token conditions
#: (cameras of views, ...) are not a kind: they travel as ``TokenBatch.token_cond``
CONDITION_KINDS = frozenset({"text", "class", "none"})

#: how a preview file is shown on a page, by suffix (``lumina serve``; gradio's components of the same names)
PREVIEW_KINDS: dict[str, str] = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".webp"), "image"),  # an animated GIF plays as an image
    **dict.fromkeys((".wav", ".flac", ".mp3", ".ogg"), "audio"),
    **dict.fromkeys((".ply", ".obj", ".glb", ".gltf", ".stl"), "model3d"),  # turned around in a 3-D viewer
    **dict.fromkeys((".mp4", ".webm"), "video"),
}


@dataclass(frozen=True)
class PreviewItem:
    """One file of a preview as a page shows it: ``kind`` is ``"image"``, ``"audio"``, ``"model3d"`` or
    ``"video"``; ``label`` a short caption."""

    kind: str
    path: Path
    label: str = ""


@dataclass(frozen=True)
class AdapterSpec:
    """What the per-modality adapter around the shared trunk needs.

    Attributes:
        in_dim: token width produced by ``tokenize`` (e.g. C * p * p for image patches).
        out_dim: width the final layer predicts. A plugin gives ``in_dim`` (a velocity per token value); a
            task with ``learn_sigma`` predicts ``2 * in_dim`` (:meth:`with_learn_sigma`; the released image
            model's head). The first ``in_dim`` output channels are always the prediction in the *same order
            as the input tokens*.
        num_axes: number of position axes A (0: no RoPE, e.g. unordered point clouds).
        axis_split: relative share of each attention head's rotary dimension per axis, e.g. (1, 1) for the
            released 2D layout or (2, 3, 3) for d/4 : 3d/8 : 3d/8 on (t, h, w). Length ``num_axes``.
        rope_layout: "interleaved" (released 2D: the axes' rotation pairs alternate pair by pair) or
            "blocked" (each axis owns a contiguous slice of the head dimension).
        rope_theta: RoPE base.
        train_extent: per-axis extent of positions seen in training (e.g. (32, 32) patches), used to
            compute RoPE scale factors when generating beyond it; None if not applicable.
        token_cond_dim: width Dk of the per-token conditioning ``TokenBatch.token_cond`` that ``tokenize`` and
            ``layout`` attach (e.g. camera rays per patch); 0 (default) for none. The adapter adds
            ``MLP(token_cond)`` (Linear - SiLU - Linear, last layer zero-initialised) to the token embedding.
    """

    in_dim: int
    out_dim: int
    num_axes: int
    axis_split: tuple[int, ...] = ()
    rope_layout: str = "interleaved"
    rope_theta: float = 10000.0
    train_extent: tuple[float, ...] | None = None
    token_cond_dim: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.in_dim <= 0:
            problems.append(f"in_dim must be positive, got {self.in_dim}")
        if self.out_dim < self.in_dim:
            problems.append(f"out_dim ({self.out_dim}) must be at least in_dim ({self.in_dim})")
        if self.num_axes < 0:
            problems.append(f"num_axes must be >= 0, got {self.num_axes}")
        if self.num_axes and len(self.axis_split) != self.num_axes:
            problems.append(
                f"axis_split must give one share per axis ({self.num_axes}); got {self.axis_split!r}"
            )
        if self.token_cond_dim < 0:
            problems.append(f"token_cond_dim must be >= 0, got {self.token_cond_dim}")
        if self.rope_layout not in ("interleaved", "blocked"):
            problems.append(f"rope_layout must be 'interleaved' or 'blocked', got {self.rope_layout!r}")
        if problems:
            raise ValueError("invalid AdapterSpec: " + "; ".join(problems))

    def with_learn_sigma(self, learn_sigma: bool = True) -> AdapterSpec:
        """The spec of a task whose final layer also predicts a second value per token channel (the
        released model's "learn sigma" head, ``tasks[i].learn_sigma``): ``out_dim = 2 * in_dim``. Only the
        first ``in_dim`` outputs are the velocity; the rest are carried for weight compatibility. False
        returns the spec unchanged."""
        return replace(self, out_dim=2 * self.in_dim) if learn_sigma else self


class ModalityPlugin(abc.ABC):
    """Base class of every modality plugin. Subclass, fill in the abstract methods, register:

    >>> from lumina_core.registry import MODALITIES
    >>> @MODALITIES.register("tones")
    ... class TonePlugin(ModalityPlugin): ...

    Constructor keyword arguments come from the recipe (``tasks[i].modality.params``).
    """

    #: registered name (set by subclasses)
    name: ClassVar[str] = ""
    #: core API version the plugin was written for; the registry refuses an incompatible major version
    api_version: ClassVar[str] = CORE_API_VERSION
    #: condition kinds this modality accepts (subset of CONDITION_KINDS)
    conditions: ClassVar[frozenset[str]] = frozenset({"none"})
    #: file formats write_preview produces, for documentation and the conformance suite
    preview_formats: ClassVar[tuple[str, ...]] = ()
    #: path of the default recipe, relative to the repository / plugin root (:meth:`default_recipe_path`)
    default_recipe: ClassVar[str | None] = None
    #: file extensions :meth:`read_file` reads (lower case, no dot, e.g. ``("png", "jpg")``): ``lumina predict``
    #: takes only these from a folder and counts the other files as ignored; empty: every file is tried
    read_extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        #: the constructor keywords (the recipe's ``modality.params``), as the subclass passes them on
        self.params = dict(params)

    def component(self) -> ComponentSpec:
        """``{name, params}`` of this plugin: ``MODALITIES.build(plugin.component())`` builds an equal one."""
        return ComponentSpec(self.name, dict(getattr(self, "params", {})))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "params", {}).items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def default_recipe_path(cls) -> Path | None:
        """The file of :attr:`default_recipe`: found in the folders above the plugin's module (the repository
        or plugin root); None when the plugin names none. Raises FileNotFoundError when it names a recipe
        that none of those folders holds."""
        if not cls.default_recipe:
            return None
        import sys

        module = sys.modules.get(cls.__module__)
        start = Path(getattr(module, "__file__", None) or ".").resolve().parent
        for folder in (start, *start.parents):
            candidate = folder / cls.default_recipe
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"modality {cls.name!r} names default_recipe {cls.default_recipe!r}, but no folder above "
            f"{start} holds it (it is relative to the repository or plugin root)"
        )

    # -- tokens ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def adapter_spec(self) -> AdapterSpec:
        """Token widths and RoPE layout of this modality (see :class:`AdapterSpec`)."""

    @abc.abstractmethod
    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        """Samples (each one tensor, possibly of different sizes) to a right-padded TokenBatch."""

    @abc.abstractmethod
    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        """Inverse of :meth:`tokenize`: one tensor per sample, in the sample's own size."""

    @abc.abstractmethod
    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        """The shape descriptor :meth:`layout` needs to reproduce this sample's token layout."""

    @abc.abstractmethod
    def default_shape(self) -> tuple[int, ...]:
        """The shape descriptor of what the plugin generates by default (e.g. (3, 32, 32))."""

    def layout(self, shapes: Sequence[tuple[int, ...]], device: torch.device | str | None = None) -> TokenBatch:
        """An empty TokenBatch for samples of the given shapes: zero tokens, real positions and mask.

        Generation draws noise of this layout in token space. The default tokenizes zero samples, which is
        right for any plugin whose ``sample_shape`` is the tensor shape; override when it is not.
        """
        zeros = [torch.zeros(tuple(s), device=device) for s in shapes]
        batch = self.tokenize(zeros)
        return batch.with_tokens(torch.zeros_like(batch.tokens))

    def guidance_mask(self, k: int, shape: tuple[int, ...] | None = None) -> Tensor:
        """(D,) bool: the token values classifier-free guidance acts on when a recipe restricts it to the
        sample's first ``k`` channels (``sampling.cfg_channels: k``); the other values keep the conditional
        prediction. What a "channel" is, and which ``k`` a released model was sampled with, is the plugin's
        business.

        The default finds the token values holding the first ``k`` channels of a channel-first sample by
        tokenizing a probe of ``shape`` (default: :meth:`default_shape`) whose first ``k`` channels differ from
        a zero sample; this is right for tokens that rearrange a sample per position (patches, mel patches,
        point coordinates). Override it when tokenize is not such a rearrangement (e.g. an autoencoder).
        """
        shape = tuple(shape or self.default_shape())
        if not shape or not 1 <= int(k) <= shape[0]:
            raise ValueError(f"cfg_channels={k} must be between 1 and the sample's channel count (shape {shape})")
        base = torch.zeros(shape)
        probe = base.clone()
        probe[: int(k)] = 1.0
        a, b = self.tokenize([base]), self.tokenize([probe])
        n = int(a.mask[0].sum())
        moved = (b.tokens[0, :n] - a.tokens[0, :n]).abs() > 1e-6  # (L, D)
        col = moved.any(dim=0)
        if bool((moved != col.unsqueeze(0)).any()) or not bool(col.any()):
            raise ValueError(
                f"cannot tell which token channels hold the first {k} sample channels of "
                f"{type(self).__name__} by probing; override guidance_mask(k, shape) or pass a mask"
            )
        return col

    # -- reading a user's files (``lumina predict``) -------------------------------------------------------
    def read_file(self, path: str | Path) -> Tensor:
        """One sample from a file in the modality's usual format (an image, a WAV, ...), at the plugin's
        default size, as the datasets give it. Default: this modality reads no files (a ValueError)."""
        raise ValueError(f"the {self.name!r} modality cannot read sample files (it does not implement read_file)")

    # -- device placement for frozen helper networks (autoencoders, vocoders) -------------------------
    def to(self, device: torch.device | str) -> ModalityPlugin:
        """Move frozen helper networks (e.g. an autoencoder) to ``device``. Default: nothing to move."""
        return self

    # -- people-facing output -------------------------------------------------------------------------
    @abc.abstractmethod
    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        """Write files a person can look at or listen to; return their paths."""

    def preview_items(self, paths: Sequence[str | Path]) -> list[PreviewItem]:
        """How the files :meth:`write_preview` returned are shown on a page, in order. The default maps each
        file by its suffix (:data:`PREVIEW_KINDS`: PNG/GIF -> image, WAV -> audio, PLY/OBJ/GLB -> model3d,
        MP4/WebM -> video) and leaves out files a page cannot show (e.g. CSV). Override to reorder, relabel
        or convert (e.g. write a GLB a browser's viewer renders better than the preview format)."""
        items = []
        for p in map(Path, paths):
            kind = PREVIEW_KINDS.get(p.suffix.lower())
            if kind is not None:
                items.append(PreviewItem(kind, p, p.stem))
        return items

    def evaluate(self, samples: Sequence[Tensor], items: Sequence[dict], dataset: Any = None) -> dict[str, float]:
        """Metrics of generated ``samples`` against the dataset ``items`` whose conditions produced them.

        The default delegates to ``dataset.score(samples, items)`` when the dataset has a ground-truth
        checker (:class:`lumina_core.data.Checker`), as :class:`~lumina_core.data.Scores`, else returns no
        metrics.
        """
        from lumina_core.data.checkers import Scores

        score = getattr(dataset, "score", None)
        return Scores(score(samples, items)) if callable(score) else {}

    def preview_to_tensorboard(  # noqa: B027 - optional hook, deliberately a no-op by default
        self, writer: Any, samples: Sequence[Tensor], step: int, tag: str
    ) -> None:
        """Log previews to a TensorBoard ``SummaryWriter``. Default: nothing."""
