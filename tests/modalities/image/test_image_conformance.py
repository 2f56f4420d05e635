"""The plugin conformance suite on the image modality (pixel space, text- and class-conditioned)."""

from __future__ import annotations

import copy

import torch

from lumina_core.testing import PluginConformance


def _shapes_images():
    from lumina_modalities.image.shapes import ShapesDataset

    ds = ShapesDataset(size=16, length=4, split="val")
    square = [ds[i]["sample"] for i in range(2)]
    # a second size and aspect ratio: two shapes images side by side
    wide = torch.cat([ds[2]["sample"], ds[3]["sample"]], dim=-1)  # (3, 16, 32)
    return square + [wide]


class TestImageConformance(PluginConformance):
    plugin_name = "image"
    plugin_params = {"patch_size": 4, "channels": 3, "image_size": 16, "fid": False}
    conditions = ["a red circle on the left", "a blue square at the top", "a green triangle in the center"]
    dataset_params = {
        "shapes": {"size": 16, "length": 4},
        "digits": {"size": 16, "channels": 3},
        "digits_labelled": {"size": 16, "channels": 3},
    }
    # need a user's files: tested in test_image_folder.py and the recognition tests
    skip_datasets = ("image_folder", "image_shards", "labelled_images")

    def make_samples(self):
        return _shapes_images()


class TestImageClassConformance(PluginConformance):
    plugin_name = "image"
    plugin_params = {"patch_size": 2, "channels": 1, "image_size": 8, "fid": False}
    conditions = [3, 7]
    dataset_params = {"digits": {"size": 8, "channels": 1}, "digits_labelled": {"size": 8, "channels": 1}}
    # shapes are RGB (this plugin is greyscale); the others need a user's files
    skip_datasets = ("shapes", "image_folder", "image_shards", "labelled_images")

    def make_samples(self):
        return [torch.rand(1, 8, 8) * 2 - 1, torch.rand(1, 12, 8) * 2 - 1]

    def make_model(self, plugin, conditioner, randomize=False, seed=0):
        """A task with ``learn_sigma`` (the released head, 2 x the token width), as build_run builds it."""
        wide = copy.copy(plugin)
        wide.adapter_spec = lambda: plugin.adapter_spec().with_learn_sigma()
        model = super().make_model(wide, conditioner, randomize, seed)
        assert model.adapters[self.task].spec.out_dim == 2 * plugin.adapter_spec().in_dim
        return model
