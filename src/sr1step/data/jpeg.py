"""Batched JPEG compression in torch (baseline JPEG, 4:2:0), with a quality per image.

Written from the JPEG standard (ITU-T T.81): RGB -> YCbCr (JFIF), 2x2 chroma subsampling,
8x8 orthonormal DCT, quantisation by the Annex K tables scaled as libjpeg scales them for a
quality, rounding, and the inverse path with bilinear ("fancy") chroma upsampling. Runs on any
device, so the degradation pipeline needs no CPU round trip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
]  # fmt: skip


def _dct_matrix(device, dtype) -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.to(device, dtype)


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) qualities in [1, 100] -> (B, 8, 8) luma and chroma tables (libjpeg scaling)."""
    q = quality.clamp(1, 100).double()
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]
    tabs = []
    for base in (_LUMA, _CHROMA):
        t = torch.tensor(base, dtype=torch.float64, device=q.device).view(1, 8, 8)
        tabs.append(torch.floor((t * scale + 50) / 100).clamp(1, 255))
    return tabs[0], tabs[1]


def _blocks(x: torch.Tensor) -> torch.Tensor:
    b, h, w = x.shape
    return x.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)


def _unblocks(x: torch.Tensor) -> torch.Tensor:
    b, nh, nw, _, _ = x.shape
    return x.permute(0, 1, 3, 2, 4).reshape(b, nh * 8, nw * 8)


def _quantise(plane: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    blocks = _blocks(plane - 128)
    coef = dct @ blocks @ dct.T
    t = table[:, None, None].to(coef.dtype)
    coef = torch.round(coef / t) * t
    return _unblocks(dct.T @ coef @ dct) + 128


def jpeg(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG round trip of (B, 3, H, W) images in [0, 1] at per-image ``quality`` (B,)."""
    b, _, h, w = images.shape
    pad_h, pad_w = (-h) % 16, (-w) % 16
    x = F.pad(images.float() * 255, (0, pad_w, 0, pad_h), mode="replicate")
    r, g, bl = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
    dct = _dct_matrix(images.device, torch.float32)
    luma_t, chroma_t = quant_tables(quality.to(images.device))
    y = _quantise(y, luma_t, dct)
    cb = _quantise(chroma[:, 0], chroma_t, dct)
    cr = _quantise(chroma[:, 1], chroma_t, dct)
    chroma = F.interpolate(torch.stack([cb, cr], 1), scale_factor=2, mode="bilinear", align_corners=False)
    cb, cr = chroma[:, 0] - 128, chroma[:, 1] - 128
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return (out[:, :, :h, :w] / 255).clamp(0, 1).to(images.dtype)
