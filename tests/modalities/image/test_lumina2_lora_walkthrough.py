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
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from fixtures import lora_consumers as comfy  # noqa: E402
from fixtures.walkthrough import (  # noqa: E402
    LUMINA2_TRUNK,
    ROOT,
    autoencoder_roundtrip,
    header_overrides,
    tiny_lumina2,
    train_overrides,
    walkthrough_sample,
    walkthrough_world,
)
from safetensors.torch import load_file, save_file  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402

TRAIN = ROOT / "recipes" / "image" / "lumina2_lora.yaml"
SAMPLE = ROOT / "recipes" / "image" / "lumina2.yaml"
TRUNK = LUMINA2_TRUNK


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_gemma):
    return walkthrough_world(
        tmp_path_factory.mktemp("lumina2_lora_walkthrough"), tiny_lumina2(), tiny_gemma, "comfy.safetensors"
    )


def sample(world, ckpt: Path, out: Path, lora: Path | None = None, *extra: str) -> torch.Tensor:
    """`lumina sample` of the SAMPLE recipe, ``--ckpt ... [--lora ...]``, with the tiny sizes and local paths."""
    return walkthrough_sample(SAMPLE, TRUNK, world, ckpt, out, lora, *extra)


# a converted release records no training patch grid: the recipe's is used (said once per run, expected here)
@pytest.mark.filterwarnings("ignore:the converted checkpoint records no training patch grid")
def test_convert_lora_train_sample_and_export_as_docs_lumina2_md_says(world, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    root = world["root"]
    converted = tmp_path / "converted"
    assert main(["convert", str(root / "comfy.safetensors"), str(converted), "--from", "lumina2"]) == 0

    run = tmp_path / "run"
    ov = {**train_overrides(TRUNK, run, converted), "train.lora.rank": "2", "train.lora.alpha": "4"}
    assert (
        main(
            [
                "train",
                str(TRAIN),
                *header_overrides(TRAIN, world["fill"]),
                *(f"{k}={v}" for k, v in ov.items()),
            ]
        )
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
    assert (back - autoencoder_roundtrip(world["fill"]["<vae>"], image)).abs().max() <= 1

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
