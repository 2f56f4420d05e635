"""Self-test of the plugin conformance suite (lumina_core.testing.PluginConformance).

A small, correct in-test plugin (1-D multi-channel signals cut into patches) passes the whole suite, with
class and with text conditions; deliberately broken variants fail the check that guards what they break.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from fixtures.toy_plugin import SeqPlugin
from torch import Tensor

from lumina_core.data import Checker, LuminaDataset
from lumina_core.plugin import AdapterSpec
from lumina_core.registry import DATASETS, MODALITIES
from lumina_core.testing import PluginConformance


class WavePlugin(SeqPlugin):
    """The test-suite's 1-D signal plugin (tests/fixtures/toy_plugin.py: a (C, N) signal -> N/p tokens of width C p,
    one position axis), registered under its own name and accepting text conditions too."""

    name = "_conf_wave"
    conditions = frozenset({"class", "text", "none"})

    def __init__(self, channels: int = 2, patch: int = 4, length: int = 32) -> None:
        super().__init__(channels=channels, patch=patch, length=length)


MODALITIES.register("_conf_wave", override=True)(WavePlugin)


@DATASETS.register("_conf_waves", override=True)
class WaveDataset(LuminaDataset):
    """Sine waves: class k has frequency k + 1 cycles per sample; caption says so."""

    modality = "_conf_wave"
    condition_kind = "class"

    def __init__(
        self, size: int = 8, channels: int = 2, length: int = 32, seed: int = 0, split: str = "train"
    ) -> None:
        self.size, self.c, self.n, self.seed = size, channels, length, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        k = i % 3
        phase = torch.linspace(0, 2 * math.pi * (k + 1), self.n)
        return {"sample": torch.sin(phase).repeat(self.c, 1), "condition": k, "meta": {"cycles": k + 1}}


def _wave_samples() -> list[Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 2 * math.pi, 32)
    return [
        torch.stack([torch.sin(x), torch.cos(x)]),
        torch.stack([torch.sin(2 * x[:16]), torch.cos(2 * x[:16])]),
        torch.randn(2, 24, generator=gen).tanh(),
    ]


class TestWaveClass(PluginConformance):
    plugin_name = "_conf_wave"
    conditions = [0, 1, 2]

    def make_samples(self):
        return _wave_samples()


class TestWaveText(PluginConformance):
    plugin_name = "_conf_wave"
    conditions = ["a slow sine", "a fast sine wave twice", "noise"]

    def make_samples(self):
        return _wave_samples()


class TestWaveUnconditional(PluginConformance):
    plugin_name = "_conf_wave"
    conditions = None

    def make_samples(self):
        return _wave_samples()


# -- broken plugins: each must fail the check that guards the property it breaks -----------------------------
class DropsRow(WavePlugin):
    name = "_conf_drops_row"

    def detokenize(self, batch):
        return [x[:, : -self.p] for x in super().detokenize(batch)]  # loses the last patch


class BatchDependent(WavePlugin):
    name = "_conf_batch_dep"

    def tokenize(self, samples):
        scale = max(float(s.abs().max()) for s in samples)  # normalises by the batch: not per sample
        return super().tokenize([s / scale for s in samples])

    def detokenize(self, batch):
        return super().detokenize(batch)


class WrongSpec(WavePlugin):
    name = "_conf_wrong_spec"

    def adapter_spec(self):
        d = self.c * self.p
        return AdapterSpec(d + 1, d + 1, num_axes=1, axis_split=(1,))


class NoPreview(WavePlugin):
    name = "_conf_no_preview"

    def write_preview(self, samples, conditions, out_dir, stem):
        path = Path(out_dir) / f"{stem}.csv"
        path.write_text("")  # empty file
        return [path]


class BadLayout(WavePlugin):
    name = "_conf_bad_layout"

    def layout(self, shapes, device=None):
        batch = super().layout(shapes, device)
        return batch.with_tokens(batch.tokens).__class__(
            batch.tokens, batch.positions + 1.0, batch.mask, batch.shapes, batch.meta
        )


@DATASETS.register("_conf_bad_items", override=True)
class BadItems(WaveDataset):
    modality = "_conf_bad_data"

    def __getitem__(self, i):
        item = super().__getitem__(i)
        return {"sample": item["sample"], "label": item["condition"]}  # not the documented item form


class BadData(WavePlugin):
    name = "_conf_bad_data"


@DATASETS.register("_conf_no_split", override=True)
class NoSplitWaves(LuminaDataset):
    """The scaffold's old bug: a constructor without ``split``, which the trainer always passes."""

    modality = "_conf_no_split_data"
    condition_kind = "class"

    def __init__(self, size: int = 8) -> None:
        self.inner = WaveDataset(size=size)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> dict:
        return self.inner[i]


class NoSplitData(WavePlugin):
    name = "_conf_no_split_data"


