"""Z-Image sampled as released, end to end at a tiny size on the CPU:

    lumina convert <Z-Image release folder> <converted> --from z_image
    lumina sample recipes/image/z_image.yaml <tiny overrides> --ckpt <converted> --prompt "..."

against diffusers' own ``ZImagePipeline`` on the same tiny random components (a ``ZImageTransformer2DModel``
saved as the release keeps it, a 16-channel factor-8 ``AutoencoderKL`` with the FLUX scale and shift, a tiny Qwen3
whose tokenizer has a chat template): same prompt (both through the chat template with ``enable_thinking``),
same starting latents, Euler on the static shift-3 schedule of the release's scheduler. The recipe as shipped
(Z-Image-Turbo: no guidance) for one step, and four steps with guidance: the pipeline's
``guidance_scale`` g is our ``cfg_scale`` 1 + g, its ``cfg_truncation`` our ``cfg_trunc`` and its
``cfg_normalization`` our ``cfg_renorm``. The image is 64 px (an 8 x 8 latent, 4 x 4 = 16 tokens).
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
from fixtures.walkthrough import tiny_z_image  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402
from lumina_core.config import recipe_header_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "image" / "z_image.yaml"
HEADER = shlex.split(recipe_header_command(RECIPE) or "")
PROMPT = "a red circle at the top left"
IMAGE = 64  # pixels: 8 x 8 latent (factor 8), 4 x 4 patches = 16 tokens


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_qwen3):
    root = tmp_path_factory.mktemp("z_image_sampling")
    dit = tiny_z_image()  # the walkthroughs' tiny release, off its zero-initialised gates
    release = root / "Z-Image-Turbo"
    dit.eval().save_pretrained(release / "transformer", max_shard_size="300KB")
    save_flux_like_vae(release / "vae", IMAGE)
    _, tokenizer, qwen = tiny_qwen3
    qwen.save_pretrained(
        release / "text_encoder"
    )  # the release's layout: weights and tokenizer in two folders
    tokenizer.save_pretrained(release / "tokenizer")
    assert main(["convert", str(release), str(root / "converted"), "--from", "z_image"]) == 0
    return {"root": root, "release": release, "dit": dit, "tokenizer": tokenizer, "text_encoder": qwen}


def sample_ours(world, out: Path, overrides: dict[str, str]) -> torch.Tensor:
    """The recipe's own first-line command with the tiny sizes and local paths, as a user runs it."""
    rel = world["release"]
    ov = {
        "run.device": "cpu",
        "model.dim": "96", "model.n_layers": "2", "model.n_heads": "3", "model.n_kv_heads": "3",
        "model.context_dim": "32", "model.n_refiner_layers": "1",
        "tasks.0.modality.params.image_size": str(IMAGE),
        "tasks.0.modality.params.autoencoder.params.path": str(rel / "vae"),
        "tasks.0.modality.params.autoencoder.params.dtype": "float32",
        "tasks.0.conditioning.encoder.params.path": str(rel / "text_encoder"),
        "tasks.0.conditioning.encoder.params.tokenizer": str(rel / "tokenizer"),
        "tasks.0.conditioning.encoder.params.dtype": "float32",
        **overrides,
    }  # fmt: skip
    words = list(HEADER)
    assert words[:3] == ["lumina", "sample", "recipes/image/z_image.yaml"]
    words = [str(world["root"] / "converted") if x == "<converted-checkpoint>" else x for x in words[1:]]
    words[1] = str(RECIPE)
    words[words.index("--prompt") + 1] = PROMPT
    cmd = [*words[:2], *(f"{k}={v}" for k, v in ov.items()), *words[2:], "--num", "1", "--out", str(out)]
    assert main(cmd) == 0
    (png,) = out.glob("t2i_00000_*_000.png")
    return read_png(png)


