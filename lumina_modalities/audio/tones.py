"""``tones``: procedural text-to-audio clips with ground truth, and their adherence checker.

Each item is rendered from attributes drawn with a generator seeded by ``(seed, index)``:

=========  ===========================================  ================================================
kind       sound                                        caption (e.g.)
=========  ===========================================  ================================================
tone       sine at ``pitch`` for ``duration``           a loud 440 Hz sine tone for half a second, then silence
chord      major/minor triad on ``pitch``               a quiet minor chord on 330 Hz for one second, then silence
sweep      exponential sweep between two pitches        a loud rising sweep from 220 Hz to 880 Hz over half a second
noise      white noise burst                            a quiet burst of white noise for a quarter of a second
clicks     ``count`` 4 ms noise clicks, evenly spaced   three loud clicks
beeps      ``count`` 0.1 s sine beeps at ``pitch``       four quiet 660 Hz beeps
=========  ===========================================  ================================================

Sounds start at 0.1 s, have 10 ms raised-cosine edges (clicks excepted) and are scaled so that their
measured loudness (:func:`.analysis.loudness_db`) equals the level word's value (quiet -30, loud -15 dBFS).

The checker (:meth:`ToneDataset.score`) measures each generated clip (:mod:`.analysis`) and compares it with
the caption's ground truth, per attribute where it applies:

* pitch    - tone, chord (root), beeps: within ``pitch_tol`` semitones; sweep: both ends within 2 x that;
* duration - tone, chord, sweep, noise: within max(0.1 s, 25 %);
* loudness - all: within ``level_tol_db``;
* onsets   - clicks, beeps: the detected onset count equals ``count``;
* timbre   - all: tonal (flatness < 0.2) vs broadband (noise, clicks).

``adherence`` is the mean over clips of the fraction of a clip's attributes that are right; ``*_shuffled``
is the same with each clip scored against another item's caption (a derangement): the chance level for the
same clips.
"""

from __future__ import annotations

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

