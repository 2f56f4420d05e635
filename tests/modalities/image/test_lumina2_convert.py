"""Lumina-Image 2.0 in each of its public layouts, written by tiny random models, through ``lumina convert --from
lumina2`` (and ``--from diffusers``) and back, bit for bit; the released key names checked against diffusers' own
single-file converter."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import Lumina2Transformer2DModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_lumina2_to_diffusers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from lumina_core.interop import convert  # noqa: E402
from lumina_modalities.image.interop import (  # noqa: E402
    from_diffusers,
    load_converted,
    to_lumina2_diffusers,
    to_lumina2_released,
)

#: names of the original release (SPEC section 7) that a file in that layout must hold
RELEASED_NAMES = (
    "x_embedder.weight", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.bias", "cap_embedder.0.weight",
    "cap_embedder.1.weight", "context_refiner.0.attention.qkv.weight", "context_refiner.0.attention_norm1.weight",
    "noise_refiner.0.adaLN_modulation.1.weight", "layers.1.attention.out.weight", "layers.1.attention.q_norm.weight",
    "layers.1.attention.k_norm.weight", "layers.1.feed_forward.w1.weight", "layers.1.feed_forward.w2.weight",
    "layers.1.feed_forward.w3.weight", "layers.1.attention_norm2.weight", "layers.1.ffn_norm1.weight",
    "layers.1.ffn_norm2.weight", "final_layer.adaLN_modulation.1.weight", "final_layer.linear.bias",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    ref = Lumina2Transformer2DModel(sample_size=16, patch_size=2, in_channels=4, hidden_size=96, num_layers=2,
                                    num_refiner_layers=1, num_attention_heads=2, num_kv_heads=1, multiple_of=16,
                                    axes_dim_rope=(16, 16, 16), cap_feat_dim=24)  # fmt: skip
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
    root = tmp_path_factory.mktemp("lumina2")
    ref.save_pretrained(root / "diffusers")
    released = to_lumina2_released(from_diffusers(ref))
    save_file({k: v.contiguous() for k, v in released.items()}, root / "consolidated.00-of-01.safetensors")
    comfy = {"model.diffusion_model." + k: v.contiguous() for k, v in released.items()}
    save_file(comfy, root / "lumina_2_comfy.safetensors")
    # ComfyUI's all-in-one checkpoint: the autoencoder and the text encoder beside the model (set aside on load)
    others = {"first_stage_model.decoder.conv_in.weight": torch.ones(2), "text_encoders.gemma2_2b.norm.weight": torch.ones(3)}
    save_file({**comfy, **others}, root / "lumina_2_checkpoint.safetensors")
    return root, ref, released


def test_released_names_are_the_public_ones(files):
    _, ref, released = files
    assert set(RELEASED_NAMES) <= set(released)
    # diffusers' single-file converter renames every released key except the fused qkv (whose split it
    # hard-codes to the 2.6 B sizes) onto exactly the tensors of our diffusers export
    plain = {k: v.clone() for k, v in released.items() if "qkv" not in k}
    theirs = convert_lumina2_to_diffusers(plain)
    ours = to_lumina2_diffusers(from_diffusers(ref))
    assert set(theirs) <= set(ours)
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs)
    assert set(ours) - set(theirs) == {k for k in ours if ".attn.to_q." in k or ".attn.to_k." in k or ".attn.to_v." in k}


@pytest.mark.parametrize(
    "source",
    ["consolidated.00-of-01.safetensors", "lumina_2_comfy.safetensors", "lumina_2_checkpoint.safetensors", "diffusers", "."],
)
def test_lumina_convert_round_trips_bit_for_bit(files, tmp_path, source):
    root, ref, released = files
    dst = convert(root / source, tmp_path / "ours", src_format="lumina2")
    image = load_converted(dst)
    assert image.model.config.family == "unified"
    back = to_lumina2_released(image)
    assert set(back) == set(released) and all(torch.equal(back[k], released[k]) for k in released)
    to_diffusers = to_lumina2_diffusers(image)
    assert all(torch.equal(to_diffusers[k], v) for k, v in ref.state_dict().items())


def test_diffusers_format_takes_a_lumina2_folder(files, tmp_path):
    root, ref, _ = files
    image = load_converted(convert(root / "diffusers", tmp_path / "ours", src_format="diffusers"))
    x, t = torch.randn(2, 4, 6, 4), torch.tensor([0.3, 0.8])
    cap, mask = torch.randn(2, 5, 24), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    with torch.no_grad():
        want = ref(x, t, cap, mask).sample
        assert (image(x, t, cap, mask) - want).abs().max() <= 1e-4 * want.abs().max()


def test_a_preset_other_than_the_checkpoint_is_refused(files, tmp_path):
    root, _, _ = files
    with pytest.raises(ValueError, match="does not apply to Lumina-Image 2.0"):
        convert(root / "diffusers", tmp_path / "ours", src_format="lumina2", preset="2B")


def test_lumina_convert_to_writes_each_public_layout_bit_for_bit(files, tmp_path):
    """``lumina convert --to lumina2 --layout comfyui|released|diffusers`` from our format: ComfyUI's prefixed
    file, the release's ``.pth`` (a flat tensor dict that ``torch.load(weights_only=True)`` reads) and a diffusers
    folder that ``from_pretrained`` loads, each equal to what the tiny model was written as."""
    from safetensors.torch import load_file

    from lumina_core.cli.main import main

    root, ref, released = files
    ours = tmp_path / "ours"
    assert main(["convert", str(root / "lumina_2_comfy.safetensors"), str(ours), "--from", "lumina2"]) == 0
    assert main(["convert", str(ours), str(tmp_path / "comfy.safetensors"), "--to", "lumina2"]) == 0
    comfy = load_file(tmp_path / "comfy.safetensors")
    assert set(comfy) == {"model.diffusion_model." + k for k in released}
    assert all(torch.equal(comfy["model.diffusion_model." + k], v) for k, v in released.items())
    out = tmp_path / "consolidated.00-of-01.pth"
    assert main(["convert", str(ours), str(out), "--to", "lumina2", "--layout", "released"]) == 0
    pth = torch.load(out, weights_only=True)
    assert set(pth) == set(released) and all(torch.equal(pth[k], v) for k, v in released.items())
    assert main(["convert", str(ours), str(tmp_path / "dif"), "--to", "lumina2", "--layout", "diffusers"]) == 0
    again = Lumina2Transformer2DModel.from_pretrained(tmp_path / "dif")
    assert again.config.cap_feat_dim == 24 and tuple(again.config.axes_dim_rope) == (16, 16, 16)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in ref.state_dict().items())
