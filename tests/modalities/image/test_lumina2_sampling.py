"""Lumina-Image 2.0 sampled as released, end to end at a tiny size on the CPU:

    lumina convert <diffusers Lumina2Transformer2DModel folder> <converted> --from diffusers
    lumina sample recipes/image/lumina2.yaml <tiny overrides> --ckpt <converted> --prompt "..."

against diffusers' own ``Lumina2Pipeline`` on the same tiny random components (transformer, a 16-channel
factor-8 ``AutoencoderKL`` with the FLUX scale and shift, a tiny Gemma): same prompt (the pipeline prepends its
system prompt, our recipe its template), same starting latents, guidance 4, Euler steps. One denoising step, and
four steps with CFG truncation after half of them.

The image is 64 px: an 8 x 8 latent, 4 x 4 = 16 tokens. diffusers 0.42 computes the shift's mu from the
latent's channel count (16) instead of its token count (huggingface/diffusers#12913); at 16 tokens both counts
are 16, so the pipeline's schedule is the release's and the samples can be compared (the token-count grid itself
is checked against diffusers' scheduler at other sizes in tests/core/sampling/test_lumina2_guidance.py). Our
CFG renormalisation (the release's: the whole sample's norm clipped) is off here because diffusers' differs
(docs/lumina2.md); its maths is tested on known answers there too.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from fixtures.autoencoders import save_flux_like_vae, save_smallest_16_channel_vae  # noqa: E402
from fixtures.images import read_png  # noqa: E402
from fixtures.walkthrough import tiny_lumina2  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402
from lumina_core.config import recipe_header_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "image" / "lumina2.yaml"
HEADER = shlex.split(recipe_header_command(RECIPE) or "")
PROMPT = "a red circle at the top left"
IMAGE = 64  # pixels: 8 x 8 latent (factor 8), 4 x 4 patches = 16 tokens


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_gemma):
    root = tmp_path_factory.mktemp("lumina2_sampling")
    dit = tiny_lumina2()  # the walkthroughs' tiny release, off its zero-initialised gates
    dit.eval().save_pretrained(root / "dit")
    save_flux_like_vae(root / "vae", IMAGE)
    assert main(["convert", str(root / "dit"), str(root / "converted"), "--from", "diffusers"]) == 0
    _, tokenizer, gemma = tiny_gemma
    gemma.save_pretrained(root / "text_encoder")  # the release's layout: weights and tokenizer in two folders
    tokenizer.save_pretrained(root / "tokenizer")
    return {"root": root, "dit": dit, "tokenizer": tokenizer, "text_encoder": gemma}


def sample_ours(world, out: Path, steps: int, cfg_trunc: float, extra: dict[str, str] | None = None) -> torch.Tensor:
    """The recipe's own first-line command with the tiny sizes and local paths, as a user runs it."""
    w = world
    ov = {
        "run.device": "cpu",
        "model.dim": "96", "model.n_layers": "2", "model.n_heads": "2", "model.n_kv_heads": "1",
        "model.context_dim": "32", "model.multiple_of": "16", "model.n_refiner_layers": "1",
        "tasks.0.modality.params.image_size": str(IMAGE),
        "tasks.0.modality.params.autoencoder.params.path": str(w["root"] / "vae"),
        "tasks.0.modality.params.autoencoder.params.dtype": "float32",
        "tasks.0.conditioning.encoder.params.path": str(w["root"] / "text_encoder"),
        "tasks.0.conditioning.encoder.params.tokenizer": str(w["root"] / "tokenizer"),
        "tasks.0.conditioning.encoder.params.dtype": "float32",
        "tasks.0.sampling.steps": str(steps),
        "tasks.0.sampling.cfg_trunc": repr(cfg_trunc),
        "tasks.0.sampling.cfg_renorm": "null",
        **(extra or {}),
    }  # fmt: skip
    words = list(HEADER)
    assert words[:3] == ["lumina", "sample", "recipes/image/lumina2.yaml"]
    words = [str(w["root"] / "converted") if x == "<converted-checkpoint>" else x for x in words[1:]]
    words[1] = str(RECIPE)
    prompt_at = words.index("--prompt") + 1
    words[prompt_at] = PROMPT
    cmd = [*words[:2], *(f"{k}={v}" for k, v in ov.items()), *words[2:], "--num", "1", "--out", str(out)]
    assert main(cmd) == 0
    (png,) = out.glob("t2i_00000_*_000.png")
    return read_png(png)


