"""Colour correction of SR outputs against the (bicubic-upsampled) input, as StableSR/OSEDiff do.

- AdaIN: match each channel's mean and standard deviation to the reference.
- Wavelet: keep the output's high frequencies and take the reference's low frequencies, from a
  5-level a-trous decomposition with the [1, 2, 1] kernel (dilation 2^i, replicate padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COLOR_FIXES = ("none", "adain", "wavelet")


def adain(content: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(B, C, H, W) tensors; per-channel statistics of ``content`` set to those of ``reference``."""
    c_mean = content.mean(dim=(2, 3), keepdim=True)
    c_std = (content.var(dim=(2, 3), keepdim=True) + eps).sqrt()
    r_mean = reference.mean(dim=(2, 3), keepdim=True)
    r_std = (reference.var(dim=(2, 3), keepdim=True) + eps).sqrt()
    return (content - c_mean) / c_std * r_std + r_mean


def wavelet_lowpass(image: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Low-frequency residual after ``levels`` a-trous blurs."""
    kernel = torch.tensor([1.0, 2.0, 1.0], dtype=image.dtype, device=image.device)
    kernel = (kernel[:, None] * kernel[None, :]) / 16
    channels = image.shape[1]
    weight = kernel.expand(channels, 1, 3, 3)
    low = image
    for i in range(levels):
        dilation = 2**i
        padded = F.pad(low, (dilation, dilation, dilation, dilation), mode="replicate")
        low = F.conv2d(padded, weight, groups=channels, dilation=dilation)
    return low


def wavelet(content: torch.Tensor, reference: torch.Tensor, levels: int = 5) -> torch.Tensor:
    return content - wavelet_lowpass(content, levels) + wavelet_lowpass(reference, levels)


def apply_color_fix(sr: torch.Tensor, reference: torch.Tensor, method: str) -> torch.Tensor:
    if method == "none":
        return sr
    if method == "adain":
        return adain(sr, reference)
    if method == "wavelet":
        return wavelet(sr, reference)
    raise ValueError(f"unknown colour fix {method!r}; use one of {COLOR_FIXES}")
