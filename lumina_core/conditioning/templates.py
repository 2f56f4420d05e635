"""Named caption templates: released system prompts a recipe picks by name (``encoder.params.template: NAME``)
instead of spelling them out.

A template is a text holding ``{caption}``; the ``hf`` conditioner puts every non-empty caption into it before
tokenizing. Lumina-Image 2.0's release prepends one of six system prompts to the caption,
``"<system prompt> <Prompt Start> " + caption`` (its sampling script's ``--system_type``; ``real`` is the
default there and in diffusers' ``Lumina2Pipeline``); the texts below are the release's, byte for byte:

* ``lumina2_real`` - superior images, superior image-text alignment, textual or user prompts (the default);
* ``lumina2_align`` - high-quality images, the highest degree of image-text alignment, textual prompts;
* ``lumina2_base`` - high-quality images from user prompts;
* ``lumina2_aesthetics`` - high-quality images, the highest degree of aesthetics;
* ``lumina2_4grid`` - four high-quality images arranged in 2x2 grids;
* ``lumina2_empty`` - no system prompt (the caption alone).
"""

from __future__ import annotations

_PROMPT_START = " <Prompt Start> "

#: Lumina-Image 2.0's system prompts by the release's ``system_type`` name (without " <Prompt Start> ")
LUMINA2_SYSTEM_PROMPTS: dict[str, str] = {
    "real": "You are an assistant designed to generate superior images with the superior degree of image-text "
    "alignment based on textual prompts or user prompts.",
    "align": "You are an assistant designed to generate high-quality images with the highest degree of image-text "
    "alignment based on textual prompts.",
    "base": "You are an assistant designed to generate high-quality images based on user prompts.",
    "aesthetics": "You are an assistant designed to generate high-quality images with highest degree of aesthetics "
    "based on user prompts.",
    "4grid": "You are an assistant designed to generate four high-quality images with highest degree of aesthetics "
    "arranged in 2x2 grids based on user prompts.",
}

#: every named template: ``lumina2_<system_type>`` -> the text with ``{caption}``
CAPTION_TEMPLATES: dict[str, str] = {
    **{
        f"lumina2_{name}": text + _PROMPT_START + "{caption}" for name, text in LUMINA2_SYSTEM_PROMPTS.items()
    },
    "lumina2_empty": "{caption}",
}


def resolve_template(template: str | None) -> str | None:
    """The text of ``template``: a name of :data:`CAPTION_TEMPLATES`, or a text holding ``{caption}`` (kept as
    it is); None stays None. ValueError for anything else, naming the known names."""
    if template is None:
        return None
    if template in CAPTION_TEMPLATES:
        return CAPTION_TEMPLATES[template]
    if "{caption}" not in str(template):
        raise ValueError(
            f"template must hold {{caption}} where the caption goes, or be one of the named templates "
            f"{', '.join(sorted(CAPTION_TEMPLATES))}; got {template!r}"
        )
    return str(template)
