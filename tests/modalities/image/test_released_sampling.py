"""The released-model user path, end to end at a tiny size on the CPU:

    lumina convert <diffusers folder | released consolidated.pth> <converted> --from diffusers|released
    lumina sample recipes/image/lumina_next_2b.yaml <tiny overrides> --ckpt <converted> --prompt "..."

with a randomly initialised tiny diffusers ``LuminaNextDiT2DModel``, a tiny ``AutoencoderKL`` and a tiny
Gemma (all saved to local folders, nothing downloaded). The written PNG is reproduced independently from
diffusers' own transformer and autoencoder (same noise, time grid, Euler steps, three-channel guidance), so
the sample can only match if the converted weights really drove the latent path.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from fixtures.diffusers_models import diffusers_forward, random_diffusers  # noqa: E402
from fixtures.images import IMAGE, SCALE, read_png, tiny_autoencoder  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402
from lumina_core.config import load_recipe, recipe_header_command  # noqa: E402
from lumina_modalities.image.interop import from_diffusers, to_released_state_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "image" / "lumina_next_2b.yaml"
HEADER = shlex.split(recipe_header_command(RECIPE) or "")
PROMPT = HEADER[HEADER.index("--prompt") + 1]  # the recipe's own example prompt


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_gemma):
    """Local folders of what a user brings: diffusers and released DiT weights, VAE, Gemma."""
    root = tmp_path_factory.mktemp("released")
    gemma_path = tiny_gemma[0]
    dit = random_diffusers(seed=0, cross_attention_dim=32)  # Gemma's width: 32
    dit.save_pretrained(root / "dit")
    (root / "released").mkdir()
    torch.save(to_released_state_dict(from_diffusers(dit)), root / "released" / "consolidated.00-of-01.pth")
    tiny_autoencoder(root / "vae")
    return {"root": root, "dit": dit, "vae": root / "vae", "gemma": gemma_path}


def overrides(world, **extra: str) -> list[str]:
    """The 2B recipe with tiny sizes and local paths (its structure, sampler and guidance kept)."""
    ov = {
        "run.device": "cpu",
        "model.dim": "64", "model.n_layers": "2", "model.n_heads": "4", "model.n_kv_heads": "2",
        "tasks.0.modality.params.image_size": str(IMAGE),
        "tasks.0.modality.params.autoencoder.params.path": str(world["vae"]),
        "tasks.0.modality.params.autoencoder.params.dtype": "float32",
        "tasks.0.conditioning.encoder.params.path": str(world["gemma"]),
        "tasks.0.conditioning.encoder.params.dtype": "float32",
        "tasks.0.sampling.solver": "euler",
        "tasks.0.sampling.steps": "2",
        "tasks.0.sampling.cfg_channels": "3",
        "tasks.0.eval.batch_size": "1",
    }  # fmt: skip
    ov.update(extra)
    return [f"{k}={v}" for k, v in ov.items()]


def header_sample_command(ckpt: Path, out: Path, ov: list[str]) -> list[str]:
    """The recipe's own first-line command, with the checkpoint filled in and the tiny overrides added."""
    words = list(HEADER)
    assert words[:3] == ["lumina", "sample", "recipes/image/lumina_next_2b.yaml"]
    words = [str(ckpt) if w == "<converted-checkpoint>" else w for w in words[1:]]
    words[1] = str(RECIPE)
    return [*words[:2], *ov, *words[2:], "--num", "1", "--out", str(out)]