def sample_diffusers(world, steps: int, **call) -> torch.Tensor:
    """diffusers' ZImagePipeline on the same components (the release's scheduler: static shift 3), from the
    latents our seed-0 token noise unpatchifies to."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline

    from lumina_modalities.image.patches import unpatchify

    g = torch.Generator().manual_seed(0)  # lumina's token noise: seed 0, one (tokens, width) draw per sample
    latents = unpatchify(torch.randn(16, 64, generator=g), (4, 4), 16, 2)[None]
    pipe = ZImagePipeline(
        transformer=world["dit"],
        scheduler=FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False
        ),
        vae=AutoencoderKL.from_pretrained(str(world["release"] / "vae"), local_files_only=True).eval(),
        text_encoder=world["text_encoder"],
        tokenizer=world["tokenizer"],
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        image = pipe(
            PROMPT,
            height=IMAGE,
            width=IMAGE,
            num_inference_steps=steps,
            latents=latents,
            output_type="np",
            **call,
        ).images[0]
    return torch.from_numpy((image * 255).round()).to(torch.int16)


CASES = {
    # the recipe as shipped (Z-Image-Turbo: no guidance), one step of it
    "turbo_1_step": ({"tasks.0.sampling.steps": "1"}, 1, {"guidance_scale": 0.0}),
    # guidance 3 (ours 4), truncated from t = 0.4 on (the fourth step, t = 0.5, unguided), the guided velocity's norm clipped to the conditional one's
    "guided": (
        {
            "tasks.0.sampling.steps": "4",
            "tasks.0.sampling.cfg_scale": "4.0",
            "tasks.0.sampling.cfg_trunc": "0.4",
            "tasks.0.sampling.cfg_renorm": "1.0",
        },
        4,
        {"guidance_scale": 3.0, "cfg_truncation": 0.4, "cfg_normalization": True},
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(CASES))
def test_lumina_sample_with_the_recipe_reproduces_z_image_pipeline(world, tmp_path, case):
    overrides, steps, call = CASES[case]
    got = sample_ours(world, tmp_path / "ours", overrides)
    want = sample_diffusers(world, steps, **call)
    assert got.shape == want.shape == (IMAGE, IMAGE, 3)
    diff = (got - want).abs().max()
    print(f"{case}: max |ours - diffusers| = {int(diff)} / 255")
    assert diff <= 1, "lumina sample does not reproduce ZImagePipeline"
    assert got.float().std() > 1  # a real image, not a flat one that any weights would give


def test_the_unchanged_recipe_takes_a_full_size_z_image_conversion(tmp_path):
    """The shipped recipe (only local paths given) builds the released trunk - preset z_image's variant, caption
    RoPE share, conditioning width and q/k epsilon survive the schema's defaults - with the release's RoPE layout,
    theta and axes, for a conversion of the full-size ZImageTransformer2DModel (built on the meta device)."""
    from types import SimpleNamespace

    from diffusers import ZImageTransformer2DModel

    from lumina_core.config import load_recipe
    from lumina_core.config.typed import component_spec, typed_recipe
    from lumina_core.interop.formats import match_converted
    from lumina_core.registry import MODALITIES
    from lumina_core.training.build import model_config
    from lumina_modalities.image.interop import converted_meta, from_diffusers

    save_smallest_16_channel_vae(tmp_path / "vae")
    with torch.device("meta"):
        meta = converted_meta(
            from_diffusers(ZImageTransformer2DModel())
        )  # the release's config is the default

    def match(*overrides):
        cfg = load_recipe(
            RECIPE, [f"tasks.0.modality.params.autoencoder.params.path={tmp_path / 'vae'}", *overrides]
        )
        task = typed_recipe(cfg).tasks[0]
        spec = (
            MODALITIES.build(component_spec(task.modality)).adapter_spec().with_learn_sigma(task.learn_sigma)
        )
        qwen3_4b = SimpleNamespace(context_dim=2560)  # a Task whose conditioner is Qwen3-4B wide
        return match_converted(meta, model_config(cfg, {"t2i": qwen3_4b}), {"t2i": spec})

    with pytest.warns(UserWarning, match="records no training patch grid"):
        assert match() == ("image", "t2i")
    with pytest.raises(ValueError, match="unified_variant: checkpoint 'z_image', recipe 'lumina2'"):
        match("model.preset=lumina2", "model.context_dim=2560")
    with pytest.raises(ValueError, match="rope_theta"):
        match("tasks.0.modality.params.rope_theta=10000")
