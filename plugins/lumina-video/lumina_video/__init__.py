"""lumina-video: a text-to-video modality plugin for Lumina, installed separately and found by entry point.

Importing this package registers, through the public API only:

* the modality ``"video"`` (:class:`~lumina_video.modality.VideoPlugin`) in ``lumina_core.registry.MODALITIES``;
* the dataset ``"moving_shapes"`` (:class:`~lumina_video.moving_shapes.MovingShapes`) in ``DATASETS``.

The core never imports it: the distribution declares ``[project.entry-points."lumina.plugins"]
video = "lumina_video"``, and the registry imports this module the first time someone asks for a name it
does not know yet.
"""

from .checker import COLOURS, DIRECTIONS, read_clip, score_clips
from .modality import VideoPlugin
from .moving_shapes import MovingShapes, render_clip

__version__ = "0.1.0"

__all__ = ["COLOURS", "DIRECTIONS", "MovingShapes", "VideoPlugin", "read_clip", "render_clip", "score_clips"]
