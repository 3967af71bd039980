"""Losses shared by the training recipes: DISTS / edge-aware DISTS, adversarial losses.

EA-DISTS (D3SR): DISTS on the images plus DISTS on their edge maps,

    EA-DISTS(x_hat, x) = w_img * DISTS(x_hat, x) + w_edge * DISTS(S(x_hat), S(x)),

with S the Sobel gradient magnitude of the BT.601 luminance, divided by its maximum 4*sqrt(2)
so it stays in [0, 1], and repeated over three channels for DISTS' VGG. DISTS is pyiqa's
implementation (differentiable; PolyForm-NC, imported lazily). Its weights come from pyiqa's
cache/download or a file; ``random`` builds it with a random VGG and random alpha/beta, for
offline tests and smoke runs only.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) BT.601 luma."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance, scaled to [0, 1], as 3 channels."""
    y = F.pad(luminance(x), (1, 1, 1, 1), mode="replicate")
    kx = SOBEL_X.to(x.device, x.dtype).view(1, 1, 3, 3)
    gx, gy = F.conv2d(y, kx), F.conv2d(y, kx.transpose(2, 3))
    mag = torch.sqrt(gx**2 + gy**2 + eps) / (4 * math.sqrt(2))
    return mag.clamp(0, 1).expand(-1, 3, -1, -1)


def build_dists(weights: str = "pyiqa") -> nn.Module:
    """pyiqa's DISTS network (frozen). ``weights``: ``pyiqa`` (its cache/download), a file path,
    or ``random`` (random VGG and alpha/beta: tests and smoke runs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        from pyiqa.archs import dists_arch

        if weights == "random":
            with _random_vgg(dists_arch):
                net = dists_arch.DISTS(pretrained=False)
        elif weights == "pyiqa":
            net = dists_arch.DISTS(pretrained=True)
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"DISTS weights {path} not found")
            net = dists_arch.DISTS(pretrained_model_path=str(path))
    return net.requires_grad_(False).eval()


@contextlib.contextmanager
def _random_vgg(dists_arch):
    original = dists_arch.models.vgg16
    dists_arch.models.vgg16 = lambda *args, **kwargs: original(weights=None)
    try:
        yield
    finally:
        dists_arch.models.vgg16 = original


class EADISTS(nn.Module):
    """Edge-aware DISTS loss on images in [0, 1]; returns the batch mean."""

    def __init__(self, dists_weights: str = "pyiqa", image_weight: float = 1.0, edge_weight: float = 1.0):
        super().__init__()
        self.dists = build_dists(dists_weights)
        self.image_weight, self.edge_weight = image_weight, edge_weight

    def train(self, mode: bool = True):
        super().train(mode)
        self.dists.eval()  # frozen feature extractor
        return self

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = self.image_weight * self.dists(x_hat, x).mean()
        if self.edge_weight:
            loss = loss + self.edge_weight * self.dists(sobel_magnitude(x_hat), sobel_magnitude(x)).mean()
        return loss


# --- adversarial -------------------------------------------------------------------------------------


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Discriminator loss on logits (any shape; averaged)."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "non-saturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use hinge or non-saturating")


def g_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Generator loss on the discriminator's logits for generated samples."""
    if kind == "hinge":
        return -fake.mean()
    if kind == "non-saturating":
        return F.softplus(-fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use hinge or non-saturating")
