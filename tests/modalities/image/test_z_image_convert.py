"""Z-Image in each of its public layouts, written by a tiny random model, through ``lumina convert --from z_image``
and back with ``lumina convert --to z_image``, bit for bit: the release's layout (a pipeline folder whose
``transformer/`` holds sharded safetensors, the names of Tongyi-MAI's code and diffusers alike) and ComfyUI's
single file (names checked against diffusers' own single-file converter, with and without the
``model.diffusion_model.`` prefix). The ``z_image`` preset's size is the release's, counted on the meta device."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import ZImageTransformer2DModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_z_image_transformer_checkpoint_to_diffusers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402
from lumina_modalities.image.interop import load_converted, to_z_image_comfyui  # noqa: E402

#: names ComfyUI's model detection and Z-Image loader read (comfy/model_detection.py, comfy/ldm/lumina/model.py)
COMFY_NAMES = (
    "x_embedder.weight",
    "x_embedder.bias",
    "final_layer.linear.weight",
    "final_layer.adaLN_modulation.1.weight",
    "x_pad_token",
    "cap_pad_token",
    "t_embedder.mlp.0.weight",
    "t_embedder.mlp.2.bias",
    "cap_embedder.0.weight",
    "cap_embedder.1.weight",
    "noise_refiner.0.attention.k_norm.weight",
    "noise_refiner.0.adaLN_modulation.0.weight",
    "context_refiner.0.attention.qkv.weight",
    "layers.1.attention.qkv.weight",
    "layers.1.attention.out.weight",
    "layers.1.attention.q_norm.weight",
    "layers.1.feed_forward.w1.weight",
    "layers.1.feed_forward.w2.weight",
    "layers.1.feed_forward.w3.weight",
    "layers.1.attention_norm1.weight",
    "layers.1.ffn_norm2.weight",
    "layers.1.adaLN_modulation.0.bias",
)
PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    ref = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=96, n_layers=2,
                                   n_refiner_layers=1, n_heads=3, n_kv_heads=3, cap_feat_dim=24,
                                   axes_dims=(8, 12, 12), rope_theta=256.0)  # fmt: skip
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
    root = tmp_path_factory.mktemp("z_image")
    ref.save_pretrained(root / "Z-Image" / "transformer", max_shard_size="200KB")  # the release: sharded
    comfy = to_z_image_comfyui(_ours(ref))
    save_file({k: v.contiguous() for k, v in comfy.items()}, root / "z_image_bf16.safetensors")
    # a ComfyUI checkpoint file: the model under model.diffusion_model., beside an autoencoder and a text encoder
    others = {
        "first_stage_model.decoder.conv_in.weight": torch.ones(2),
        "text_encoders.qwen3_4b.norm.weight": torch.ones(3),
    }
    save_file(
        {**{PREFIX + k: v.contiguous() for k, v in comfy.items()}, **others},
        root / "z_image_checkpoint.safetensors",
    )
    return root, ref, comfy


def _ours(ref):
    from lumina_modalities.image.interop import from_diffusers

    return from_diffusers(ref)


def test_the_release_is_sharded_and_comfy_names_are_the_public_ones(files):
    root, ref, comfy = files
    assert len(list((root / "Z-Image" / "transformer").glob("diffusion_pytorch_model-*.safetensors"))) > 1
    assert set(COMFY_NAMES) <= set(comfy)
    # diffusers' single-file converter (which reads ComfyUI's files) maps ours onto exactly the model's tensors
    for prefix in ("", PREFIX):  # (diffusers' converter reads the model's keys alone)
        theirs = convert_z_image_transformer_checkpoint_to_diffusers(
            {prefix + k: v.clone() for k, v in comfy.items()}
        )
        want = ref.state_dict()
        assert set(theirs) == set(want) and all(torch.equal(theirs[k], want[k]) for k in want)


@pytest.mark.parametrize(
    "source", ["Z-Image", "Z-Image/transformer", "z_image_bf16.safetensors", "z_image_checkpoint.safetensors"]
)
def test_lumina_convert_round_trips_bit_for_bit(files, tmp_path, source):
    root, ref, comfy = files
    assert main(["convert", str(root / source), str(tmp_path / "ours"), "--from", "z_image"]) == 0
    image = load_converted(tmp_path / "ours")
    assert image.model.config.unified_variant == "z_image"
    # the converted model computes the reference's function
    x, t = torch.randn(2, 16, 6, 4), torch.tensor([0.3, 0.8])
    cap, mask = torch.randn(2, 35, 24), torch.ones(2, 35, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.no_grad():
        want = torch.stack(ref(list(x.unsqueeze(2)), t, [cap[0], cap[1, :5]], return_dict=False)[0]).squeeze(
            2
        )
        assert (image(x, t, cap, mask) - want).abs().max() <= 1e-4 * want.abs().max()
    # and back: ComfyUI's file (prefixed) and the diffusers folder, bit for bit
    assert (
        main(["convert", str(tmp_path / "ours"), str(tmp_path / "back.safetensors"), "--to", "z_image"]) == 0
    )
    back = load_file(tmp_path / "back.safetensors")
    assert set(back) == {PREFIX + k for k in comfy} and all(
        torch.equal(back[PREFIX + k], v) for k, v in comfy.items()
    )
    assert (
        main(
            [
                "convert",
                str(tmp_path / "ours"),
                str(tmp_path / "dif"),
                "--to",
                "z_image",
                "--layout",
                "diffusers",
            ]
        )
        == 0
    )
    again = ZImageTransformer2DModel.from_pretrained(tmp_path / "dif")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in ref.state_dict().items())
    assert tuple(again.config.axes_dims) == (8, 12, 12) and again.config.rope_theta == 256.0


def test_wrong_directions_are_refused_with_the_reason(files, tmp_path, capsys):
    root, _, _ = files
    assert (
        main(["convert", str(root / "z_image_bf16.safetensors"), str(tmp_path / "ours"), "--from", "z_image"])
        == 0
    )
    cases = [
        (
            ["--to", "z_image", "--layout", "released"],
            "has no layout 'released'; its layouts: comfyui, diffusers",
        ),
        (["--to", "lumina2"], "needs unified_variant 'lumina2'"),
        (["--to", "released"], "'released' is read-only"),
        (["--from", "z_image", "--layout", "comfyui"], "--layout, --dtype and --raw-weights go with --to"),
    ]
    for extra, message in cases:
        assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "out.safetensors"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "out.pth"), "--to", "z_image"]) == 2
    assert "ending in .safetensors" in capsys.readouterr().err
    (tmp_path / "taken.safetensors").write_bytes(b"")
    assert (
        main(["convert", str(tmp_path / "ours"), str(tmp_path / "taken.safetensors"), "--to", "z_image"]) == 2
    )
    assert "nothing is overwritten" in capsys.readouterr().err
    # Z-Image's file is not read as Lumina-Image 2.0, nor the reverse: each names the other's --from
    assert main(["convert", str(root / "z_image_bf16.safetensors"), str(tmp_path / "o1"), "--from", "lumina2"]) == 2
    assert "convert it with --from z_image" in capsys.readouterr().err
    from diffusers import Lumina2Transformer2DModel

    from lumina_modalities.image.interop import from_diffusers, to_lumina2_released

    lumina2 = Lumina2Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, hidden_size=48, num_layers=1,
                                        num_refiner_layers=1, num_attention_heads=2, num_kv_heads=1, multiple_of=16,
                                        axes_dim_rope=(8, 8, 8), cap_feat_dim=16)  # fmt: skip
    released = {k: v.contiguous() for k, v in to_lumina2_released(from_diffusers(lumina2)).items()}
    save_file(released, tmp_path / "lumina_2.safetensors")
    assert main(["convert", str(tmp_path / "lumina_2.safetensors"), str(tmp_path / "o3"), "--from", "z_image"]) == 2
    assert "convert it with --from lumina2" in capsys.readouterr().err
    # a file of our own format is not read as Z-Image
    assert (
        main(
            [
                "convert",
                str(tmp_path / "ours" / "model.safetensors"),
                str(tmp_path / "o2"),
                "--from",
                "z_image",
            ]
        )
        == 2
    )
    assert "not a Z-Image checkpoint" in capsys.readouterr().err


def test_a_bfloat16_release_file_comes_back_bit_for_bit_with_dtype_bfloat16(files, tmp_path):
    """The releases ship bfloat16; our format holds float32 (exactly), and ``--dtype bfloat16`` writes the same
    bfloat16 file back."""
    root, _, comfy = files
    bf16 = {PREFIX + k: v.to(torch.bfloat16).contiguous() for k, v in comfy.items()}
    save_file(bf16, tmp_path / "z_image_bf16.safetensors")
    assert (
        main(
            [
                "convert",
                str(tmp_path / "z_image_bf16.safetensors"),
                str(tmp_path / "ours"),
                "--from",
                "z_image",
            ]
        )
        == 0
    )
    out = tmp_path / "back.safetensors"
    assert main(["convert", str(tmp_path / "ours"), str(out), "--to", "z_image", "--dtype", "bfloat16"]) == 0
    back = load_file(out)
    assert set(back) == set(bf16) and all(
        back[k].dtype == torch.bfloat16 and torch.equal(back[k], v) for k, v in bf16.items()
    )


def test_the_z_image_preset_is_the_release_size():
    """6,154,908,736 parameters (diffusers' ZImageTransformer2DModel with the release's config, on the meta
    device) plus our image adapter's pad token (3840); the preset is the trunk a release conversion records."""
    from lumina_core.model import LuminaModel, NextDiTConfig
    from lumina_modalities.image.interop.z_image import Z_IMAGE_RELEASE, config_from_z_image

    with torch.device("meta"):
        release = ZImageTransformer2DModel(**Z_IMAGE_RELEASE)
    count = sum(p.numel() for p in release.parameters())
    assert count == 6_154_908_736
    cfg, spec, _ = config_from_z_image(Z_IMAGE_RELEASE)
    preset = NextDiTConfig.from_preset("z_image")
    assert preset.to_dict() == cfg.to_dict()
    assert LuminaModel.count_parameters(preset, {"image": spec}) == count + 3840


def test_a_state_dict_whose_shapes_do_not_say_the_config_is_refused(files):
    from lumina_modalities.image.interop import from_z_image

    _, ref, _ = files
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("layers.0.attention.norm")}
    with pytest.raises(ValueError, match="cannot read a Z-Image config.*missing: layers.0.attention.norm_q.weight"):
        from_z_image(state)
