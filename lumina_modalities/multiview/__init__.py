"""Built-in ``multiview`` modality: V posed views of one object on a (view, h, w) RoPE grid, with camera
conditioning (Plücker rays or a per-view camera MLP), a procedural ground-truth renderer and checkers.

Importing this package registers the plugin (``MODALITIES["multiview"]``) and its datasets
(``multiview_scenes``, ``multiview_folder``, ``multiview_shards``).
"""

from .datasets import MultiviewFolder, MultiviewScenes
from .packing import MultiviewShards
from .plugin import MultiviewPlugin

__all__ = ["MultiviewFolder", "MultiviewPlugin", "MultiviewScenes", "MultiviewShards"]
