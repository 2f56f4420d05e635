"""Fine-tuning released / diffusers weights on a user's folder, as a user runs it, at a tiny size on the CPU:

    lumina convert <diffusers transformer> <converted> --from diffusers
    lumina train recipes/image/finetune_folder.yaml      <the header's paths> <tiny overrides>   (full)
    lumina train recipes/image/finetune_folder_lora.yaml <the header's paths> <tiny overrides>   (LoRA)
    lumina sample recipes/image/finetune_folder.yaml --ckpt <converted> --lora <adapter> --init IMG --strength 0

with a random tiny diffusers ``LuminaNextDiT2DModel``, a tiny ``AutoencoderKL`` and a tiny Gemma saved to local
folders. Spies on the real autoencoder and text encoder (they still run) count what each run encodes: every
image goes through the autoencoder once over both runs, the captions through the text encoder once.
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

from fixtures.diffusers_models import random_diffusers  # noqa: E402
from fixtures.images import IMAGE, read_png, tiny_autoencoder  # noqa: E402
from fixtures.text_encoders import CORPUS  # noqa: E402  (tiny_gemma: a fixture)

from lumina_core.cli.main import main  # noqa: E402
from lumina_core.config import recipe_header_command  # noqa: E402
from lumina_core.training import checkpoint as ckpt_io  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
FULL = ROOT / "recipes" / "image" / "finetune_folder.yaml"
LORA = ROOT / "recipes" / "image" / "finetune_folder_lora.yaml"
COLOURS = [(220, 30, 30), (30, 60, 220), (40, 180, 60), (230, 200, 40)]


def write_folder(root: Path) -> list[Path]:
    """Four image + caption pairs: a coloured disc or square on grey, captioned from the tiny Gemma's words."""
    from PIL import Image, ImageDraw

    root.mkdir(parents=True)
    paths = []
    for i, (colour, caption) in enumerate(zip(COLOURS, CORPUS, strict=True)):
        img = Image.new("RGB", (24, 20), (128, 128, 128))  # not square: resized to cover and cropped
        draw = ImageDraw.Draw(img)
        box = (3 + 2 * i, 3, 15 + 2 * i, 15)
        (draw.ellipse if i % 2 == 0 else draw.rectangle)(box, fill=colour)
        path = root / f"pair_{i}.png"
        img.save(path)
        path.with_suffix(".txt").write_text(caption)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_gemma):
    root = tmp_path_factory.mktemp("finetune")
    random_diffusers(seed=0, cross_attention_dim=32).save_pretrained(root / "dit")  # Gemma's width: 32
    tiny_autoencoder(root / "vae")
    images = write_folder(root / "folder")
    assert main(["convert", str(root / "dit"), str(root / "converted"), "--from", "diffusers"]) == 0
    return {"root": root, "vae": root / "vae", "gemma": tiny_gemma[0], "images": images,
            "converted": root / "converted"}  # fmt: skip


def header_command(recipe: Path, world, out: Path, **extra: str) -> list[str]:
    """The recipe's own `# Run:` command with the user's paths filled in, plus tiny sizes."""
    words = shlex.split(recipe_header_command(recipe) or "")
    assert words[:3] == ["lumina", "train", str(recipe.relative_to(ROOT))]
    fill = {"<folder>": world["root"] / "folder", "<text-encoder>": world["gemma"], "<vae>": world["vae"]}
    args = [str(recipe)]
    for w in words[3:]:
        key, _, value = w.partition("=")
        assert value in fill, f"{recipe}: the header's {w!r} is not a path the user fills in"
        args.append(f"{key}={fill[value]}")
    ov = {
        "run.device": "cpu",
        "run.output_dir": str(out),
        "train.init_from": str(world["converted"]),
        "model.dim": "64", "model.n_layers": "2", "model.n_heads": "4", "model.n_kv_heads": "2",
        "tasks.0.modality.params.image_size": str(IMAGE),
        "tasks.0.modality.params.latent_cache": str(world["root"] / "latents"),
        "tasks.0.modality.params.autoencoder.params.dtype": "float32",
        "tasks.0.conditioning.encoder.params.dtype": "float32",
        "tasks.0.data.params.size": str(IMAGE),
        "tasks.0.data.params.buckets": "false",
        "tasks.0.data.batch_size": "2",
        "tasks.0.data.num_workers": "0",
        "tasks.0.sampling.solver": "euler",
        "tasks.0.sampling.steps": "2",
        "tasks.0.eval.batch_size": "2",
        "train.max_steps": "3",
        "train.ckpt_every": "3",
        "train.warmup_steps": "0",
        "train.precision": "32-true",
        "train.log_every": "1",
        "train.lr": "1e-3",
        "train.threads": "1",
    }  # fmt: skip
    ov.update(extra)
    return ["train", *args, *(f"{k}={v}" for k, v in ov.items())]


