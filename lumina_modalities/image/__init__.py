"""The image modality: text-, class- or un-conditioned images as patch tokens (pixel or latent space).

Importing this package registers:

* ``MODALITIES["image"]``: :class:`ImagePlugin` (pixel space, or latent space through a codec);
* ``CHECKPOINT_FORMATS``: ``"released"`` and ``"diffusers"``, the public formats of the Lumina-Next image
  model (``lumina convert --from NAME``);
* ``CODECS["autoencoder_kl"]``: a frozen diffusers ``AutoencoderKL`` loaded from a local path (its latents
  optionally cached on disk: :class:`LatentCache`);
* ``DATASETS``: ``"shapes"`` (procedural, with an analytic adherence checker), ``"digits"`` (real
  handwritten digits, with a classifier checker), ``"image_folder"``, ``"image_shards"`` and ``"image_stream"`` (a user's
  image + caption pairs), ``"labelled_images"`` (a user's folder of labelled images) and ``"digits_labelled"``
  (digits at one or several resolutions) for recognition.
"""

from .autoencoder import AutoencoderKLCodec
from .buckets import AspectRatioBucketSampler
from .checkpoints import RELEASED_IMAGE_ADAPTER, DiffusersImageFormat, ReleasedImageFormat
from .digits import DigitsDataset
from .digits_labels import LabelledDigitsDataset
from .folder import ImageFolderDataset, ImageShardsDataset, ImageStreamDataset
from .labelled import LabelledImagesDataset
from .latent_cache import LatentCache
from .plugin import ImagePlugin
from .shapes import ShapesDataset, describe, parse_caption, score_shapes

__all__ = [
    "AspectRatioBucketSampler",
    "AutoencoderKLCodec",
    "DiffusersImageFormat",
    "DigitsDataset",
    "ImageFolderDataset",
    "ImagePlugin",
    "ImageShardsDataset",
    "ImageStreamDataset",
    "LabelledDigitsDataset",
    "LabelledImagesDataset",
    "LatentCache",
    "RELEASED_IMAGE_ADAPTER",
    "ReleasedImageFormat",
    "ShapesDataset",
    "describe",
    "parse_caption",
    "score_shapes",
]
