"""The inference contract every SR generator follows (spandrel-style, written once here).

``generator(lr, noise)`` takes ``lr``: (B, 3, h, w) float in [0, 1], with h and w multiples of
``pad_multiple``, and returns (B, 3, scale*h, scale*w), nominally in [0, 1] (the engine clamps).
``noise``, when the generator asks for it (``noise_channels > 0``), is a standard-normal tensor of
shape (B, noise_channels, noise_ratio*h, noise_ratio*w); the engine draws it from the seed per
position (``tiling.NoiseField``), so tiled and untiled runs see the same noise field.

A latent generator also splits its work as ``decode(denoise(encode(lr), noise))`` with
``latent_ratio`` latent pixels per input pixel, so the engine can tile the denoiser in latent
space while the autoencoder tiles itself.

Padding, tiling, device/dtype, clamping and colour correction are the engine's job, not the
generator's.

A generator with trainable weights also saves itself as a weight folder (``save_folder``:
``config.json`` naming its ``format`` and method, plus safetensors) and loads back from one
(``from_folder``); training exports and ``--weights FOLDER`` rely on that pair.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


class WeightFolderError(ValueError):
    """A folder is not an sr1step weight folder of the expected kind."""


def read_folder_config(folder: Path, format: str | None = None) -> dict[str, Any]:
    """``config.json`` of one of our weight folders, checked against the expected ``format``."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise WeightFolderError(f"{folder} holds no config.json; it is not an sr1step weight folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightFolderError(f"{path} is not valid JSON ({err})") from None
    if format is not None and config.get("format") != format:
        raise WeightFolderError(f"{folder} is not a {format} weight folder (format {config.get('format')!r})")
    return config


class SRGenerator(nn.Module):
    scale: int = 4
    pad_multiple: int = 1
    supports_half: bool = True
    noise_channels: int = 0
    noise_ratio: int = 1
    latent_ratio: float | None = (
        None  # latent pixels per input pixel; set by generators that tile in latent space
    )
    steps: int = 1  # network evaluations per image (NFE)
    # Pixel tiles even where latent tiles are possible: the autoencoder is a pixel rearrangement,
    # so nothing is saved in latent space, and pixel tiles let the output stream in bands.
    prefer_pixel_tiles: bool = False
    # Set by the engine while it runs a whole image at once: called (done, total) after each
    # network evaluation, so a long multi-step image shows progress.
    on_step: Callable[[int, int], None] | None = None
    compiled_modules: tuple[str, ...] = ()  # submodules `--compile` wraps in torch.compile

    def compile_networks(self) -> None:
        for name in self.compiled_modules:
            setattr(self, name, torch.compile(getattr(self, name)))

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

    # --- weight folders (generators with trainable weights) ------------------------------------

    def save_folder(self, folder: str | Path, method: str, info: dict | None = None) -> Path:
        """Write ``config.json`` (format, method, generator config, ``info``) + safetensors."""
        raise NotImplementedError(f"{type(self).__name__} has no weight folder format")

    @classmethod
    def from_folder(cls, folder: str | Path) -> SRGenerator:
        """The generator saved by ``save_folder`` (config read from the folder)."""
        raise NotImplementedError(f"{cls.__name__} has no weight folder format")
