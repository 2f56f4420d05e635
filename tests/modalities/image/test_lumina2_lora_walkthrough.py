"""docs/lumina2.md's LoRA walkthrough, command by command, at a tiny size on the CPU:

    lumina convert <ComfyUI single file> <converted> --from lumina2
    lumina train recipes/image/lumina2_lora.yaml <the header's paths> <tiny overrides>
    lumina sample recipes/image/lumina2.yaml --ckpt <converted> --lora <adapter> --prompt "..." [--init IMG --strength 0]
    lumina lora export <adapter> --format comfyui | diffusers

with a random tiny Lumina-Image 2.0 written as ComfyUI's single file (the release's names under
``model.diffusion_model.``), a 16-channel factor-8 ``AutoencoderKL`` with the FLUX scale and shift, a tiny Gemma
and its tokenizer in two folders, and a folder of four non-square images with captions. The exported ComfyUI
LoRA, applied to the ComfyUI file by ComfyUI's rule (``fixtures/lora_consumers.py``) and converted again, samples
the same image as ``--lora`` on the original; the diffusers export loads with ``Lumina2Pipeline.load_lora_weights``.
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
pytest.importorskip("peft")

from fixtures import lora_consumers as comfy  # noqa: E402
from fixtures.autoencoders import save_flux_like_vae  # noqa: E402
from fixtures.images import read_png  # noqa: E402
from fixtures.text_encoders import CORPUS  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402
from lumina_core.config import recipe_header_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TRAIN = ROOT / "recipes" / "image" / "lumina2_lora.yaml"
SAMPLE = ROOT / "recipes" / "image" / "lumina2.yaml"
IMAGE = 64  # pixels: an 8 x 8 latent (factor 8), 4 x 4 patches
TRUNK = {"model.dim": "96", "model.n_layers": "2", "model.n_heads": "2", "model.n_kv_heads": "1",
         "model.context_dim": "32", "model.multiple_of": "128", "model.n_refiner_layers": "1"}  # fmt: skip
# (multiple_of: a file holds no multiple_of; the conversion reads the largest that gives its SwiGLU width, 384)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_gemma):
    from diffusers import Lumina2Transformer2DModel
    from PIL import Image, ImageDraw

    from lumina_modalities.image.interop import from_diffusers, to_lumina2_released

    root = tmp_path_factory.mktemp("lumina2_lora_walkthrough")
    torch.manual_seed(0)
    dit = Lumina2Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, hidden_size=96, num_layers=2, num_refiner_layers=1,
        num_attention_heads=2, num_kv_heads=1, multiple_of=16, axes_dim_rope=(16, 16, 16), cap_feat_dim=32,
    )  # fmt: skip
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.2 * torch.randn_like(p))
    released = to_lumina2_released(from_diffusers(dit.eval()))
    save_file(
        {"model." + comfy.PREFIX + k: v.contiguous() for k, v in released.items()},
        str(root / "comfy.safetensors"),
    )
    save_flux_like_vae(root / "vae", IMAGE)
    _, tokenizer, gemma = tiny_gemma
    gemma.save_pretrained(root / "text_encoder")
    tokenizer.save_pretrained(root / "tokenizer")
    folder = root / "folder"
    folder.mkdir()
    for i, caption in enumerate(CORPUS[:4]):
        size = (80, 64) if i % 2 else (64, 80)  # two aspect ratios: two buckets
        img = Image.new("RGB", size, (128, 128, 128))
        ImageDraw.Draw(img).ellipse((8 + 4 * i, 8, 40 + 4 * i, 40), fill=(40 * i, 200 - 40 * i, 90))
        img.save(folder / f"pair_{i}.png")
        (folder / f"pair_{i}.txt").write_text(caption)
    return {"root": root, "dit": dit, "fill": {
        "<folder>": folder, "<text-encoder>": root / "text_encoder", "<tokenizer>": root / "tokenizer",
        "<vae>": root / "vae"}}  # fmt: skip


def header_overrides(world, recipe: Path) -> list[str]:
    """The recipe's `# Run:` command's overrides with the user's paths filled in."""
    words = shlex.split(recipe_header_command(recipe) or "")
    assert words[:3] == ["lumina", "train", str(recipe.relative_to(ROOT))]
    out = []
    for w in words[3:]:
        key, _, value = w.partition("=")
        assert value in world["fill"], f"{recipe}: the header's {w!r} is not a path the user fills in"
        out.append(f"{key}={world['fill'][value]}")
    return out


def sample(world, ckpt: Path, out: Path, lora: Path | None = None, *extra: str) -> torch.Tensor:
    """`lumina sample recipes/image/lumina2.yaml --ckpt ... [--lora ...]` with the tiny sizes and local paths."""
    ov = {**TRUNK, "run.device": "cpu", "tasks.0.modality.params.image_size": str(IMAGE),
          "tasks.0.modality.params.autoencoder.params.path": str(world["fill"]["<vae>"]),
          "tasks.0.modality.params.autoencoder.params.dtype": "float32",
          "tasks.0.conditioning.encoder.params.path": str(world["fill"]["<text-encoder>"]),
          "tasks.0.conditioning.encoder.params.tokenizer": str(world["fill"]["<tokenizer>"]),
          "tasks.0.conditioning.encoder.params.dtype": "float32", "tasks.0.sampling.steps": "2"}  # fmt: skip
    cmd = ["sample", str(SAMPLE), "--ckpt", str(ckpt), "--num", "1", "--out", str(out), *extra]
    if lora is not None:
        cmd += ["--lora", str(lora)]
    # as docs/lumina2.md writes it: the prompt, then the overrides after it
    assert main([*cmd, "--prompt", CORPUS[0], *(f"{k}={v}" for k, v in ov.items())]) == 0
    (png,) = out.glob("t2i_00000_*_000.png")
    return read_png(png)


