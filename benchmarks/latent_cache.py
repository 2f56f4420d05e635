"""The image plugin's latent cache against encoding every step, side by side in one run.

    .venv/bin/python benchmarks/latent_cache.py [--size 256] [--images 4] [--rounds 3] [--threads 1]

An autoencoder with the SDXL VAE's architecture (diffusers ``AutoencoderKL``: 128-256-512-512 channels, two
layers per block, 4 latent channels; random weights - the cost does not depend on the values) is saved to a
temporary folder and loaded through the ``autoencoder_kl`` codec. Each round tokenizes the same images with
``latent_cache`` off (the peer: the encoder runs every time) and on (warm: every latent read back from disk,
including the pixel hashing), alternating, and reports the median time per image of each and their ratio.
Both give the same tokens (checked). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sdxl_like_vae(path: Path) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
        layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=1024, scaling_factor=0.13025,
    ).save_pretrained(path)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (a multiple of 16)")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.size % 16 or args.images < 1 or args.rounds < 1:
        raise SystemExit("--size must be a multiple of 16; --images and --rounds at least 1")
    torch.set_num_threads(args.threads)
    from lumina_modalities.image import ImagePlugin

    with tempfile.TemporaryDirectory() as tmp:
        sdxl_like_vae(Path(tmp) / "vae")
        auto = {"name": "autoencoder_kl", "params": {"path": str(Path(tmp) / "vae")}}
        peer = ImagePlugin(patch_size=2, image_size=args.size, autoencoder=auto, fid=False)
        ours = ImagePlugin(patch_size=2, image_size=args.size, autoencoder=auto, fid=False,
                           latent_cache=str(Path(tmp) / "latents"))  # fmt: skip
        g = torch.Generator().manual_seed(0)
        images = [torch.rand(3, args.size, args.size, generator=g) * 2 - 1 for _ in range(args.images)]
        t0 = time.perf_counter()
        first = ours.tokenize(images)  # fills the cache (a miss per image)
        fill = (time.perf_counter() - t0) / args.images
        times: dict[str, list[float]] = {"encode every step": [], "latent cache (warm)": []}
        for _ in range(args.rounds):
            for name, plugin in (("encode every step", peer), ("latent cache (warm)", ours)):
                t0 = time.perf_counter()
                tokens = plugin.tokenize(images).tokens
                times[name].append((time.perf_counter() - t0) / args.images)
                assert torch.equal(tokens, first.tokens), "cached and encoded tokens differ"
        med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.images} images at {args.size} px, SDXL-VAE architecture, {args.threads} thread(s), "
          f"{args.rounds} alternating rounds (medians, seconds per image)")  # fmt: skip
    print("| path | s / image |")
    print("|---|---|")
    print(f"| first pass with the cache (encode + write) | {fill:.4f} |")
    for k, v in med.items():
        print(f"| {k} | {v:.4f} |")
    print(f"ratio (encode every step / cache): {med['encode every step'] / med['latent cache (warm)']:.0f}x")
    print(f"hits {ours.latent_cache.hits}, encodes {ours.latent_cache.encoded}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
