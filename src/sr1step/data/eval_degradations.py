"""Seeded degradations for evaluating x4 models on one's own photos (the default-model report and
its tests): the same LR for the same image and seed, whatever ran before.

``EVAL_DEGRADATIONS[name](hr, seed)``: HR (B, 3, H, W) in [0, 1] -> LR (B, 3, H/4, W/4), 8-bit values.

- ``clean-bicubic``: antialiased bicubic (MATLAB imresize-like), as the papers' bicubic test sets.
- ``clean-area``: OpenCV ``INTER_AREA`` (a box average), what many photo tools downscale with.
- ``mild``: Gaussian blur sigma 0.8, bicubic, Gaussian noise 3/255, JPEG q 75.
- ``moderate``: blur sigma U(0.8, 1.6), bicubic, noise U(2, 8)/255, JPEG q U(60, 90), drawn per image.
- ``papers``: Real-ESRGAN's second-order pipeline at the papers' settings (``RealESRGANConfig()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch

from .degradations import (
    BicubicDegradation,
    RealESRGANConfig,
    RealESRGANDegradation,
    anisotropic_kernel,
    filter2d,
)
from .jpeg import jpeg


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def gaussian_blur(hr: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * math.ceil(3 * sigma) + 1  # the Gaussian to 3 sigma
    return filter2d(hr, anisotropic_kernel(size, sigma, sigma, 0.0).expand(len(hr), size, size))


def blur_noise_jpeg(hr: torch.Tensor, sigma: float, noise: float, quality: float, seed: int) -> torch.Tensor:
    """Blur on the HR, bicubic x4, Gaussian noise of ``noise``/255, JPEG at ``quality``."""
    lr = BicubicDegradation(4)(gaussian_blur(hr, sigma))
    g = torch.Generator().manual_seed(seed)
    lr = (lr + torch.randn(lr.shape, generator=g) * noise / 255).clamp(0, 1)
    return _quantise(jpeg(lr, torch.full((len(lr),), float(quality), dtype=torch.float64)))  # as a file holds


def area(hr: torch.Tensor, seed: int = 0) -> torch.Tensor:
    out = []
    for img in hr:
        a = img.permute(1, 2, 0).numpy().astype(np.float32)
        small = cv2.resize(a, (a.shape[1] // 4, a.shape[0] // 4), interpolation=cv2.INTER_AREA)
        out.append(torch.from_numpy(small).permute(2, 0, 1))
    return _quantise(torch.stack(out))


def moderate(hr: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sigma, noise, quality = (lo + (hi - lo) * torch.rand(1, generator=g).item() for lo, hi in MODERATE)
    return blur_noise_jpeg(hr, sigma, noise, round(quality), seed + 1)


def papers(hr: torch.Tensor, seed: int) -> torch.Tensor:
    return RealESRGANDegradation(RealESRGANConfig())(hr, torch.Generator().manual_seed(seed))


MODERATE = ((0.8, 1.6), (2.0, 8.0), (60.0, 90.0))  # blur sigma, noise sigma (/255), JPEG quality

EVAL_DEGRADATIONS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "clean-bicubic": lambda hr, seed: BicubicDegradation(4)(hr),
    "clean-area": area,
    "mild": lambda hr, seed: blur_noise_jpeg(hr, 0.8, 3.0, 75, seed),
    "moderate": moderate,
    "papers": papers,
}