def sample_diffusers(world, steps: int, cfg_trunc_ratio: float, system_prompt: str | None = None) -> torch.Tensor:
    """diffusers' Lumina2Pipeline on the same components, from the latents our seed-0 token noise unpatchifies to."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, Lumina2Pipeline

    from lumina_modalities.image.patches import unpatchify

    g = torch.Generator().manual_seed(0)  # lumina's token noise: seed 0, one (tokens, width) draw per sample
    latents = unpatchify(torch.randn(16, 64, generator=g), (4, 4), 16, 2)[None]
    pipe = Lumina2Pipeline(
        transformer=world["dit"],
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=AutoencoderKL.from_pretrained(str(world["root"] / "vae"), local_files_only=True).eval(),
        text_encoder=world["text_encoder"],
        tokenizer=world["tokenizer"],
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        image = pipe(
            PROMPT, height=IMAGE, width=IMAGE, num_inference_steps=steps, guidance_scale=4.0, latents=latents,
            cfg_trunc_ratio=cfg_trunc_ratio, cfg_normalization=False, output_type="np", system_prompt=system_prompt,
        ).images[0]  # fmt: skip
    return torch.from_numpy((image * 255).round()).to(torch.int16)


@pytest.mark.parametrize(("steps", "ratio"), [(1, 1.0), (4, 0.5)])
def test_lumina_sample_with_the_recipe_reproduces_lumina2_pipeline(world, tmp_path, steps, ratio):
    from lumina_core.sampling import time_grid

    # diffusers guides steps i with (i + 1) / N <= ratio; ours while t < cfg_trunc: the same steps when cfg_trunc
    # lies between the last guided step's time and the first unguided one's
    times = time_grid({"name": "token_shift", "params": {}}, steps, tokens=16).tolist()
    guided = sum((i + 1) / steps <= ratio for i in range(steps))
    cfg_trunc = 1.0 if guided == steps else (times[guided - 1] + times[guided]) / 2
    got = sample_ours(world, tmp_path / "ours", steps, cfg_trunc)
    want = sample_diffusers(world, steps, ratio)
    assert got.shape == want.shape == (IMAGE, IMAGE, 3)
    diff = (got - want).abs().max()
    print(f"{steps} step(s), cfg_trunc_ratio {ratio}: max |ours - diffusers| = {int(diff)} / 255")
    assert diff <= 1, "lumina sample does not reproduce Lumina2Pipeline"
    assert got.float().std() > 1  # a real image, not a flat one that any weights would give


def test_another_release_system_prompt_by_name_reproduces_the_pipeline_given_its_text(world, tmp_path):
    """``template: lumina2_aesthetics`` (one of the release's named system prompts) samples what Lumina2Pipeline
    samples with that system prompt's text; the recipe's default name (lumina2_real) is the pipeline's default."""
    from lumina_core.conditioning.templates import LUMINA2_SYSTEM_PROMPTS

    extra = {"tasks.0.conditioning.encoder.params.template": "lumina2_aesthetics"}
    got = sample_ours(world, tmp_path / "ours", 1, 1.0, extra)
    want = sample_diffusers(world, 1, 1.0, system_prompt=LUMINA2_SYSTEM_PROMPTS["aesthetics"])
    assert (got - want).abs().max() <= 1
    assert (got - sample_diffusers(world, 1, 1.0)).abs().max() > 1  # the named prompt changed the image


def _full_size_conversion(tmp_path):
    """The converted meta of a full-size (meta-device) Lumina-Image 2.0 transformer, and a 16-channel
    factor-8 autoencoder folder (tiny widths) for the recipe."""
    from diffusers import Lumina2Transformer2DModel

    from lumina_modalities.image.interop import converted_meta, from_diffusers

    save_smallest_16_channel_vae(tmp_path / "vae")
    with torch.device("meta"):
        ref = Lumina2Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, hidden_size=2304, num_layers=26, num_refiner_layers=2,
            num_attention_heads=24, num_kv_heads=8, multiple_of=256, norm_eps=1e-5, axes_dim_rope=(32, 32, 32),
            axes_lens=(300, 512, 512), cap_feat_dim=2304,
        )  # fmt: skip
    return converted_meta(from_diffusers(ref))


def _match(meta, tmp_path, overrides=()):
    from types import SimpleNamespace

    from lumina_core.config import load_recipe
    from lumina_core.config.typed import component_spec, typed_recipe
    from lumina_core.interop.formats import match_converted
    from lumina_core.registry import MODALITIES
    from lumina_core.training.build import model_config

    cfg = load_recipe(RECIPE, [f"tasks.0.modality.params.autoencoder.params.path={tmp_path / 'vae'}", *overrides])
    task = typed_recipe(cfg).tasks[0]
    spec = MODALITIES.build(component_spec(task.modality)).adapter_spec().with_learn_sigma(task.learn_sigma)
    gemma2 = SimpleNamespace(context_dim=2304)  # a Task whose conditioner is Gemma-2-2B wide
    return match_converted(meta, model_config(cfg, {"t2i": gemma2}), {"t2i": spec})


def test_the_unchanged_recipe_takes_a_full_size_lumina2_conversion(tmp_path):
    """The shipped recipe (only local paths given) builds the released trunk - preset lumina2's unified family
    is not overridden by the schema's defaults - with the release's RoPE layout and axes (32, 32 pairs on a
    (1, 1) split), q/k epsilon and caption width; the converted release carries no training grid (a warning)."""
    meta = _full_size_conversion(tmp_path)
    with pytest.warns(UserWarning, match="records no training patch grid"):
        assert _match(meta, tmp_path) == ("image", "t2i")
    # a recipe whose trunk computes another function is refused with the difference named
    with pytest.raises(ValueError, match="family: checkpoint 'unified', recipe 'next_dit'"):
        _match(meta, tmp_path, ["model.family=next_dit"])
    with pytest.raises(ValueError, match="qk_norm_eps: checkpoint 1e-05, recipe 1e-06"):
        _match(meta, tmp_path, ["model.qk_norm_eps=1e-6"])
    with pytest.raises(ValueError, match="rope_layout: checkpoint 'blocked', recipe 'interleaved'"):
        _match(meta, tmp_path, ["tasks.0.modality.params.rope_layout=interleaved"])
