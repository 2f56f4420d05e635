"""``melodies``: procedural melodies and chord progressions with captions and ground truth, and a checker.

Attributes drawn per item from a generator seeded by ``(seed, split, index)``:

* key - tonic from ``tonics`` and ``major`` / ``minor`` (natural minor);
* tempo - from ``tempos`` (bpm), called "slow" (< 90), "moderate" or "fast" (> 125);
* meter - 3/4 or 4/4: the first beat of every bar is played louder;
* timbre - additive synthesis: ``soft organ`` (4 sustained harmonics), ``plucked string`` (10 harmonics
  1/k, exponential decay), ``bright synth`` (sawtooth-like 12 harmonics, gentle decay);
* kind - ``melody``: one note per beat from the scale, a random walk that starts on the tonic and puts
  tonic-triad notes on downbeats; ``chord progression``: I-IV-V-I (i-iv-v-i) triads, one per two beats,
  struck on every beat, with the root an octave lower.

Caption: "a slow melody in A minor at 80 bpm, 3/4, played on a soft organ". Clips are normalised to
-20 dBFS RMS.

The checker (:meth:`MelodyDataset.score`, :mod:`.analysis`): ``key_acc`` (exact key by
Krumhansl-Schmuckler), ``mode_acc`` (major/minor), ``tempo_acc`` (from inter-onset intervals, within
``tempo_tol``, 8 %), ``density_acc`` (onsets per second within ``density_tol``, 30 %, of the notes per
second played), ``adherence`` (mean of key, tempo and density) and the same for shuffled captions (chance).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lumina_core.data import Checker, LuminaDataset
from lumina_core.data.checkers import score_against_captions
from lumina_core.registry import DATASETS

from . import analysis as A

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
TIMBRES = ("soft organ", "plucked string", "bright synth")
KINDS = ("melody", "chord progression")
METERS = (3, 4)


def _tempo_word(bpm: float) -> str:
    return "slow" if bpm < 90 else ("fast" if bpm > 125 else "moderate")


def caption(meta: dict[str, Any]) -> str:
    return (
        f"a {_tempo_word(meta['tempo'])} {meta['kind']} in {meta['tonic']} {meta['mode']} at "
        f"{meta['tempo']:g} bpm, {meta['meter']}/4, played on a {meta['timbre']}"
    )


def _midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


@functools.lru_cache(maxsize=4096)
def _note(freq: float, n: int, timbre: str, sr: int) -> np.ndarray:
    """One note of ``n`` samples (cached: a clip reuses a few dozen distinct notes). Harmonic ``k`` starts at
    phase ``k^2 pi / 7``, a fixed spread that avoids the peaky sum of all-zero phases."""
    t = np.arange(n) / sr
    if timbre == "soft organ":
        amps, env = (1.0, 0.5, 0.3, 0.2), np.ones(n)
    elif timbre == "plucked string":
        amps, env = tuple(1.0 / k for k in range(1, 11)), np.exp(-t / 0.25)
    elif timbre == "bright synth":
        amps, env = tuple(1.0 / k for k in range(1, 13)), np.exp(-t / 0.8)
    else:
        raise ValueError(f"unknown timbre {timbre!r}; known: {', '.join(TIMBRES)}")
    sig = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        if k * freq < sr / 2 - 500:
            sig += a * np.sin(2 * math.pi * k * freq * t + k * k * math.pi / 7)
    edge = min(int(0.01 * sr), n // 2)
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, edge))
        env = env.copy()
        env[:edge] *= ramp
        env[n - edge :] *= ramp[::-1]
    out = sig * env
    out.setflags(write=False)
    return out


def render(
    meta: dict[str, Any], sr: int, clip_seconds: float, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """(waveform, number of notes / chords struck) of an item's attributes."""
    total = int(round(clip_seconds * sr))
    y = np.zeros(total + sr)
    beat = 60.0 / meta["tempo"]
    n_beats = int(math.ceil(clip_seconds / beat))
    steps = MAJOR_STEPS if meta["mode"] == "major" else MINOR_STEPS
    tonic_midi = 72 + A.NOTE_NAMES.index(meta["tonic"])  # octave 5, where mel bins are about a semitone apart
    if tonic_midi > 78:
        tonic_midi -= 12

    def degree_midi(d: int) -> int:
        return tonic_midi + 12 * (d // 7) + steps[d % 7]

    degree, struck = 0, 0
    for b in range(n_beats):
        start = int(b * beat * sr)
        if start >= total:
            break
        gain = 1.0 if b % meta["meter"] == 0 else 0.55
        if meta["kind"] == "melody":
            if b > 0:
                if b % meta["meter"] == 0:
                    degree = int(rng.choice([0, 2, 4, 7]))
                else:
                    degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), -3, 9))
            notes = [degree_midi(degree)]
        else:
            root = (0, 3, 4, 0)[(b // 2) % 4]
            notes = [degree_midi(root + i) for i in (0, 2, 4)] + [degree_midi(root) - 12]
        for m in notes:
            sig = (
                gain
                * _note(_midi_hz(m), max(int(0.92 * beat * sr), 1), meta["timbre"], sr)
                / len(notes) ** 0.5
            )
            y[start : start + len(sig)] += sig
        struck += 1
    return y[:total], struck


@DATASETS.register("melodies")
class MelodyDataset(Checker, LuminaDataset):
    """Procedural melodies and chord progressions (see the module doc).

    Args:
        size: number of items.
        seed, split: items are deterministic functions of ``(seed, split, index)``.
        sample_rate: waveform rate (the music plugin codec's rate, 16 kHz by default).
        clip_seconds: clip length.
        tonics, modes, tempos, meters, timbres, kinds: the vocabulary.
        tempo_tol, density_tol: relative tolerances of the checker.
    """

    modality = "music"
    condition_kind = "text"  # items carry captions

    def __init__(
        self,
        size: int = 2000,
        seed: int = 0,
        split: str = "train",
        sample_rate: int = 16000,
        clip_seconds: float = 4.0,
        tonics: Sequence[str] = ("C", "D", "E", "G", "A"),
        modes: Sequence[str] = ("major", "minor"),
        tempos: Sequence[float] = (80.0, 132.0),
        meters: Sequence[int] = METERS,
        timbres: Sequence[str] = TIMBRES,
        kinds: Sequence[str] = KINDS,
        tempo_tol: float = 0.08,
        density_tol: float = 0.3,
    ) -> None:
        problems = [f"unknown tonic {t!r}" for t in tonics if t not in A.NOTE_NAMES]
        problems += [f"unknown mode {m!r}" for m in modes if m not in ("major", "minor")]
        problems += [f"tempo {t} outside 60-200 bpm" for t in tempos if not 60 <= t <= 200]
        problems += [f"meter {m} not in {METERS}" for m in meters if m not in METERS]
        problems += [f"unknown timbre {t!r}" for t in timbres if t not in TIMBRES]
        problems += [f"unknown kind {k!r}" for k in kinds if k not in KINDS]
        if size < 1 or clip_seconds < 1.0:
            problems.append(f"size must be >= 1 and clip_seconds >= 1; got {size}, {clip_seconds}")
        if problems:
            raise ValueError("invalid melodies dataset: " + "; ".join(problems))
        self.size, self.seed, self.split = int(size), int(seed), split
        self._stream = 0 if split == "train" else 1 + sum(map(ord, split))
        self.sample_rate, self.clip_seconds = int(sample_rate), float(clip_seconds)
        self.tonics, self.modes, self.tempos = tuple(tonics), tuple(modes), tuple(float(t) for t in tempos)
        self.meters, self.timbres, self.kinds = tuple(meters), tuple(timbres), tuple(kinds)
        self.tempo_tol, self.density_tol = float(tempo_tol), float(density_tol)

    def __len__(self) -> int:
        return self.size

    def attributes(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self._stream, index, 0])

        def pick(options):
            return options[int(rng.integers(len(options)))]

        return {
            "tonic": pick(self.tonics),
            "mode": pick(self.modes),
            "tempo": pick(self.tempos),
            "meter": int(pick(self.meters)),
            "timbre": pick(self.timbres),
            "kind": pick(self.kinds),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.size:
            raise IndexError(f"melodies index {index} out of range [0, {self.size})")
        meta = self.attributes(index)
        y, struck = render(
            meta,
            self.sample_rate,
            self.clip_seconds,
            np.random.default_rng([self.seed, self._stream, index, 1]),
        )
        y *= 10 ** (-20 / 20) / max(np.sqrt(np.mean(y**2)), 1e-9)
        meta["notes_per_second"] = struck / self.clip_seconds
        return {
            "sample": torch.from_numpy(y.astype(np.float32))[None],
            "condition": caption(meta),
            "meta": meta,
        }

    # -- checker -------------------------------------------------------------------------------------
    def measure(self, sample: Tensor | np.ndarray) -> dict[str, Any]:
        """Estimated key, tempo (bpm) and note density (onsets per second) of a clip."""
        y, sr = A.to_numpy(sample), self.sample_rate
        tonic, mode = A.estimate_key(y, sr)
        onsets = A.onset_times(y, sr)
        return {
            "tonic": tonic,
            "mode": mode,
            "tempo": A.tempo_bpm(y, sr, onsets=onsets),
            "density": len(onsets) / (len(y) / sr),
        }

    def check(self, sample: Tensor | np.ndarray | dict, meta: dict[str, Any]) -> dict[str, bool]:
        """Which of the caption's attributes a clip (or its :meth:`measure` result) satisfies."""
        m = sample if isinstance(sample, dict) else self.measure(sample)
        tonic, mode, tempo, density = m["tonic"], m["mode"], m["tempo"], m["density"]
        nps = meta.get("notes_per_second", meta["tempo"] / 60)
        return {
            "key": tonic == meta["tonic"] and mode == meta["mode"],
            "mode": mode == meta["mode"],
            "tempo": bool(abs(tempo - meta["tempo"]) <= self.tempo_tol * meta["tempo"]),
            "density": bool(abs(density - nps) <= self.density_tol * nps),
        }

    def score(self, samples: Sequence[Tensor], items: Sequence[dict]) -> dict[str, float]:
        """``key_acc``, ``mode_acc``, ``tempo_acc``, ``density_acc``, ``adherence`` and ``*_shuffled``."""
        return self.score_with_verdicts(samples, items)[0]

    def score_with_verdicts(
        self, samples: Sequence[Tensor], items: Sequence[dict]
    ) -> tuple[dict[str, float], list[dict[str, float]]]:
        """:meth:`score` and each clip's verdict (its score alone) from one measurement per clip; the chance
        level checks that measurement against the next item's caption, so the scores are no mean of the
        verdicts (:func:`lumina_core.data.checkers.score_against_captions`)."""
        if len(samples) != len(items) or not samples:
            raise ValueError(
                f"score needs as many samples as items (> 0); got {len(samples)} and {len(items)}"
            )
        measured = [self.measure(s) for s in samples]
        return score_against_captions(measured, [it["meta"] for it in items], self.check, _aggregate)


def _aggregate(checks: Sequence[dict[str, bool]]) -> dict[str, float]:
    out = {f"{k}_acc": float(np.mean([c[k] for c in checks])) for k in ("key", "mode", "tempo", "density")}
    out["adherence"] = float(np.mean([(c["key"] + c["tempo"] + c["density"]) / 3 for c in checks]))
    return out
