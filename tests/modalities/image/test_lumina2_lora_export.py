"""LoRA export of the unified family (Lumina-Image 2.0, Z-Image), loaded by the programs users load it with.

A tiny random ``Lumina2Transformer2DModel`` / ``ZImageTransformer2DModel`` is converted to ours, LoRA factors
(random, rank 3, alpha 6) go on every block's attention and feed-forward projections, the blocks' modulation, the
time and caption embedders; ``lumina lora export`` writes each format, and in fp32:

* diffusers: the pipeline's own ``load_lora_weights`` (``Lumina2Pipeline`` / ``ZImagePipeline``) loads the file
  into diffusers' model, which then computes what our adapted model computes;
* kohya, Z-Image (musubi-tuner's names): diffusers' Z-Image loader converts and loads it likewise;
* ComfyUI and kohya, Lumina-Image 2.0, and ComfyUI, Z-Image (not installed): every key maps onto a weight of
  ComfyUI's model by its public rules (``fixtures/lora_consumers.py``), and its patch rule ``W += alpha / r U D``
  on those weights, loaded back into diffusers' model, gives our adapted model's output.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("diffusers")
from diffusers import (  # noqa: E402
    Lumina2Pipeline,
    Lumina2Transformer2DModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from fixtures import lora_consumers as comfy  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from lumina_core.cli.main import main  # noqa: E402
from lumina_core.finetune import LoraSettings, adapter_parameters, apply_lora, save_adapter  # noqa: E402
from lumina_modalities.image.interop import (  # noqa: E402
    export_comfyui,
    export_diffusers,
    export_kohya,
    from_diffusers,
    to_lumina2_released,
)
from lumina_modalities.image.interop import unified_keys as ukeys  # noqa: E402

TOL = 1e-4
SETTINGS = LoraSettings(
    rank=3, alpha=6, train_also=[],
    targets=[*LoraSettings().targets, r"(?:layers|noise_refiner)\.\d+\.adaLN_modulation\.1", r"t_embedder\.mlp\.0",
             r"t_embedder\.mlp\.2", r"cap_embedder\.1"],
)  # fmt: skip
LUMINA2 = dict(
    sample_size=16,
    patch_size=2,
    in_channels=4,
    hidden_size=64,
    num_layers=2,
    num_refiner_layers=1,
    num_attention_heads=4,
    num_kv_heads=2,
    multiple_of=16,
    axes_dim_rope=(4, 6, 6),
    cap_feat_dim=24,
)
Z_IMAGE = dict(all_patch_size=(2,), all_f_patch_size=(1,), rope_theta=256.0, in_channels=4, dim=64, n_layers=2,
               n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=24, axes_dims=[8, 12, 12],
               axes_lens=[256, 64, 64])  # fmt: skip
LENGTHS = (7, 3)  # valid caption tokens per sample (of 7)


def perturbed(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # away from the zero-initialised gates and final layer
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 10, generator=g)  # a 3 x 5 patch grid
    t = torch.rand(2, generator=g)
    cap = torch.randn(2, 7, 24, generator=g)
    mask = torch.arange(7)[None] < torch.tensor(LENGTHS)[:, None]
    return x, t, cap, mask


@torch.no_grad()
def lumina2_forward(ref):
    x, t, cap, mask = inputs()
    return ref(x, t, cap, mask).sample


@torch.no_grad()
def z_image_forward(ref):
    x, t, cap, _ = inputs()
    out = ref([x[i][:, None] for i in range(2)], t, [cap[i, :n] for i, n in enumerate(LENGTHS)]).sample
    return torch.stack(out)[:, :, 0]


def adapted(ref, tmp_path):
    """Our model of ``ref`` with random LoRA factors, its output, and its adapter file."""
    ours = from_diffusers(ref)
    apply_lora(ours.model, SETTINGS)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in adapter_parameters(ours.model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    ours.model.eval()
    x, t, cap, mask = inputs()
    with torch.no_grad():
        want = ours(x, t, cap, mask)
    return want, save_adapter(tmp_path / "adapter.safetensors", ours.model, SETTINGS)


def close(got, want):
    scale = want.abs().max().item()
    rel = (got - want).abs().max().item() / scale
    print(f"max |theirs - ours| = {rel:.1e} of the output scale")
    assert rel <= TOL


@pytest.fixture(scope="module")
def lumina2(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lumina2_lora")
    ref = perturbed(Lumina2Transformer2DModel(**LUMINA2))
    want, adapter = adapted(ref, tmp)
    assert (lumina2_forward(ref) - want).abs().max() > 1e-2 * want.abs().max()  # the adapter matters
    return ref, want, adapter


@pytest.fixture(scope="module")
def z_image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("z_image_lora")
    ref = perturbed(ZImageTransformer2DModel(**Z_IMAGE))
    want, adapter = adapted(ref, tmp)
    assert (z_image_forward(ref) - want).abs().max() > 1e-2 * want.abs().max()
    return ref, want, adapter


def test_lumina2_diffusers_export_loads_with_lumina2_pipeline_and_matches(lumina2, tmp_path):
    ref, want, adapter = lumina2
    out = tmp_path / "diffusers"
    assert main(["lora", "export", str(adapter), "--format", "diffusers", "--out", str(out)]) == 0
    state = load_file(str(out / "pytorch_lora_weights.safetensors"))
    for key in ("layers.1.attn.to_k", "context_refiner.0.feed_forward.linear_3", "noise_refiner.0.norm1.linear",
                "time_caption_embed.caption_embedder.1", "time_caption_embed.timestep_embedder.linear_2"):  # fmt: skip
        assert f"transformer.{key}.lora_A.weight" in state, key
    model = copy.deepcopy(ref)
    pipe = Lumina2Pipeline(transformer=model, scheduler=None, vae=None, text_encoder=None, tokenizer=None)
    pipe.load_lora_weights(str(out), weight_name="pytorch_lora_weights.safetensors", adapter_name="ours")
    from peft.tuners.lora import LoraLayer

    assert sum(isinstance(m, LoraLayer) for m in model.modules()) == len({k.rsplit(".", 2)[0] for k in state})
    close(lumina2_forward(model), want)


def test_lumina2_comfyui_and_kohya_exports_patch_comfyuis_model_into_ours(lumina2, tmp_path):
    ref, want, adapter = lumina2
    released = to_lumina2_released(
        from_diffusers(ref)
    )  # ComfyUI's NextDiT holds these under diffusion_model.
    comfy_model = comfy.with_prefix(released)
    for fmt, export in (("comfyui", export_comfyui), ("kohya", export_kohya)):
        lora = load_file(str(export(adapter, tmp_path / f"{fmt}.safetensors")))
        modules = comfy.lora_modules(lora)
        if fmt == "comfyui":
            assert all(m.startswith("diffusion_model.") for m in modules)
            assert "diffusion_model.layers.0.attention.qkv" in modules  # fused, as ComfyUI's model holds it
            assert "diffusion_model.noise_refiner.0.adaLN_modulation.1" in modules
        else:  # sd-scripts' lora_lumina names: "lora_unet_" + the module path, dots as underscores
            assert all(re.fullmatch(r"lora_unet_[A-Za-z0-9_]+", m) for m in modules)
            assert {"lora_unet_layers_1_attention_qkv", "lora_unet_context_refiner_0_feed_forward_w3",
                    "lora_unet_t_embedder_mlp_0", "lora_unet_cap_embedder_1"} <= modules  # fmt: skip
        assert all(
            lora[f"{m}.alpha"].item() == 6.0 and lora[f"{m}.lora_down.weight"].shape[0] == 3 for m in modules
        )
        patched = comfy.without_prefix(comfy.patch(comfy_model, lora))
        model = copy.deepcopy(ref)
        model.load_state_dict(ukeys.released_to_diffusers(patched))
        close(lumina2_forward(model), want)


def test_z_image_diffusers_and_kohya_exports_load_with_z_image_pipeline_and_match(z_image, tmp_path):
    ref, want, adapter = z_image
    for fmt, export in (("diffusers", export_diffusers), ("kohya", export_kohya)):
        path = export(adapter, tmp_path / f"{fmt}.safetensors")
        state = load_file(str(path))
        if fmt == "diffusers":
            assert "transformer.layers.0.attention.to_q.lora_A.weight" in state
            assert "transformer.noise_refiner.0.adaLN_modulation.0.lora_B.weight" in state
        else:  # musubi-tuner's Z-Image names
            assert "lora_unet_layers_0_attention_to_out_0.lora_down.weight" in state
            assert "lora_unet_context_refiner_0_feed_forward_w1.alpha" in state
        model = copy.deepcopy(ref)
        pipe = ZImagePipeline(transformer=model, scheduler=None, vae=None, text_encoder=None, tokenizer=None)
        pipe.load_lora_weights(str(tmp_path), weight_name=path.name, adapter_name=fmt)
        close(z_image_forward(model), want)


BLOCK = re.compile(r"^(context_refiner|noise_refiner|layers)\.(\d+)\.(.+)$")
_RENAMES = {"attention.to_out.0.weight": "attention.out.weight", "attention.norm_q.weight": "attention.q_norm.weight",
            "attention.norm_k.weight": "attention.k_norm.weight"}  # fmt: skip
_HEADS = {"all_x_embedder.2-1.": "x_embedder.", "all_final_layer.2-1.": "final_layer."}


def z_comfy_from_diffusers(state):
    """ComfyUI's Z-Image weights (its ``z_image_to_diffusers`` table read backwards): q | k | v rows fused into
    ``attention.qkv``, ``to_out.0`` -> ``out``, ``norm_q/k`` -> ``q/k_norm``, the patch-size-2 embedder and final
    layer without their ``all_..2-1`` names."""
    out = {}
    for k, v in state.items():
        m = BLOCK.match(k)
        if m is None:
            head = next((h for h in _HEADS if k.startswith(h)), None)
            out[_HEADS[head] + k[len(head) :] if head else k] = v
            continue
        group, i, name = m.groups()
        prefix = f"{group}.{i}."
        if name == "attention.to_q.weight":
            out[prefix + "attention.qkv.weight"] = torch.cat(
                [state[prefix + f"attention.to_{p}.weight"] for p in "qkv"]
            )
        elif name not in ("attention.to_k.weight", "attention.to_v.weight"):
            out[prefix + _RENAMES.get(name, name)] = v
    return out


def z_diffusers_from_comfy(state, dim):
    back = {v: k for k, v in _RENAMES.items()}
    heads = {v: k for k, v in _HEADS.items()}
    out = {}
    for k, v in state.items():
        m = BLOCK.match(k)
        if m is None:
            head = next((h for h in heads if k.startswith(h)), None)
            out[heads[head] + k[len(head) :] if head else k] = v
            continue
        group, i, name = m.groups()
        prefix = f"{group}.{i}."
        if name == "attention.qkv.weight":
            for p, rows in zip("qkv", v.split(dim), strict=True):
                out[prefix + f"attention.to_{p}.weight"] = rows
        else:
            out[prefix + back.get(name, name)] = v
    return out


def test_z_image_comfyui_export_patches_comfyuis_model_into_ours(z_image, tmp_path):
    ref, want, adapter = z_image
    base = {k: v.detach() for k, v in ref.state_dict().items()}
    assert z_diffusers_from_comfy(z_comfy_from_diffusers(base), 64).keys() == base.keys()
    lora = load_file(str(export_comfyui(adapter, tmp_path / "z.safetensors")))
    modules = comfy.lora_modules(lora)
    assert {"diffusion_model.layers.1.attention.qkv", "diffusion_model.layers.0.adaLN_modulation.0",
            "diffusion_model.context_refiner.0.feed_forward.w2"} <= modules  # fmt: skip
    patched = comfy.patch(comfy.with_prefix(z_comfy_from_diffusers(base)), lora)
    model = copy.deepcopy(ref)
    model.load_state_dict(z_diffusers_from_comfy(comfy.without_prefix(patched), 64))
    close(z_image_forward(model), want)


def test_exports_refuse_what_the_public_models_cannot_hold(lumina2, tmp_path, capsys):
    ref = lumina2[0]
    ours = from_diffusers(ref)
    settings = LoraSettings(rank=2, train_also=[], targets=[r"final_layer\.linear"])  # the task adapter's
    apply_lora(ours.model, settings)
    path = save_adapter(tmp_path / "head.safetensors", ours.model, settings)
    for export in (export_diffusers, export_comfyui, export_kohya):
        with pytest.raises(ValueError, match="only the trunk's modules are exported"):
            export(path, tmp_path / "out.safetensors")
    # a Lumina-Next adapter has no kohya names: one paragraph, exit status 2
    from fixtures.diffusers_models import random_diffusers

    nd = from_diffusers(random_diffusers())
    apply_lora(nd.model, LoraSettings(rank=2, train_also=[]))
    path = save_adapter(tmp_path / "next.safetensors", nd.model, LoraSettings(rank=2, train_also=[]))
    assert (
        main(["lora", "export", str(path), "--format", "kohya", "--out", str(tmp_path / "k.safetensors")])
        == 2
    )
    assert "kohya's trainers have no Lumina-Next network" in capsys.readouterr().err