class ScoredWaves(Checker, WaveDataset):
    """Wave items with a checker: the number of cycles read from the spectrum (``generous``: any sample
    with a little energy counts as right, the too-generous checker the suite must catch)."""

    modality = "_conf_scored"
    generous = False

    def score(self, samples, items):
        hits = []
        for s, it in zip(samples, items, strict=True):
            if self.generous:
                hits.append(bool(s.abs().mean() > 0.01))
                continue
            spectrum = torch.fft.rfft(s.float().mean(0)).abs()
            hits.append(int(spectrum[1:].argmax()) + 1 == it["meta"]["cycles"])
        return {"cycle_accuracy": sum(hits) / len(hits), "chance": 1 / 3}


class GenerousWaves(ScoredWaves):
    modality = "_conf_generous"
    generous = True


DATASETS.register("_conf_scored_waves", override=True)(ScoredWaves)
DATASETS.register("_conf_generous_waves", override=True)(GenerousWaves)


class ScoredData(WavePlugin):
    name = "_conf_scored"


class GenerousData(WavePlugin):
    name = "_conf_generous"


for cls in (DropsRow, BatchDependent, WrongSpec, NoPreview, BadLayout, BadData, NoSplitData, ScoredData,
            GenerousData):
    MODALITIES.register(cls.name, override=True)(cls)


def _suite(name: str) -> PluginConformance:
    class Suite(PluginConformance):
        plugin_name = name
        conditions = [0, 1, 2]

        def make_samples(self):
            return _wave_samples()

    return Suite()


@pytest.mark.parametrize(
    "plugin, check, message",
    [
        ("_conf_drops_row", "test_round_trip", "came back as"),
        ("_conf_batch_dep", "test_batch_composition", "tokens depend on the batch"),
        ("_conf_wrong_spec", "test_adapter_spec_consistency", r"!= adapter_spec\(\).in_dim"),
        ("_conf_bad_layout", "test_layout_matches_tokenize", "other positions than tokenize"),
        ("_conf_bad_data", "test_datasets_yield_items", "missing keys"),
    ],
)
def test_broken_plugin_fails(plugin, check, message):
    getattr(_suite("_conf_wave"), check)()  # the correct plugin passes the same check
    with pytest.raises(AssertionError, match=message):
        getattr(_suite(plugin), check)()


def test_dataset_without_split_fails_with_the_contract_named():
    with pytest.raises(ValueError, match="does not accept a 'split' argument"):
        _suite("_conf_no_split_data").test_datasets_yield_items()


def test_checker_must_tell_real_from_junk():
    _suite("_conf_scored").test_dataset_checker_tells_real_from_junk()  # an honest checker passes
    with pytest.raises(AssertionError, match="junk must score near chance"):
        _suite("_conf_generous").test_dataset_checker_tells_real_from_junk()


def test_empty_preview_fails(tmp_path):
    with pytest.raises(AssertionError, match="missing or empty"):
        _suite("_conf_no_preview").test_generate_and_preview(tmp_path)


def test_same_size_samples_fail_padding_check():
    suite = _suite("_conf_wave")
    suite.make_samples = lambda: [torch.zeros(2, 32), torch.ones(2, 32)]
    with pytest.raises(AssertionError, match="different sizes"):
        suite.test_padding_invariance()


def test_padding_leak_is_caught():
    """A model whose real tokens see the padded rows fails the padding invariance check."""
    suite = _suite("_conf_wave")
    real_make_model = suite.make_model

    def leaky_model(plugin, conditioner, randomize=False, seed=0):
        model = real_make_model(plugin, conditioner, randomize, seed)
        velocity = model.velocity

        def leaky(batch, t, cond=None, task=None, rope_scaling=None):
            v = velocity(batch, t, cond, task=task, rope_scaling=rope_scaling)
            return v + batch.tokens.mean(dim=1, keepdim=True)  # averages over padding too

        model.velocity = leaky
        return model

    suite.make_model = leaky_model
    with pytest.raises(AssertionError, match="padded"):
        suite.test_padding_invariance()


def test_untrainable_model_fails_training_check():
    suite = _suite("_conf_wave")
    suite.train_lr = 0.0
    suite.train_steps = 2
    with pytest.raises(AssertionError, match="did not lower"):
        suite.test_training_lowers_loss()


def test_hash_text_conditioner_is_deterministic_per_word():
    from lumina_core.testing import HashTextConditioner

    out = HashTextConditioner(dim=8).encode(["a red circle", "", None, "red"])
    assert out.context.shape == (4, 3, 8) and out.mask.sum(1).tolist() == [3, 1, 1, 1]
    assert torch.equal(out.context[0, 1], out.context[3, 0])  # the same word, the same vector
    assert not torch.equal(out.context[0, 0], out.context[0, 1])
    assert not out.context[1].any() and torch.equal(out.context[1], out.context[2])  # "" and None: null
    again = HashTextConditioner(dim=8).encode(["a red circle"])  # a new instance: the same features
    assert torch.equal(again.context[0], out.context[0])