def roundtrip(world, image: Path) -> torch.Tensor:
    """``D(E(x))`` of the image with diffusers' AutoencoderKL alone (posterior mode: the FLUX scale and shift
    cancel), as uint8 pixels."""
    from diffusers import AutoencoderKL

    from lumina_modalities.image.folder import decode_image
    from lumina_modalities.image.preview import to_uint8

    vae = AutoencoderKL.from_pretrained(str(world["fill"]["<vae>"]), local_files_only=True).eval()
    x = decode_image(image, (IMAGE, IMAGE))[None]
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample[0]
    return torch.from_numpy(to_uint8(y)).to(torch.int16)


# a converted release records no training patch grid: the recipe's is used (said once per run, expected here)
@pytest.mark.filterwarnings("ignore:the converted checkpoint records no training patch grid")
def test_convert_lora_train_sample_and_export_as_docs_lumina2_md_says(world, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    root = world["root"]
    converted = tmp_path / "converted"
    assert main(["convert", str(root / "comfy.safetensors"), str(converted), "--from", "lumina2"]) == 0

    run = tmp_path / "run"
    ov = {**TRUNK, "run.device": "cpu", "run.output_dir": str(run), "train.init_from": str(converted),
          "tasks.0.modality.params.image_size": str(IMAGE), "tasks.0.modality.params.autoencoder.params.dtype": "float32",
          "tasks.0.conditioning.encoder.params.dtype": "float32", "tasks.0.data.params.size": str(IMAGE),
          "tasks.0.data.num_workers": "0", "tasks.0.sampling.steps": "2", "train.max_steps": "3",
          "train.ckpt_every": "3", "train.warmup_steps": "0", "train.precision": "32-true", "train.log_every": "1",
          "train.lr": "1e-2", "train.lora.rank": "2", "train.lora.alpha": "4", "train.threads": "1"}  # fmt: skip
    assert (
        main(["train", str(TRAIN), *header_overrides(world, TRAIN), *(f"{k}={v}" for k, v in ov.items())])
        == 0
    )
    adapter = run / "lora" / "adapter.safetensors"
    factors = load_file(str(adapter))
    assert factors and all(
        ".lora_A." in k or ".lora_B." in k for k in factors
    )  # the factors only (train_also: [])
    assert any(".lora_B." in k and v.abs().sum() > 0 for k, v in factors.items())  # it trained
    assert any((tmp_path / "cache").rglob("*.safetensors"))  # the caption features were cached

    base = sample(world, converted, tmp_path / "base")
    tuned = sample(world, converted, tmp_path / "tuned", lora=adapter)
    assert (tuned - base).abs().max() > 1  # the adapter changes the image
    # image-to-image with the adapter at strength 0: the input comes back through the autoencoder, D(E(x))
    image = world["fill"]["<folder>"] / "pair_1.png"
    back = sample(world, converted, tmp_path / "init", adapter, "--init", str(image), "--strength", "0")
    assert (back - roundtrip(world, image)).abs().max() <= 1

    # ComfyUI: the exported LoRA patched into the ComfyUI file by ComfyUI's rule, converted, samples the same image
    lora_file = tmp_path / "lora_comfyui.safetensors"
    assert main(["lora", "export", str(adapter), "--format", "comfyui", "--out", str(lora_file)]) == 0
    checkpoint = {k[len("model.") :]: v for k, v in load_file(str(root / "comfy.safetensors")).items()}
    patched = comfy.patch(checkpoint, load_file(str(lora_file)))
    save_file(
        {"model." + k: v.contiguous() for k, v in patched.items()}, str(tmp_path / "patched.safetensors")
    )
    assert (
        main(["convert", str(tmp_path / "patched.safetensors"), str(tmp_path / "conv2"), "--from", "lumina2"])
        == 0
    )
    assert (sample(world, tmp_path / "conv2", tmp_path / "comfy") - tuned).abs().max() <= 1

    # diffusers: Lumina2Pipeline's own loader takes the file, every module of it
    from diffusers import Lumina2Pipeline
    from peft.tuners.lora import LoraLayer

    out = tmp_path / "diffusers"
    assert main(["lora", "export", str(adapter), "--format", "diffusers", "--out", str(out)]) == 0
    pipe = Lumina2Pipeline(
        transformer=world["dit"], scheduler=None, vae=None, text_encoder=None, tokenizer=None
    )
    pipe.load_lora_weights(
        str(out), weight_name="pytorch_lora_weights.safetensors", adapter_name="walkthrough"
    )
    state = load_file(str(out / "pytorch_lora_weights.safetensors"))
    adapted = {n for n, m in world["dit"].named_modules() if isinstance(m, LoraLayer)}
    assert adapted == {k[len("transformer.") :].rsplit(".", 2)[0] for k in state}