KINDS = ("tone", "chord", "sweep", "noise", "clicks", "beeps")
LEVELS = {"quiet": -30.0, "loud": -15.0}
DURATION_WORDS = {
    0.25: "a quarter of a second",
    0.5: "half a second",
    0.75: "three quarters of a second",
    1.0: "one second",
    1.5: "one and a half seconds",
    2.0: "two seconds",
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
START = 0.1
EDGE = 0.01
ATTRIBUTES = ("pitch", "duration", "loudness", "onsets", "timbre")


def _edges(n: int, sr: int) -> np.ndarray:
    env = np.ones(n)
    k = min(int(EDGE * sr), n // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, k))
        env[:k], env[n - k :] = ramp, ramp[::-1]
    return env


def render(meta: dict[str, Any], sr: int, clip_seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The waveform ``(T,)`` of one item's attributes (before level scaling)."""
    total = int(round(clip_seconds * sr))
    y = np.zeros(total)
    start = int(START * sr)
    kind = meta["kind"]

    def place(sig: np.ndarray, at: int) -> None:
        end = min(total, at + len(sig))
        y[at:end] += sig[: end - at]

    if kind in ("tone", "chord", "sweep", "noise"):
        n = int(meta["duration"] * sr)
        t = np.arange(n) / sr
        if kind == "tone":
            sig = np.sin(2 * math.pi * meta["pitch"] * t)
        elif kind == "chord":
            third = 4 if meta["quality"] == "major" else 3
            sig = sum(
                np.sin(2 * math.pi * meta["pitch"] * 2 ** (s / 12) * t + rng.uniform(0, 2 * math.pi))
                for s in (0, third, 7)
            )
        elif kind == "sweep":
            f0, f1 = meta["start_hz"], meta["end_hz"]
            k = math.log(f1 / f0) / meta["duration"]
            sig = np.sin(2 * math.pi * f0 * (np.exp(k * t) - 1) / k)
        else:
            sig = rng.standard_normal(n)
        place(sig * _edges(n, sr), start)
    elif kind in ("clicks", "beeps"):
        count = meta["count"]
        span = clip_seconds - START - 0.2
        for i in range(count):
            at = start + int(i * span / max(count - 1, 1) * sr) if count > 1 else start
            if kind == "clicks":
                n = int(0.004 * sr)
                sig = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.001 * sr))
            else:
                n = int(0.1 * sr)
                sig = np.sin(2 * math.pi * meta["pitch"] * np.arange(n) / sr) * _edges(n, sr)
            place(sig, at)
    else:
        raise ValueError(f"unknown tone kind {kind!r}; known: {', '.join(KINDS)}")
    return y


def caption(meta: dict[str, Any]) -> str:
    """The caption of an item's attributes (see the module table)."""
    kind, level = meta["kind"], meta["level"]
    dur = DURATION_WORDS.get(meta.get("duration"), f"{meta.get('duration')} seconds")
    if kind == "tone":
        return f"a {level} {meta['pitch']:g} Hz sine tone for {dur}, then silence"
    if kind == "chord":
        return f"a {level} {meta['quality']} chord on {meta['pitch']:g} Hz for {dur}, then silence"
    if kind == "sweep":
        way = "rising" if meta["end_hz"] > meta["start_hz"] else "falling"
        return f"a {level} {way} sweep from {meta['start_hz']:g} Hz to {meta['end_hz']:g} Hz over {dur}"
    if kind == "noise":
        return f"a {level} burst of white noise for {dur}, then silence"
    if kind == "clicks":
        return f"{COUNT_WORDS[meta['count']]} {level} clicks"
    return f"{COUNT_WORDS[meta['count']]} {level} {meta['pitch']:g} Hz beeps"


@DATASETS.register("tones")
class ToneDataset(Checker, LuminaDataset):
    """Procedural tones, chords, sweeps, noise bursts, clicks and beeps with captions and ground truth.

    Args:
        size: number of items.
        seed: items are deterministic functions of ``(seed, split, index)``.
        split: ``"train"`` or any other name (``"val"``): each split draws from its own random stream.
        sample_rate: waveform rate (the audio plugin's codec rate, 22050 by default).
        clip_seconds: clip length (sound plus trailing silence).
        kinds, pitches, durations, levels, counts: the vocabulary (keep it small for CPU training).
        pitch_tol: pitch tolerance of the checker, in semitones.
        level_tol_db: loudness tolerance of the checker, in dB.
    """

    modality = "audio"
    condition_kind = "text"  # items carry captions

    def __init__(
        self,
        size: int = 2000,
        seed: int = 0,
        split: str = "train",
        sample_rate: int = 22050,
        clip_seconds: float = 1.0,
        kinds: Sequence[str] = KINDS,
        pitches: Sequence[float] = (220.0, 330.0, 440.0, 660.0, 880.0),
        durations: Sequence[float] = (0.25, 0.5, 0.75),
        levels: Sequence[str] = ("quiet", "loud"),
        counts: Sequence[int] = (2, 3, 4),
        pitch_tol: float = 1.0,
        level_tol_db: float = 5.0,
    ) -> None:
        problems = [f"unknown kind {k!r}" for k in kinds if k not in KINDS]
        problems += [
            f"unknown level {lv!r} (known: {', '.join(LEVELS)})" for lv in levels if lv not in LEVELS
        ]
        problems += [
            f"duration {d} s does not fit a {clip_seconds} s clip starting at {START} s"
            for d in durations
            if d + START > clip_seconds
        ]
        problems += [f"count {c} not in 1..6" for c in counts if c not in COUNT_WORDS]
        if size < 1 or not kinds or not pitches or not durations or not levels or not counts:
            problems.append("size and every vocabulary list must be non-empty")
        if problems:
            raise ValueError("invalid tones dataset: " + "; ".join(problems))
        self.size, self.seed, self.sample_rate = int(size), int(seed), int(sample_rate)
        self.split = split
        self._stream = 0 if split == "train" else 1 + sum(map(ord, split))
        self.clip_seconds = float(clip_seconds)
        self.kinds, self.pitches = tuple(kinds), tuple(float(p) for p in pitches)
        self.durations, self.levels, self.counts = tuple(durations), tuple(levels), tuple(counts)
        self.pitch_tol, self.level_tol_db = float(pitch_tol), float(level_tol_db)

    def __len__(self) -> int:
        return self.size

    def attributes(self, index: int) -> dict[str, Any]:
        """The ground-truth attributes of item ``index`` (cheap: no rendering)."""
        rng = np.random.default_rng([self.seed, self._stream, index, 0])
        kind = self.kinds[rng.integers(len(self.kinds))]
        meta: dict[str, Any] = {"kind": kind, "level": self.levels[rng.integers(len(self.levels))]}
        meta["level_db"] = LEVELS[meta["level"]]
        if kind in ("tone", "chord", "sweep", "noise"):
            meta["duration"] = float(self.durations[rng.integers(len(self.durations))])
        if kind in ("tone", "chord", "beeps"):
            meta["pitch"] = self.pitches[rng.integers(len(self.pitches))]
        if kind == "chord":
            meta["quality"] = ("major", "minor")[rng.integers(2)]
        if kind == "sweep":
            a, b = rng.choice(len(self.pitches), size=2, replace=False) if len(self.pitches) > 1 else (0, 0)
            meta["start_hz"], meta["end_hz"] = self.pitches[a], self.pitches[b]
            if a == b:
                meta["end_hz"] = 2 * meta["start_hz"]
        if kind in ("clicks", "beeps"):
            meta["count"] = int(self.counts[rng.integers(len(self.counts))])
        return meta

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.size:
            raise IndexError(f"tones index {index} out of range [0, {self.size})")
        meta = self.attributes(index)
        y = render(
            meta,
            self.sample_rate,
            self.clip_seconds,
            np.random.default_rng([self.seed, self._stream, index, 1]),
        )
        y *= 10 ** ((meta["level_db"] - A.loudness_db(y)) / 20)
        wav = torch.from_numpy(y.astype(np.float32))[None]
        return {"sample": wav, "condition": caption(meta), "meta": meta}

    # -- checker -------------------------------------------------------------------------------------
    def check(self, sample: Tensor | np.ndarray, meta: dict[str, Any]) -> dict[str, bool]:
        """Which of the caption's attributes a clip satisfies (only the attributes that apply)."""
        y, sr, kind = A.to_numpy(sample), self.sample_rate, meta["kind"]
        out: dict[str, bool] = {}
        silent = A.loudness_db(y) < -90
        if kind in ("tone", "chord", "beeps"):
            out["pitch"] = not silent and abs(A.semitones(A.pitch_hz(y, sr), meta["pitch"])) <= self.pitch_tol
        if kind == "sweep":
            f0, f1 = A.sweep_endpoints(y, sr)
            tol = 2 * self.pitch_tol
            out["pitch"] = (
                abs(A.semitones(f0, meta["start_hz"])) <= tol and abs(A.semitones(f1, meta["end_hz"])) <= tol
            )
        if "duration" in meta:
            d = A.active_duration(y, sr)
            out["duration"] = not silent and abs(d - meta["duration"]) <= max(0.1, 0.25 * meta["duration"])
        out["loudness"] = abs(A.loudness_db(y) - meta["level_db"]) <= self.level_tol_db
        if "count" in meta:
            out["onsets"] = A.onset_count(y, sr) == meta["count"]
        broadband = A.spectral_flatness(y, sr) >= 0.2
        out["timbre"] = not silent and broadband == (kind in ("noise", "clicks"))
        return out

    def score(self, samples: Sequence[Tensor], items: Sequence[dict]) -> dict[str, float]:
        """Per-attribute accuracy, ``adherence`` and the shuffled-caption chance level (module doc)."""
        return self.score_with_verdicts(samples, items)[0]

    def score_with_verdicts(
        self, samples: Sequence[Tensor], items: Sequence[dict]
    ) -> tuple[dict[str, float], list[dict[str, float]]]:
        """:meth:`score` and each clip's verdict (its score alone) from one grading: the per-attribute
        accuracies count only the clips an attribute applies to, and the chance level grades each clip against
        the next item's caption, so the scores are no mean of the verdicts
        (:func:`lumina_core.data.checkers.score_against_captions`)."""
        return score_against_captions(samples, [it["meta"] for it in items], self.check, _aggregate)


def _aggregate(checks: Sequence[dict[str, bool]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for attr in ATTRIBUTES:
        vals = [c[attr] for c in checks if attr in c]
        if vals:
            out[f"{attr}_acc"] = float(np.mean(vals))
    out["adherence"] = float(np.mean([np.mean(list(c.values())) for c in checks]))
    return out
