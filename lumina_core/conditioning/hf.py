"""Frozen pretrained text encoders from transformers, loaded from local files only.

Per-token features ``h = hidden_states[layer]`` of the tokenized caption, with the tokenizer's attention mask:

- decoder language models (causal LMs such as Gemma) default to ``layer = -2``, the second-to-last hidden
  state, as the released Lumina-Next does with Gemma-2B (``output_hidden_states=True``, ``hidden_states[-2]``);
- encoder models (BERT-like, T5's encoder, ...) default to ``layer = -1``, the last hidden state.

Padded context rows are set to zero (and masked out), so the result for a sample never depends on what else
is in the batch through its padding. Nothing is ever downloaded: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``
are set and every load passes ``local_files_only=True``. transformers is imported only when a conditioner is
constructed, and the model's weights only at the first :meth:`encode`.

The model is held outside the module tree (no parameters, empty ``state_dict``): a frozen encoder never enters
checkpoints or optimisers. ``encode(device=...)`` moves it where the features are wanted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lumina_core.conditioning.base import Conditioner
from lumina_core.registry import CONDITIONERS
from lumina_core.tokens import Condition

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def set_offline() -> None:
    """Forbid the Hugging Face libraries from touching the network (for this process)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)} or a torch.dtype")
    return _DTYPES[dtype]


