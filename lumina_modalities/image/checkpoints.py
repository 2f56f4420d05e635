"""The public checkpoint formats of the Lumina-Next image model, registered in ``CHECKPOINT_FORMATS``:

* ``released`` - the released ``consolidated*.pth`` / ``.safetensors`` (one file, or a folder holding one);
* ``diffusers`` - diffusers' ``LuminaNextDiT2DModel`` folder (``transformer/`` of a pipeline, or a single file);
  a ``Lumina2Transformer2DModel`` folder loads as Lumina-Image 2.0 (the ``unified`` trunk family);
* ``lumina2`` - Lumina-Image 2.0 in any of its layouts: the original release's file (or a folder holding one),
  ComfyUI's single file (``model.diffusion_model.`` prefix) or diffusers' folder (``docs/lumina2.md``);
* ``z_image`` - Z-Image: the release's / diffusers' folder (the same key names) or ComfyUI's single file.

``lumina2`` and ``z_image`` also write those layouts back from our format or from a training run of such a model
fine-tuned in full (``lumina convert SRC --to NAME --layout comfyui|released|diffusers``,
:meth:`CheckpointFormat.export` and :meth:`CheckpointFormat.from_run`).

Both hold the trunk and one image task: patch tokens of ``C p p`` values flattened in (C, ph, pw) order, and
a final layer that predicts twice that (the released "learn sigma" head), so a recipe that samples them sets
``tasks[i].learn_sigma: true``. ``lumina convert SRC DST --from released|diffusers`` writes our format; the
key maps (released <-> ours <-> diffusers) are :mod:`lumina_modalities.image.interop.keys`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from lumina_core.interop.checkpoint_format import CheckpointFormat, LoadedCheckpoint, RunWeights
from lumina_core.registry import CHECKPOINT_FORMATS

from .interop import (
    LuminaImageModel,
    from_diffusers,
    from_lumina2,
    from_released,
    from_z_image,
    image_extra,
    lumina2_config,
    to_lumina2_diffusers,
    to_lumina2_released,
    to_z_image_comfyui,
    to_z_image_diffusers,
    z_image_config,
)
from .interop.layout_files import COMFY_PREFIX, write_diffusers_folder, write_single_file
from .interop.trained import LUMINA2, Z_IMAGE, Release, check_release_shape, image_model_of_run

#: the adapter of the released text-to-image model: patch 2 on 4-channel latents, learn-sigma output
RELEASED_IMAGE_ADAPTER = dict(in_dim=4 * 2 * 2, out_dim=2 * 4 * 2 * 2, num_axes=2, axis_split=(1, 1))

_FIT_ADVICE = (
    "check the image modality's patch_size and autoencoder latent channels, and the task's learn_sigma: "
    "released and diffusers image checkpoints predict 2 x the token width, so set tasks[i].learn_sigma: true"
)


def _image_of(loaded: LoadedCheckpoint) -> LuminaImageModel:
    img = loaded.extra.get("image")
    if not isinstance(img, dict):
        raise ValueError(
            "the converted checkpoint has no 'image' record in its config.json (it was not converted from an "
            "image format), so it has no image layout to export to"
        )
    return LuminaImageModel(loaded.model, img["patch_size"], img["in_channels"], loaded.task)


class _ImageModelFormat(CheckpointFormat):
    """A public layout of the Lumina-Next image model: a subclass names its reader (``src``, ``preset`` ->
    :class:`~lumina_modalities.image.interop.LuminaImageModel`); loading and what is recorded are the same."""

    fit_advice = _FIT_ADVICE
    read: Callable[[str, str | None], LuminaImageModel]

    def load(self, src: str | Path, preset: str | None = None) -> LoadedCheckpoint:
        image = self.read(str(src), preset)
        return LoadedCheckpoint(image.model, image.task, image_extra(image))


@CHECKPOINT_FORMATS.register("released")
class ReleasedImageFormat(_ImageModelFormat):
    """The released Lumina-Next checkpoint (:func:`lumina_modalities.image.interop.from_released`)."""

    name = "released"
    description = (
        "released Lumina-Next image checkpoint: consolidated*.pth / .safetensors, or a folder holding one"
    )
    read = staticmethod(from_released)


@CHECKPOINT_FORMATS.register("diffusers")
class DiffusersImageFormat(_ImageModelFormat):
    """diffusers' ``LuminaNextDiT2DModel`` (:func:`lumina_modalities.image.interop.from_diffusers`)."""

    name = "diffusers"
    description = (
        "diffusers LuminaNextDiT2DModel: a transformer folder (config.json + safetensors) or one file"
    )
    read = staticmethod(from_diffusers)


