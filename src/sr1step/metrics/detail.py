"""Detail ratio: how much high-frequency content an output has against its HR.

``detail_ratio(sr, hr)`` = var(Laplacian(Y_sr)) / var(Laplacian(Y_hr)) per image, on Y of BT.601
YCbCr (as PSNR-Y) with ``crop_border`` pixels left out. Bicubic on degraded input is near 0.1, a
sharp output near 1; above 1 means more high frequencies than the HR (noise, halos, artefacts).
No pyiqa: a plain 3x3 Laplacian (OpenCV's ``ksize=1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_Y = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64) / 255
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images: torch.Tensor, crop_border: int = 4) -> torch.Tensor:
    """(B,) variance of the Laplacian of Y of (B, 3, H, W) images in [0, 1], on the 0..255 scale."""
    x = images.double()
    y = (x * _Y.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True) * 255 + 16
    lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="reflect"), _LAPLACIAN.to(x).view(1, 1, 3, 3))
    if crop_border:
        lap = lap[..., crop_border:-crop_border, crop_border:-crop_border]
    return lap.flatten(1).var(dim=1)


def detail_ratio(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 4) -> torch.Tensor:
    """(B,) ratio of the Laplacian variance of ``sr`` to that of ``hr``."""
    if sr.shape != hr.shape:
        raise ValueError(f"detail_ratio: shapes differ, {tuple(sr.shape)} and {tuple(hr.shape)}")
    return laplacian_variance(sr, crop_border) / laplacian_variance(hr, crop_border).clamp_min(1e-12)
