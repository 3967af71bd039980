"""Bicubic interpolation: the baseline every table starts from, and the default method."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..contract import SRGenerator
from .base import Method


class BicubicGenerator(SRGenerator):
    """``F.interpolate(mode="bicubic")`` (a = -0.75, the kernel ResShift upsamples with)."""

    supports_half = True

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = scale

    def forward(self, lr: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        dtype = lr.dtype
        if lr.device.type == "cpu" and dtype != torch.float32:
            lr = lr.float()  # no half-precision bicubic kernel on CPU
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False).to(dtype)


class Bicubic(Method):
    def random_generator(self) -> SRGenerator:
        return self.build_default()

    def build_default(self, scale: float | None = None) -> SRGenerator:
        native = int(scale) if scale is not None and float(scale).is_integer() and scale >= 1 else 4
        return BicubicGenerator(native)


BICUBIC = Bicubic("bicubic", "Bicubic interpolation (no network)")
