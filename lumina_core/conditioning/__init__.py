"""Conditioners: raw conditions (captions, class ids, nothing) -> :class:`~lumina_core.tokens.Condition`.

Registered in :data:`lumina_core.registry.CONDITIONERS`:

- ``none``: unconditional (context None, ``dim`` None);
- ``class``: a learned label table with an extra null row (``num_classes``, ``dim``);
- ``minilm``: the embedded default, pretrained MiniLM-L6 per-token features (384-d), frozen;
- ``hf``: any transformers text model from a local path (decoder LMs: second-to-last hidden layer).

Feature caching for frozen encoders: :class:`CachedConditioner`, :class:`FeatureCache`.
Importing this package does not import transformers; constructing an ``hf``/``minilm`` conditioner does.
"""

from lumina_core.conditioning.base import KINDS, Conditioner, drop_conditions, pad_features, unpad_features
from lumina_core.conditioning.cache import CachedConditioner, FeatureCache
from lumina_core.conditioning.hf import HFTextConditioner
from lumina_core.conditioning.minilm import MINILM_DIM, MiniLMConditioner
from lumina_core.conditioning.simple import ClassConditioner, NoneConditioner

__all__ = [
    "KINDS",
    "MINILM_DIM",
    "CachedConditioner",
    "ClassConditioner",
    "Conditioner",
    "FeatureCache",
    "HFTextConditioner",
    "MiniLMConditioner",
    "NoneConditioner",
    "drop_conditions",
    "pad_features",
    "unpad_features",
]