def is_decoder_lm(config: Any) -> bool:
    """True for decoder-only language models (causal LMs that are not also masked LMs, not seq2seq)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return False
    mtype = getattr(config, "model_type", "")
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs) and mtype not in (
        MODEL_FOR_MASKED_LM_MAPPING_NAMES
    ):
        return True
    return mtype in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mtype not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _hidden_size(config: Any) -> int:
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        for attr in ("hidden_size", "d_model", "n_embd"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int):
                return value
    raise ValueError(
        f"cannot tell the hidden width of a {type(config).__name__}; it has no hidden_size/d_model"
    )


@CONDITIONERS.register("hf")
class HFTextConditioner(Conditioner):
    """Any transformers text model from a local folder (or a model already in the local HF cache).

    Args:
        path: a folder with ``config.json``, tokenizer files and weights, or a model id present in the local
            Hugging Face cache. Nothing is downloaded.
        max_length: captions are truncated to this many tokens (released Lumina-Next: 256).
        padding_side: ``"right"`` (released) or ``"left"``.
        layer: which entry of ``hidden_states`` to use; None picks -2 for decoder LMs and -1 otherwise.
        dtype: the encoder's weights dtype (``"float32"``, ``"bfloat16"``, ...); features come out float32.
        architecture: ``"auto"``, ``"decoder"`` or ``"encoder"`` (overrides the automatic choice of layer).
        pad_to_multiple_of: round the context length up to a multiple of this (released: 8).
        trust_remote_code: passed to transformers for models that need their own code (local code only).
        template: None, a text holding ``{caption}`` that every non-empty caption is put into before it is
            tokenized (Lumina-Image 2.0: ``"<system prompt> <Prompt Start> {caption}"``), or the name of one
            of :data:`~lumina_core.conditioning.templates.CAPTION_TEMPLATES` (the release's system prompts:
            ``lumina2_real``, ``lumina2_align``, ...). The empty caption of classifier-free guidance and caption
            dropout stays empty, as the release encodes its negative prompt.
        tokenizer: a local folder holding the tokenizer when it is not in ``path`` (a diffusers pipeline folder
            keeps it in ``tokenizer/`` next to ``text_encoder/``); None: ``path``.
        chat_template: None / False: captions are tokenized as they are. True, or a mapping of extra keyword
            arguments for the tokenizer's ``apply_chat_template`` (Z-Image: ``{enable_thinking: true}``): every
            caption, the empty one included, is first written as one user message of the tokenizer's chat
            template with the assistant's turn opened, ``apply_chat_template([{"role": "user", "content":
            caption}], tokenize=False, add_generation_prompt=True, **chat_template)``, as Z-Image encodes its
            prompt and its negative prompt.
    """

    kind = "text"
    trainable = False

    def __init__(
        self,
        path: str,
        max_length: int = 256,
        padding_side: str = "right",
        layer: int | None = None,
        dtype: str = "float32",
        architecture: str = "auto",
        pad_to_multiple_of: int | None = None,
        trust_remote_code: bool = False,
        template: str | None = None,
        tokenizer: str | None = None,
        chat_template: bool | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(dim=None, null_value="")
        from lumina_core.conditioning.templates import resolve_template

        self.template = resolve_template(template)
        if chat_template is True:
            chat_template = {}
        if chat_template is not None and chat_template is not False and not isinstance(chat_template, Mapping):
            raise ValueError(
                "chat_template must be null, true, or a mapping of apply_chat_template keyword arguments "
                f"(e.g. {{enable_thinking: true}}); got {chat_template!r}"
            )
        self.chat_template = dict(chat_template) if isinstance(chat_template, Mapping) else None
        self.tokenizer_path = str(tokenizer) if tokenizer else None
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left'; got {padding_side!r}")
        if architecture not in ("auto", "decoder", "encoder"):
            raise ValueError(f"architecture must be 'auto', 'decoder' or 'encoder'; got {architecture!r}")
        if int(max_length) < 1:
            raise ValueError(f"max_length must be >= 1; got {max_length}")
        self.path = str(path)
        self.max_length = int(max_length)
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of
        self.torch_dtype = resolve_dtype(dtype)
        self.trust_remote_code = trust_remote_code
        self._backend: tuple[Any, Any] | None = None  # (tokenizer, model), loaded on first encode

        config = self._load_config()
        self.is_decoder = is_decoder_lm(config) if architecture == "auto" else architecture == "decoder"
        self.layer = layer if layer is not None else (-2 if self.is_decoder else -1)
        self.dim = _hidden_size(config)
        n_layers = getattr(config, "num_hidden_layers", None) or getattr(
            getattr(config, "text_config", None), "num_hidden_layers", None
        )
        if isinstance(n_layers, int) and not -(n_layers + 1) <= self.layer <= n_layers:
            raise ValueError(
                f"layer {self.layer} does not exist: the model has {n_layers} layers, so hidden_states has "
                f"{n_layers + 1} entries (index {-(n_layers + 1)}..{n_layers})"
            )

    # -- loading ---------------------------------------------------------------------------------------
    def _load_config(self) -> Any:
        set_offline()
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(
                self.path, local_files_only=True, trust_remote_code=self.trust_remote_code
            )
        except (OSError, ValueError) as err:
            where = "folder" if Path(self.path).exists() else "model id (not found as a folder either)"
            raise ValueError(
                f"cannot load a transformers model config from {self.path!r} ({where}). Nothing is downloaded "
                "here: pass path= to a local folder with config.json, tokenizer files and weights, or the id "
                f"of a model already in the local Hugging Face cache. Cause: {err}"
            ) from err

    def load(self) -> tuple[Any, Any]:
        """Load (once) and return ``(tokenizer, model)``; the model is frozen and in eval mode."""
        if self._backend is None:
            set_offline()
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(
                self.tokenizer_path or self.path, local_files_only=True, trust_remote_code=self.trust_remote_code
            )
            tokenizer.padding_side = self.padding_side
            if tokenizer.pad_token is None:
                # decoder LMs often ship without a pad token; the mask makes the choice irrelevant
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
                if tokenizer.pad_token is None:
                    raise ValueError(
                        f"the tokenizer at {self.path!r} has no pad, eos or unk token to pad with"
                    )
            from transformers.utils import logging as hf_logging

            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # one quiet load, not a progress bar per caption batch
            try:
                model = AutoModel.from_pretrained(
                    self.path,
                    local_files_only=True,
                    dtype=self.torch_dtype,
                    trust_remote_code=self.trust_remote_code,
                )
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
            if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
                model = model.get_encoder()
            model.eval().requires_grad_(False)
            # kept out of the module tree: no parameters, no state_dict entries, no optimiser slots
            object.__setattr__(self, "_backend", (tokenizer, model))
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles do not drag the (possibly multi-GB) frozen model along; they reload it lazily
        state = super().__getstate__()
        state["_backend"] = None
        return state

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    # -- encoding --------------------------------------------------------------------------------------
    def tokenize(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Tokenize captions (None -> ""), padded to the longest, truncated to ``max_length``."""
        texts = self._nulls_filled(values)
        if not texts:
            raise ValueError("encode needs at least one caption; got an empty list")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"caption {i} must be a str (or None for no caption); got {type(text).__name__}"
                )
        if self.template is not None:
            texts = [self.template.replace("{caption}", t) if t else t for t in texts]
        tokenizer, _ = self.load()
        if self.chat_template is not None:
            texts = [self._chat(tokenizer, t) for t in texts]
        return tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )

    def _chat(self, tokenizer: Any, text: str) -> str:
        """``text`` as one user message of the tokenizer's chat template, the assistant's turn opened."""
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"chat_template is set but the tokenizer of {self.tokenizer_path or self.path!r} has no chat "
                "template (tokenizer_config.json / chat_template.jinja): give the text encoder's own tokenizer"
            )
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **self.chat_template)

    def encode(self, values: Sequence[Any], device: torch.device | str | None = None) -> Condition:
        batch = self.tokenize(values)
        _, model = self.load()
        target = torch.device(device) if device is not None else next(model.parameters()).device
        if next(model.parameters()).device != target:
            model.to(target)
        input_ids = batch["input_ids"].to(target)
        mask = batch["attention_mask"].to(target).bool()
        if input_ids.shape[1] == 0:  # every caption tokenized to nothing: models cannot run on length 0
            context = torch.zeros(input_ids.shape[0], 1, self.dim, device=target)
            return Condition(context, torch.ones(input_ids.shape[0], 1, dtype=torch.bool, device=target))
        with torch.no_grad():  # not inference_mode: features may be saved for backward by the trunk
            out = model(input_ids=input_ids, attention_mask=mask.long(), output_hidden_states=True)
            hidden = out.hidden_states[self.layer]  # (B, Lc, dim)
        # where, not a product: padded rows may hold NaN (fully masked attention rows in half precision)
        context = torch.where(mask.unsqueeze(-1), hidden.float(), 0.0)
        if not bool(mask.any(dim=1).all()):
            # a caption that tokenizes to nothing becomes one zero token, so masked means stay defined
            context, mask = _ensure_one_token(context, mask, self.padding_side)
        return Condition(context, mask)

    def fingerprint(self) -> str:
        return (
            f"hf(path={os.path.abspath(self.path) if Path(self.path).exists() else self.path}, layer={self.layer}, "
            f"max_length={self.max_length}, dtype={self.torch_dtype}, padding_side={self.padding_side}"
            + ("" if self.template is None else f", template={self.template!r}")
            + ("" if self.chat_template is None else f", chat_template={sorted(self.chat_template.items())!r}")
            + ")"
        )


def _ensure_one_token(
    context: torch.Tensor, mask: torch.Tensor, padding_side: str
) -> tuple[torch.Tensor, torch.Tensor]:
    empty = ~mask.any(dim=1)
    mask = mask.clone()
    mask[empty, 0 if padding_side == "right" else -1] = True
    return context, mask
