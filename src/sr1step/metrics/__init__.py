"""Image-quality metrics with the papers' settings, on pyiqa (imported lazily: PolyForm-NC).

``METRICS`` is the typed table (full-reference / no-reference / set-level, better direction,
pyiqa name and options); ``create_metric(name)`` builds one. PSNR and SSIM are computed on the Y
channel of BT.601 YCbCr (pyiqa's default Y is YIQ, which the papers do not use).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..config import unknown_name_error


@dataclass(frozen=True)
class MetricSpec:
    name: str
    pyiqa_name: str
    kind: Literal["FR", "NR", "set"]  # set = compares folders (FID)
    lower_better: bool
    options: dict = field(default_factory=dict)
    weight_files: tuple[str, ...] = ()  # what pyiqa needs in $TORCH_HOME/hub (pyiqa/ or checkpoints/)

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_better else "↑"


YCBCR = {"test_y_channel": True, "color_space": "ycbcr"}

METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "psnr", "FR", False, YCBCR),
        MetricSpec("ssim", "ssim", "FR", False, YCBCR),
        MetricSpec("lpips", "lpips", "FR", True, {}, ("LPIPS_v0.1_alex-df73285e.pth", "alexnet-owt-7be5be79.pth")),
        MetricSpec("lpips-vgg", "lpips-vgg", "FR", True, {}, ("LPIPS_v0.1_vgg-a78928a0.pth", "vgg16-397923af.pth")),
        MetricSpec("dists", "dists", "FR", True, {}, ("DISTS_weights-f5e65c96.pth", "vgg16-397923af.pth")),
    )
}


def get_spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise unknown_name_error("metric", name, list(METRICS))
    return METRICS[name]


def create_metric(name: str, device: torch.device | str = "cpu", crop_border: int = 0, **options):
    """A pyiqa metric module with the papers' settings: ``metric(sr, hr)`` on (B, 3, H, W) in [0, 1]."""
    spec = get_spec(name)
    with contextlib.redirect_stdout(io.StringIO()):  # pyiqa prints while loading weights
        import pyiqa

        kwargs = {**spec.options, **options}
        if spec.name in ("psnr", "ssim"):
            kwargs["crop_border"] = crop_border
        return pyiqa.create_metric(spec.pyiqa_name, device=torch.device(device), **kwargs)
