"""Models trained here, written in the unified family's public layouts (``lumina convert RUN DST --to lumina2|z_image``).

    image = image_model_of_run(run)        # a RunWeights (lumina_core.interop.to_public.read_run_weights) -> LuminaImageModel
    check_release_shape(image, LUMINA2)     # ValueError listing what the release's architecture cannot hold

A run records its trunk config and its task's modality parameters (in its checkpoint's recipe); the image adapter's
token widths are read from its weights. :func:`check_release_shape` asks whether the public model class can hold
the model: it writes the model's public config (``lumina2_config`` / ``z_image_config``), reads it back as a
conversion would (``config_from_lumina2`` / ``config_from_z_image``) and compares what changes the function
(trunk settings, SwiGLU width, RoPE pairs, layout and base, token widths). A model converted from the release, and a
run fine-tuned from it with its recipe's ``model`` unchanged, passes; e.g. a ``next_dit`` trunk, interleaved RoPE,
grouped keys and values for Z-Image, or a learn-sigma head are refused, all differences at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lumina_core.interop.checkpoint_format import RunWeights
from lumina_core.interop.formats import WEIGHT_FIELDS, load_strict, spec_differences, trunk_differences
from lumina_core.model.config import NextDiTConfig
from lumina_core.model.lumina_model import LuminaModel
from lumina_core.model.unified import unified_ffn_hidden
from lumina_core.plugin import AdapterSpec

from ..plugin import ImagePlugin
from .lumina2 import config_from_lumina2, lumina2_config
from .model import LuminaImageModel
from .z_image import config_from_z_image, z_image_config


@dataclass(frozen=True)
class Release:
    """A public model class of the unified family: its name, its ``--to`` format, and the config round trip."""

    name: str
    fmt: str
    to_config: Callable[[LuminaImageModel], dict[str, Any]]
    from_config: Callable[[dict[str, Any]], tuple[NextDiTConfig, AdapterSpec, int]]


LUMINA2 = Release("Lumina-Image 2.0", "lumina2", lumina2_config, config_from_lumina2)
Z_IMAGE = Release("Z-Image", "z_image", z_image_config, config_from_z_image)

#: compared through what they give instead: the SwiGLU width (Z-Image's ignores multiple_of) and the caption's
#: RoPE pairs (the config written back carries the pairs, not the fraction asked for)
_INDIRECT = ("multiple_of", "ffn_dim_multiplier", "caption_rope_fraction")


def check_release_shape(image: LuminaImageModel, release: Release) -> None:
    """ValueError, one paragraph, when ``release``'s model class cannot hold ``image`` as it computes."""
    public = release.to_config(image)  # refuses another family or variant, naming it
    cfg, spec, _ = release.from_config(public)
    mine, spec_mine = image.model.config, image.model.adapters[image.task].spec
    labels = ("this model", release.name)
    diff = trunk_differences(mine, cfg, labels, tuple(f for f in WEIGHT_FIELDS if f not in _INDIRECT))
    if unified_ffn_hidden(mine) != unified_ffn_hidden(cfg):
        diff.append(
            f"SwiGLU width: this model {unified_ffn_hidden(mine)}, {release.name} {unified_ffn_hidden(cfg)}"
        )
    diff += spec_differences(spec_mine, spec, labels)
    if spec_mine.out_dim != spec_mine.in_dim:
        diff.append(
            f"output width: this model {spec_mine.out_dim} (a learn-sigma head), {release.name} {spec_mine.in_dim}"
        )
    if diff:
        raise ValueError(
            f"the model does not have {release.name}'s architecture, so its layouts cannot hold it: " + "; ".join(diff)
            + f". `--to {release.fmt}` writes {release.name} models: those `lumina convert --from {release.fmt}` "
            "wrote, and runs fine-tuned from one with the recipe's model and image settings unchanged"
        )  # fmt: skip


def _image_defaults() -> dict[str, Any]:
    """The image modality's parameter defaults (a recipe leaves out what it does not change)."""
    sig = inspect.signature(ImagePlugin.__init__)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def image_model_of_run(run: RunWeights) -> LuminaImageModel:
    """The image model a training run's checkpoint holds: the trunk its recipe built, the image adapter of its one
    task (patch size, RoPE layout and base from the recipe; token widths from the weights), the run's weights."""
    name = run.modality.get("name")
    if name != "image":
        raise ValueError(
            f"the run's task {run.task!r} is a {name!r} task; the public layouts hold an image model (a run of the "
            "image modality)"
        )
    params = {**_image_defaults(), **(run.modality.get("params") or {})}
    prefix = f"adapters.{run.task}."
    try:
        in_dim = int(run.state[prefix + "x_embedder.weight"].shape[1])
        out_dim = int(run.state[prefix + "final_layer.linear.weight"].shape[0])
    except KeyError as err:
        raise ValueError(
            f"the weights of {run.checkpoint} have no image adapter for task {run.task!r}: {err}"
        ) from err
    p = int(params["patch_size"])
    spec = AdapterSpec(in_dim=in_dim, out_dim=out_dim, num_axes=2, axis_split=(1, 1),
                       rope_layout=str(params["rope_layout"]), rope_theta=float(params["rope_theta"]))  # fmt: skip
    with torch.device("meta"):
        model = LuminaModel(run.config, {run.task: spec})
    try:
        load_strict(model, run.state)
    except ValueError as exc:
        raise ValueError(
            f"the weights of {run.checkpoint} do not fit the model its recorded recipe describes ({exc}); a public "
            "layout holds the trunk and the image adapter only"
        ) from exc
    return LuminaImageModel(model.eval(), p, in_dim // (p * p), run.task)