@pytest.fixture
def spies(monkeypatch):
    """Counts of the real encoders' work: images through AutoencoderKL.encode, captions through the hf model."""
    from diffusers import AutoencoderKL

    from lumina_core.conditioning import HFTextConditioner

    seen = {"images": 0, "captions": []}
    vae_encode, text_encode = AutoencoderKL.encode, HFTextConditioner.encode

    def count_images(self, x, *a, **k):
        seen["images"] += int(x.shape[0])
        return vae_encode(self, x, *a, **k)

    def count_captions(self, values, *a, **k):
        seen["captions"] += list(values)
        return text_encode(self, values, *a, **k)

    monkeypatch.setattr(AutoencoderKL, "encode", count_images)
    monkeypatch.setattr(HFTextConditioner, "encode", count_captions)
    return seen


def test_full_then_lora_fine_tune_encode_once_and_sample_through_the_adapter(world, tmp_path, spies, monkeypatch):
    monkeypatch.setenv("LUMINA_CACHE_DIR", str(tmp_path / "cache"))  # the caption features' default folder

    # full fine-tuning: 3 steps of 2 over 4 images (6 draws); each image through the autoencoder once
    full = tmp_path / "full"
    assert main(header_command(FULL, world, full)) == 0
    assert spies["images"] == len(world["images"]) == 4
    assert len(list((world["root"] / "latents").rglob("*.safetensors"))) == 4
    assert set(CORPUS) <= set(spies["captions"])
    assert len([c for c in spies["captions"] if c]) == len(set(c for c in spies["captions"] if c))  # once each
    assert any((tmp_path / "cache" / "features").rglob("*.safetensors"))
    from safetensors.torch import load_file

    base = {  # the converted checkpoint's image task is the recipe's t2i
        "model." + k.replace("adapters.image.", "adapters.t2i."): v
        for k, v in load_file(str(world["converted"] / "model.safetensors")).items()
    }
    tuned = ckpt_io.load_weights(full / "checkpoints" / "step_0000003", "model")
    assert set(tuned) == set(base)  # every weight is saved ...
    moved = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert any(".layers." in k for k in moved) and any("adapters.t2i." in k for k in moved)  # ... and trained

    # LoRA on the same folder: nothing goes through either encoder again (read back from disk)
    spies["images"], spies["captions"] = 0, []
    lora = tmp_path / "lora"
    assert main(header_command(LORA, world, lora, **{"train.lora.rank": "2", "train.lora.alpha": "4"})) == 0
    assert spies["images"] == 0
    assert set(spies["captions"]) <= {""}  # at most the null caption, if the first run never dropped one
    ck = lora / "checkpoints" / "step_0000003"
    for which in ("model", "ema"):
        w = ckpt_io.load_weights(ck, which)
        assert w and all(".lora_A." in k or ".lora_B." in k for k in w), sorted(w)[:4]
    adapter = lora / "lora" / "adapter.safetensors"
    assert adapter.is_file()
    factors = load_file(str(adapter))
    assert factors and any(".lora_B." in k and v.abs().sum() > 0 for k, v in factors.items())  # it trained

    # the converted base with the adapter merged, image-to-image at strength 0: the input image comes back
    # (through the autoencoder: D(E(x)), computed here with diffusers alone)
    out = tmp_path / "samples"
    image = world["images"][1]
    sample = ["sample", str(FULL), *header_command(FULL, world, tmp_path / "unused")[2:],
              "--ckpt", str(world["converted"]), "--lora", f"{adapter}:0.8", "--init", str(image),
              "--strength", "0", "--prompt", CORPUS[1], "--num", "1", "--out", str(out)]  # fmt: skip
    assert main(sample) == 0
    (png,) = out.glob("t2i_00000_*_000.png")  # the sample itself (beside it: a captioned sheet)
    assert (read_png(png) - roundtrip(world, image)).abs().max() <= 1


def roundtrip(world, image: Path) -> torch.Tensor:
    """``D(E(x))`` of the image as the folder dataset reads it, with diffusers' AutoencoderKL alone (posterior
    mode; the latent scale cancels), as uint8 pixels."""
    from diffusers import AutoencoderKL

    from lumina_modalities.image.folder import decode_image
    from lumina_modalities.image.preview import to_uint8

    vae = AutoencoderKL.from_pretrained(str(world["vae"]), local_files_only=True).eval()
    x = decode_image(image, (IMAGE, IMAGE))[None]
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample[0]
    return torch.from_numpy(to_uint8(y)).to(torch.int16)


def test_the_recipes_refuse_a_missing_converted_checkpoint_clearly(world, tmp_path, capsys):
    args = header_command(LORA, world, tmp_path / "run", **{"train.init_from": str(tmp_path / "nowhere")})
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
