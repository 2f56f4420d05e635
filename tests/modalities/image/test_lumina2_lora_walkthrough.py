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

from fixtures.walkthrough import (  # noqa: E402
    LUMINA2_TRUNK,
    ROOT,
    lora_walkthrough,
    tiny_lumina2,
    walkthrough_sample,
    walkthrough_world,
)
from safetensors.torch import load_file  # noqa: E402

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
    converted, adapter = lora_walkthrough(
        world, tmp_path, "lumina2", "comfy.safetensors", TRAIN, TRUNK, sample
    )

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