def reference_png(world, cfg_scale: float, steps: int) -> torch.Tensor:
    """The sample computed with diffusers' transformer and autoencoder only: seed-0 token noise in the
    released patch order, the shift-4 grid, Euler steps, guidance on latent channels 0-2."""
    from diffusers import AutoencoderKL

    from lumina_core.conditioning import HFTextConditioner
    from lumina_core.sampling import time_grid
    from lumina_modalities.image.patches import unpatchify
    from lumina_modalities.image.preview import to_uint8

    g = torch.Generator().manual_seed(0)
    grid = IMAGE // 4
    x = unpatchify(torch.randn(grid * grid, 16, generator=g), (grid, grid), 4, 2)[None]  # (1, 4, 8, 8)
    enc = HFTextConditioner(str(world["gemma"]), max_length=256, layer=-2, architecture="decoder")
    c, u = enc.encode([PROMPT]), enc.encode([""])
    ts = time_grid({"name": "shift", "params": {"s": 4.0}}, steps)
    dit = world["dit"]
    with torch.no_grad():
        for t0, t1 in zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True):
            t = torch.full((1,), t0)
            v_c = diffusers_forward(dit, x, t, c.context, c.mask.long(), proportional=False)[:, :4]
            v_u = diffusers_forward(dit, x, t, u.context, u.mask.long(), proportional=False)[:, :4]
            v = v_c.clone()
            v[:, :3] = v_u[:, :3] + cfg_scale * (v_c[:, :3] - v_u[:, :3])
            x = x + (t1 - t0) * v
        vae = AutoencoderKL.from_pretrained(str(world["vae"]), local_files_only=True).eval()
        img = vae.decode(x / SCALE).sample[0]
    return torch.from_numpy(to_uint8(img)).to(torch.int16)


@pytest.mark.parametrize("fmt", ["diffusers", "released"])
def test_convert_then_sample_with_the_2b_recipe_reproduces_diffusers(world, fmt, tmp_path, recwarn):
    src = world["root"] / ("dit" if fmt == "diffusers" else "released")
    conv = tmp_path / "converted"
    assert main(["convert", str(src), str(conv), "--from", fmt]) == 0
    out = tmp_path / "samples"
    assert main(header_sample_command(conv, out, overrides(world))) == 0
    (png,) = out.glob("t2i_00000_*_000.png")  # <task>_<index>_<caption slug>, as the manifest lists it
    assert (out / png.name.replace("_000.png", ".png")).is_file()
    assert png.name in {e["file"] for e in json.loads((out / "manifest.json").read_text())["files"]}
    got = read_png(png)
    assert got.shape == (IMAGE, IMAGE, 3)
    ref = reference_png(world, cfg_scale=4.0, steps=2)
    assert (got - ref).abs().max() <= 1, "the sample is not what the converted diffusers weights generate"
    assert got.float().std() > 1  # a real image, not a flat one that any weights would give
    if fmt == "released":  # the released file carries no training size: the recipe's is used, with a warning
        assert any("patch grid" in str(w.message) for w in recwarn)


def test_load_run_velocity_matches_diffusers_with_the_recipes_rope_scaling(world, tmp_path):
    """One velocity evaluation of load_run's model on a latent larger than training (non-square), with the
    released sampler's time-aware stepwise RoPE scaling and proportional attention, against diffusers."""
    from lumina_core.tokens import Condition, TokenBatch
    from lumina_core.training.api import load_run
    from lumina_modalities.image.patches import grid_positions, patchify, unpatchify

    conv = tmp_path / "converted"
    assert main(["convert", str(world["root"] / "dit"), str(conv), "--from", "diffusers"]) == 0
    scaling = "{name: time_aware_stepwise, params: {threshold: 0.5, scale_mode: area, proportional_attention: true}}"
    cfg = load_recipe(RECIPE, overrides(world, **{"tasks.0.sampling.rope_scaling": scaling}))
    run = load_run(cfg, conv)
    model = run.model
    rope = run.task().sampling.rope_scaling  # built once, with the task's sampling settings
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 12, 8, generator=g)  # 6 x 4 patches > the 4 x 4 training grid
    y = torch.randn(1, 5, 32, generator=g)
    ymask = torch.tensor([[1, 1, 1, 0, 0]])
    batch = TokenBatch(patchify(x[0], 2)[None], grid_positions(6, 4)[None], torch.ones(1, 24, dtype=torch.bool),
                       [(6, 4)])  # fmt: skip
    for t_value in (0.2, 0.8):  # PI below the switch, NTK above
        t = torch.full((1,), t_value)
        with torch.no_grad():
            v = model.velocity(batch, t, Condition(y, ymask.bool()), task="t2i", rope_scaling=rope)
            ref = diffusers_forward(world["dit"], x, t, y, ymask, t_switch=0.5)[:, :4]
        torch.testing.assert_close(unpatchify(v[0], (6, 4), 4, 2)[None], ref, atol=1e-4, rtol=1e-5)


