"""The inference contract every generator follows (spandrel-style, written once here).

``generator(lr, noise)`` takes ``lr``: (B, 3, h, w) float in [0, 1], with h and w multiples of
``pad_multiple``, and returns (B, 3, scale*h, scale*w), nominally in [0, 1] (the engine clamps).
``noise``, when the generator asks for it (``noise_channels > 0``), is a standard-normal tensor of
shape (B, noise_channels, noise_ratio*h, noise_ratio*w); the engine draws it once per image from
the seed, so tiled and untiled runs see the same noise field.

A latent generator also splits its work as ``decode(denoise(encode(lr), noise))`` with
``latent_ratio`` latent pixels per input pixel, so the engine can tile the denoiser in latent
space while the autoencoder tiles itself.

Padding, tiling, device/dtype, clamping and colour correction are the engine's job, not the
generator's.
"""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    scale: int = 4
    pad_multiple: int = 1
    supports_half: bool = True
    noise_channels: int = 0
    noise_ratio: int = 1
    latent_ratio: float | None = None  # latent pixels per input pixel; set by generators that tile in latent space
    steps: int = 1  # network evaluations per image (NFE)

    def forward(self, lr: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.denoise(self.encode(lr), noise))

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not support latent tiling")

    def denoise(self, cond: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not support latent tiling")

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not support latent tiling")

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
