"""The ``pointcloud`` modality: class- and text-conditioned point-cloud generation, one token per point.

Importing this package registers the plugin (``MODALITIES["pointcloud"]``) and its datasets
(``shapes_lite``, ``mesh_folder``, ``mesh_shards``). See ``plugin.py`` for the representation,
``evaluation.py`` for the metrics and ``recipes/pointcloud/`` for the recipes.
"""

from lumina_modalities.pointcloud.datasets import MeshFolder, MeshShards, ShapesLite
from lumina_modalities.pointcloud.plugin import PointCloudPlugin

__all__ = ["MeshFolder", "MeshShards", "PointCloudPlugin", "ShapesLite"]