def test_converted_checkpoint_that_does_not_fit_the_recipe_is_refused(world, tmp_path):
    from lumina_core.training.api import load_run
    from lumina_core.training.checkpoint import resolve_checkpoint

    conv = tmp_path / "converted"
    assert main(["convert", str(world["root"] / "dit"), str(conv), "--from", "diffusers"]) == 0
    with pytest.raises(ValueError, match=r"n_heads: checkpoint 4, recipe 8"):
        load_run(load_recipe(RECIPE, overrides(world, **{"model.n_heads": "8"})), conv)
    with pytest.raises(ValueError, match=r"out_dim: checkpoint 32, recipe 16"):
        load_run(load_recipe(RECIPE, overrides(world, **{"tasks.0.learn_sigma": "false"})), conv)
    with pytest.raises(FileNotFoundError, match="converted checkpoint"):
        resolve_checkpoint(conv)  # weights only: sampling yes, resuming no


def test_latent_guidance_mask_selects_the_first_latent_channels(world):
    from lumina_core.plugin import ModalityPlugin
    from lumina_core.sampling import channel_mask
    from lumina_modalities.image import ImagePlugin

    latent = ImagePlugin(patch_size=2, image_size=IMAGE, fid=False,
                         autoencoder={"name": "autoencoder_kl", "params": {"path": str(world["vae"])}})
    mask = channel_mask(latent, 3, (3, IMAGE, IMAGE), 16)
    assert mask.tolist() == [True] * 12 + [False] * 4  # latent channels 0-2 of (C, ph, pw) tokens
    pixel = ImagePlugin(patch_size=2, channels=3, image_size=8, fid=False)
    for k in (1, 2, 3):  # in pixel space the hook agrees with probing the tokenizer
        assert torch.equal(pixel.guidance_mask(k), ModalityPlugin.guidance_mask(pixel, k, (3, 8, 8)))
    with pytest.raises(ValueError, match="between 1 and 4"):
        latent.guidance_mask(5)


def test_the_unchanged_2b_recipe_takes_a_full_size_released_conversion(tmp_path):
    """`lumina convert ... --from released --preset 2B` of a full-size (meta-device) 2B state dict fits the
    recipe as shipped - only local paths given, a 2048-d text encoder, an SDXL-like factor-8 autoencoder:
    same trunk, same token widths, same 64 x 64 RoPE training grid (no warning)."""
    import warnings
    from types import SimpleNamespace

    from diffusers import AutoencoderKL

    from lumina_core.config.typed import component_spec, typed_recipe
    from lumina_core.interop.formats import match_converted
    from lumina_core.model import LuminaModel, NextDiTConfig
    from lumina_core.plugin import AdapterSpec
    from lumina_core.registry import MODALITIES
    from lumina_core.training.build import model_config
    from lumina_modalities.image import RELEASED_IMAGE_ADAPTER
    from lumina_modalities.image.interop import converted_meta, from_released

    AutoencoderKL(
        latent_channels=4, block_out_channels=(4, 4, 4, 4), layers_per_block=1, norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(tmp_path / "vae")  # fmt: skip
    with torch.device("meta"):
        released_model = LuminaModel(
            NextDiTConfig.from_preset("2B"), {"image": AdapterSpec(**RELEASED_IMAGE_ADAPTER)}
        )
    converted = converted_meta(from_released(to_released_state_dict(released_model, patch_size=2), "2B"))
    cfg = load_recipe(RECIPE, [f"tasks.0.modality.params.autoencoder.params.path={tmp_path / 'vae'}"])
    task = typed_recipe(cfg).tasks[0]
    spec = MODALITIES.build(component_spec(task.modality)).adapter_spec().with_learn_sigma(task.learn_sigma)
    gemma_2b = SimpleNamespace(context_dim=2048)  # a Task whose conditioner is Gemma-2B wide
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert match_converted(converted, model_config(cfg, {"t2i": gemma_2b}), {"t2i": spec}) == (
            "image", "t2i",
        )  # fmt: skip
