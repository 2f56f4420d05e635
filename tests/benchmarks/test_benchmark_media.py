"""benchmarks/media_models.py, extrapolation_media.py, sampling_media.py: the token tap and the table rules."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from extrapolation_media import pick_default  # noqa: E402
from fixtures import toy_plugin  # noqa: E402
from media_models import Loaded, generate_tokens, load, rms  # noqa: E402
from sampling_media import cheapest_within, grid_label  # noqa: E402


def _oracle_run(mu=0.5, std=0.3) -> Loaded:
    cfg = SimpleNamespace(tasks=[SimpleNamespace(name="seq")])
    return Loaded("toy", cfg, toy_plugin.OracleModel(mu, std), toy_plugin.SeqPlugin(channels=2, patch=2), None)


def test_token_tap_returns_the_ode_end_state_and_the_plugin_decoding():
    """The Gaussian oracle's flow maps noise x0 to mu + std x0 exactly: the tapped tokens must be that (up to
    the solver's error), and the decoded samples what generate() returns with the real plugin."""
    from lumina_core.sampling import generate
    from lumina_core.sampling.generate import token_noise

    run = _oracle_run()
    items = [{"condition": None, "sample": torch.zeros(2, n)} for n in (16, 8, 16)]
    tokens, samples = generate_tokens(run, items, batch_size=3, seed=5, solver={"name": "dopri5",
                                      "params": {"rtol": 1e-7, "atol": 1e-7}}, grid="uniform", steps=1)  # fmt: skip
    layout = run.plugin.layout([(2, 16), (2, 8), (2, 16)])
    noise = token_noise(layout, 5)
    for i, tok in enumerate(tokens):
        n = int(layout.lengths[i])
        assert tok.shape == (n, 4)
        assert torch.allclose(tok, 0.5 + 0.3 * noise[i, :n], atol=1e-5)
    direct = generate(run.model, run.plugin, None, "seq", None, shapes=[(2, 16), (2, 8), (2, 16)], seed=5,
                      solver={"name": "dopri5", "params": {"rtol": 1e-7, "atol": 1e-7}}, grid="uniform", steps=1)
    for a, b in zip(samples, direct, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    # chunks are seeded seed + start, as `lumina eval` does: a chunk of one gets the second item's own seed
    two, _ = generate_tokens(run, items[1:2], batch_size=1, seed=6, decode=False, solver="euler", steps=4)
    one, _ = generate_tokens(run, items, batch_size=1, seed=5, decode=False, solver="euler", steps=4)
    assert torch.equal(one[1], two[0])


def test_rms_over_every_value():
    a = [torch.zeros(2, 3), torch.zeros(4)]
    b = [torch.ones(2, 3), torch.full((4,), 2.0)]
    assert rms(a, b) == pytest.approx(((6 * 1 + 4 * 4) / 10) ** 0.5)


def test_pick_default_ranks_headline_then_adherence():
    cols = ["2x", "3x"]
    cells = {
        "none": {"2x": {"pitch_acc": 0.2, "adherence": 0.9}, "3x": {"pitch_acc": 0.2, "adherence": 0.9}},
        "pi": {"2x": {"pitch_acc": 0.6, "adherence": 0.5}, "3x": {"pitch_acc": 0.4, "adherence": 0.5}},
        "pi +prop": {"2x": {"pitch_acc": 0.4, "adherence": 0.7}, "3x": {"pitch_acc": 0.6, "adherence": 0.7}},
    }
    assert pick_default(cells, cols, "pitch_acc") == ("pi +prop", pytest.approx(0.5), pytest.approx(0.7))
    with pytest.raises(ValueError, match="at least one cell"):
        pick_default({}, cols, "pitch_acc")


def test_cheapest_within_and_grid_labels():
    table = {
        "euler | uniform": {8: {"rms": 0.05}, 16: {"rms": 0.02}},
        "ab2 | sigmoid(4)": {8: {"rms": 0.02}, 16: {"rms": 0.008}},
    }
    assert cheapest_within(table, 0.02) == (8, 0.02, "ab2 | sigmoid(4)")
    assert cheapest_within(table, 0.001) is None
    assert grid_label({"name": "shift", "params": {"s": 2}}) == "shift(2)"
    assert grid_label({"name": "sigmoid", "params": {"k": 4.0}}) == "sigmoid(4)"
    assert grid_label({"name": "uniform"}) == "uniform"
    assert grid_label({"name": "shift", "params": {"s": 3}}) is None


def test_load_names_the_training_command_when_the_run_is_missing(monkeypatch, tmp_path):
    import media_models

    monkeypatch.setattr(media_models, "ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="lumina train recipes/audio/tones_tiny.yaml run.name=issue18_tones"):
        load("tones")
    with pytest.raises(ValueError, match="known: tones, video"):
        load("speech")