def _read_lumina2(src: str, preset: str | None = None) -> LuminaImageModel:
    if preset not in (None, "lumina2"):
        raise ValueError(
            f"--preset {preset!r} does not apply to Lumina-Image 2.0: its sizes come from the checkpoint "
            "(a diffusers folder's config.json, or the tensor shapes of a released / ComfyUI file)"
        )
    return from_lumina2(src)


class _UnifiedFormat(_ImageModelFormat):
    """A public model class of the unified family: it writes a converted checkpoint or a training run of a model of
    its architecture (:func:`~lumina_modalities.image.interop.trained.check_release_shape`) in each of its layouts
    (a subclass's :meth:`write`)."""

    release: ClassVar[Release]

    def from_run(self, run: RunWeights) -> LoadedCheckpoint:
        image = image_model_of_run(run)
        check_release_shape(image, self.release)
        return LoadedCheckpoint(image.model, image.task, image_extra(image))

    def export(self, loaded: LoadedCheckpoint, dst: Path, layout: str) -> list[Path]:
        image = _image_of(loaded)
        check_release_shape(image, self.release)
        return self.write(image, dst, layout)

    def write(self, image: LuminaImageModel, dst: Path, layout: str) -> list[Path]:
        raise NotImplementedError


@CHECKPOINT_FORMATS.register("lumina2")
class Lumina2ImageFormat(_UnifiedFormat):
    """Lumina-Image 2.0 (:func:`lumina_modalities.image.interop.from_lumina2`): the unified trunk family."""

    name = "lumina2"
    description = (
        "Lumina-Image 2.0: the released consolidated*.pth / .safetensors (or a folder holding one), ComfyUI's "
        "single file (model.diffusion_model. prefix) or diffusers' Lumina2Transformer2DModel folder"
    )
    fit_advice = (
        "Lumina-Image 2.0 predicts the token width itself (no learn-sigma head): leave tasks[i].learn_sigma false, "
        "and use model.family: unified with a 16-channel autoencoder and patch size 2"
    )
    read = staticmethod(_read_lumina2)
    layouts = ("comfyui", "released", "diffusers")
    release = LUMINA2

    def write(self, image: LuminaImageModel, dst: Path, layout: str) -> list[Path]:
        if layout == "diffusers":
            return write_diffusers_folder(
                to_lumina2_diffusers(image), dst, "Lumina2Transformer2DModel", lumina2_config(image)
            )
        if layout == "released":
            return [write_single_file(to_lumina2_released(image), dst, "", (".pth", ".safetensors"))]
        return [write_single_file(to_lumina2_released(image), dst, COMFY_PREFIX)]


@CHECKPOINT_FORMATS.register("z_image")
class ZImageFormat(_UnifiedFormat):
    """Z-Image (:func:`lumina_modalities.image.interop.from_z_image`): the unified family's ``z_image`` variant."""

    name = "z_image"
    description = (
        "Z-Image: the release's / diffusers' ZImageTransformer2DModel folder (sharded or not, or the pipeline "
        "folder holding transformer/), or ComfyUI's single file (model.diffusion_model. prefix optional)"
    )
    fit_advice = (
        "Z-Image predicts the token width itself (no learn-sigma head): leave tasks[i].learn_sigma false, and use "
        "model.family: unified with model.unified_variant: z_image, a 16-channel autoencoder and patch size 2"
    )
    layouts = ("comfyui", "diffusers")
    release = Z_IMAGE

    @staticmethod
    def read(src: str, preset: str | None = None) -> LuminaImageModel:
        if preset not in (None, "z_image"):
            raise ValueError(
                f"--preset {preset!r} does not apply to Z-Image: its sizes come from the checkpoint "
                "(a diffusers folder's config.json, or the tensor shapes of a ComfyUI file)"
            )
        return from_z_image(src)

    def write(self, image: LuminaImageModel, dst: Path, layout: str) -> list[Path]:
        if layout == "diffusers":
            return write_diffusers_folder(
                to_z_image_diffusers(image), dst, "ZImageTransformer2DModel", z_image_config(image)
            )
        return [write_single_file(to_z_image_comfyui(image), dst, COMFY_PREFIX)]
