"""docs/lumina2.md's Z-Image LoRA walkthrough, command by command, at a tiny size on the CPU:

    lumina convert <ComfyUI single file> <converted> --from z_image
    lumina train recipes/image/z_image_lora.yaml <the header's paths> <tiny overrides>
    lumina sample recipes/image/z_image.yaml --ckpt <converted> --lora <adapter> --prompt "..." [--init IMG --strength 0]
    lumina lora export <adapter> --format comfyui | diffusers

with a random tiny ``ZImageTransformer2DModel`` written as ComfyUI's single file (ComfyUI's names under
``model.diffusion_model.``), a 16-channel factor-8 ``AutoencoderKL`` with the FLUX scale and shift, a tiny Qwen3
whose tokenizer has a chat template (weights and tokenizer in two folders, as the release keeps them) and a folder
of four non-square images with captions. The exported ComfyUI LoRA, applied to the ComfyUI file by ComfyUI's rule
(``fixtures/lora_consumers.py``) and converted again, samples the same image as ``--lora`` on the original; the
diffusers export, loaded with ``ZImagePipeline.load_lora_weights``, gives diffusers' model the output of our model
with the adapter merged (``lumina lora merge``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from fixtures.walkthrough import (  # noqa: E402
    ROOT,
    Z_IMAGE_TRUNK,
    lora_walkthrough,
    tiny_z_image,
    walkthrough_sample,
    walkthrough_world,
)
from safetensors.torch import load_file  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402

TRAIN = ROOT / "recipes" / "image" / "z_image_lora.yaml"
SAMPLE = ROOT / "recipes" / "image" / "z_image.yaml"
TRUNK = Z_IMAGE_TRUNK


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_qwen3):
    return walkthrough_world(
        tmp_path_factory.mktemp("z_image_lora_walkthrough"),
        tiny_z_image(),
        tiny_qwen3,
        "z_image_comfy.safetensors",
    )


def sample(world, ckpt: Path, out: Path, lora: Path | None = None, *extra: str) -> torch.Tensor:
    """`lumina sample` of the SAMPLE recipe, ``--ckpt ... [--lora ...]``, with the tiny sizes and local paths."""
    return walkthrough_sample(SAMPLE, TRUNK, world, ckpt, out, lora, *extra)


LENGTHS = (5, 2)  # valid caption tokens of the two samples the outputs are compared on (of 5)


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents on a 3 x 5 patch grid, flow times, captions and their mask, for two samples."""
    g = torch.Generator().manual_seed(1)
    x, t, cap = (
        torch.randn(2, 16, 6, 10, generator=g),
        torch.rand(2, generator=g),
        torch.randn(2, 5, 32, generator=g),
    )
    return x, t, cap, torch.arange(5)[None] < torch.tensor(LENGTHS)[:, None]


@torch.no_grad()
def diffusers_output(dit, x, t, cap) -> torch.Tensor:
    """``ZImageTransformer2DModel`` on the batch (one frame per image, each caption's valid tokens), (B, C, H, W)."""
    out = dit([x[i][:, None] for i in range(len(x))], t, [cap[i, :n] for i, n in enumerate(LENGTHS)]).sample
    return torch.stack(out)[:, :, 0]


# a converted release records no training patch grid: the recipe's is used (said once per run, expected here)
@pytest.mark.filterwarnings("ignore:the converted checkpoint records no training patch grid")
def test_convert_lora_train_sample_and_export_z_image_as_docs_lumina2_md_says(world, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))
    converted, adapter = lora_walkthrough(
        world, tmp_path, "z_image", "z_image_comfy.safetensors", TRAIN, TRUNK, sample
    )

    # diffusers: ZImagePipeline's own loader takes the file, every module of it, and diffusers' model then computes
    # what ours computes with the adapter merged in
    from diffusers import ZImagePipeline
    from peft.tuners.lora import LoraLayer

    from lumina_modalities.image.interop import load_converted

    out = tmp_path / "diffusers"
    assert main(["lora", "export", str(adapter), "--format", "diffusers", "--out", str(out)]) == 0
    dit = copy.deepcopy(world["dit"])
    pipe = ZImagePipeline(transformer=dit, scheduler=None, vae=None, text_encoder=None, tokenizer=None)
    pipe.load_lora_weights(
        str(out), weight_name="pytorch_lora_weights.safetensors", adapter_name="walkthrough"
    )
    state = load_file(str(out / "pytorch_lora_weights.safetensors"))
    adapted = {n for n, m in dit.named_modules() if isinstance(m, LoraLayer)}
    assert adapted == {k[len("transformer.") :].rsplit(".", 2)[0] for k in state}

    assert main(["lora", "merge", str(converted), str(adapter), "--out", str(tmp_path / "merged")]) == 0
    x, t, cap, mask = batch()
    with torch.no_grad():
        want = load_converted(tmp_path / "merged")(x, t, cap, mask)
    scale = want.abs().max()
    rel = float((diffusers_output(dit, x, t, cap) - want).abs().max() / scale)
    print(f"diffusers with the exported LoRA vs ours with it merged: {rel:.1e} of the output scale")
    assert rel <= 1e-4
    before = diffusers_output(world["dit"], x, t, cap)  # without the adapter: far from ours at this tolerance
    assert float((before - want).abs().max() / scale) > 1e-3
