"""Images of every common mode decode by their real range (a 16-bit PNG at half scale is mid grey, not
white); palette, CMYK and transparent images become plain RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from lumina_modalities.image.folder import decode_image


def _png(arr_or_img) -> bytes:
    buf = io.BytesIO()
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("value, expected", [(0, -1.0), (32768, 0.0), (65535, 1.0), (16384, -0.5)])
def test_16bit_grey_png_keeps_its_range(value, expected):
    data = _png(np.full((6, 6), value, dtype=np.uint16))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    for channels in (1, 3):
        x = decode_image(data, (6, 6), channels=channels)
        assert x.shape == (channels, 6, 6)
        torch.testing.assert_close(x, torch.full_like(x, expected), atol=2e-4, rtol=0)


def _png16_rgb(rgb: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, written by hand (PIL cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[r].astype(">u2").tobytes() for r in range(h))  # filter 0 per row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_16bit_rgb_png_keeps_its_colours():
    rgb = np.zeros((4, 4, 3), dtype=np.uint16)
    rgb[..., 0] = 65535  # red
    rgb[..., 2] = 32768  # half blue
    x = decode_image(_png16_rgb(rgb), (4, 4), channels=3)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, -1.0, 0.0]), atol=1e-2, rtol=0)


def test_palette_cmyk_and_alpha_images():
    pal = Image.new("P", (4, 4))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(1, (0, 0, 4, 4))  # every pixel is palette entry 1: red
    x = decode_image(_png(pal), (4, 4))
    torch.testing.assert_close(x[:, 1, 1], torch.tensor([1.0, -1.0, -1.0]), atol=1e-3, rtol=0)

    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    buf = io.BytesIO()
    cmyk.save(buf, format="TIFF")
    x = decode_image(buf.getvalue(), (4, 4))
    torch.testing.assert_close(x[:, 1, 1], torch.tensor([1.0, -1.0, -1.0]), atol=1e-2, rtol=0)

    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 2] = 255  # blue ...
    rgba[:2, :, 3] = 255  # ... opaque in the top half, transparent (over white) in the bottom half
    x = decode_image(_png(rgba), (4, 4))
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([-1.0, -1.0, 1.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(x[:, 3, 0], torch.tensor([1.0, 1.0, 1.0]), atol=1e-3, rtol=0)

    la = Image.fromarray(np.stack([np.full((4, 4), 0, np.uint8), np.full((4, 4), 255, np.uint8)], -1), "LA")
    x = decode_image(_png(la), (4, 4), channels=1)
    torch.testing.assert_close(x, torch.full_like(x, -1.0), atol=1e-3, rtol=0)  # opaque black stays black
