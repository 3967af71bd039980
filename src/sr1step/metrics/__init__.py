"""Image-quality metrics with the papers' settings, on pyiqa (imported lazily: PolyForm-NC).

``METRICS`` is the typed table (full-reference / no-reference / set-level, better direction,
pyiqa name and options, the weight files pyiqa needs); ``create_metric(name)`` builds one.
PSNR and SSIM are computed on the Y channel of BT.601 YCbCr with crop border 0 by default
(pyiqa's default Y is YIQ, which the papers do not use). A metric whose weights are neither in
the torch hub folder nor downloadable raises ``MetricUnavailable`` naming the files to place.
"""

from __future__ import annotations

import contextlib
import io
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..config import unknown_name_error


class MetricUnavailable(RuntimeError):
    """The metric cannot run here; the message says why and which files would fix it."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    pyiqa_name: str
    kind: Literal["FR", "NR", "set"]  # set = compares folders (FID)
    lower_better: bool
    options: dict = field(default_factory=dict)
    # files pyiqa reads from the torch hub folder: "pyiqa/<file>" or "checkpoints/<file>" (torchvision)
    weight_files: tuple[str, ...] = ()
    note: str = ""

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_better else "↑"


YCBCR = {"test_y_channel": True, "color_space": "ycbcr"}
HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"

METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "psnr", "FR", False, YCBCR),
        MetricSpec("ssim", "ssim", "FR", False, YCBCR),
        MetricSpec(
            "lpips",
            "lpips",
            "FR",
            True,
            {},
            ("pyiqa/LPIPS_v0.1_alex-df73285e.pth", "checkpoints/alexnet-owt-7be5be79.pth"),
            "AlexNet, v0.1",
        ),
        MetricSpec(
            "lpips-vgg",
            "lpips-vgg",
            "FR",
            True,
            {},
            ("pyiqa/LPIPS_v0.1_vgg-a78928a0.pth", "checkpoints/vgg16-397923af.pth"),
        ),
        MetricSpec(
            "dists",
            "dists",
            "FR",
            True,
            {},
            ("pyiqa/DISTS_weights-f5e65c96.pth", "checkpoints/vgg16-397923af.pth"),
        ),
        MetricSpec("niqe", "niqe", "NR", True, {}, ("pyiqa/niqe_modelparameters.mat",)),
        MetricSpec(
            "musiq",
            "musiq",
            "NR",
            False,
            {},
            ("pyiqa/musiq_koniq_ckpt-e95806b9.pth",),
            "KonIQ-10k checkpoint",
        ),
        MetricSpec(
            "maniqa",
            "maniqa-pipal",
            "NR",
            False,
            {},
            ("pyiqa/MANIQA_PIPAL-ae6d356b.pth",),
            "PIPAL checkpoint; timm ViT-B/8 from the HF cache",
        ),
        MetricSpec(
            "clipiqa", "clipiqa", "NR", False, {}, ("clip/RN50.pt",), "needs setuptools<82 (pkg_resources)"
        ),
        MetricSpec(
            "fid",
            "fid",
            "set",
            True,
            {},
            ("pyiqa/pt_inception-2015-12-05-6726825d.pth",),
            "folder vs folder, clean mode",
        ),
    )
}

PAPER_METRICS = ("psnr", "ssim", "lpips", "dists", "fid", "niqe", "musiq", "maniqa", "clipiqa")


def get_spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise unknown_name_error("metric", name, list(METRICS))
    return METRICS[name]


def hub_dir() -> Path:
    return Path(torch.hub.get_dir())


def set_metric_weights_dir(folder: str | Path) -> None:
    """Use ``folder`` as the torch hub folder: pyiqa files in ``folder/pyiqa/``, torchvision
    backbones in ``folder/checkpoints/``, CLIP in ``folder/clip/``."""
    torch.hub.set_dir(str(Path(folder).expanduser()))


def missing_weights(spec: MetricSpec) -> list[str]:
    return [f for f in spec.weight_files if not (hub_dir() / f).is_file()]


def _downloadable() -> bool:
    from ..hub import reachable

    return reachable(urllib.parse.urlparse(HF).hostname or "huggingface.co")


def check_available(spec: MetricSpec) -> None:
    """Raise MetricUnavailable (fast, before any download attempt) when weights cannot be had."""
    missing = missing_weights(spec)
    if missing and (os.environ.get("HF_HUB_OFFLINE") == "1" or not _downloadable()):
        where = ", ".join(str(hub_dir() / m) for m in missing)
        raise MetricUnavailable(
            f"weights not found and no network: place {where} "
            f"(or pass --metric-weights DIR holding {', '.join(missing)})"
        )
    if spec.name == "clipiqa":
        try:
            import pkg_resources  # noqa: F401  (openai-clip imports it; setuptools>=82 removed it)
        except ImportError:
            raise MetricUnavailable("CLIP metrics need pkg_resources: pip install 'setuptools<82'") from None


def create_metric(name: str, device: torch.device | str = "cpu", crop_border: int = 0, **options):
    """A pyiqa metric module with the papers' settings: ``metric(sr, hr)`` on (B, 3, H, W) in [0, 1]
    (``metric(sr)`` for no-reference, ``metric(dir_a, dir_b)`` for FID)."""
    spec = get_spec(name)
    check_available(spec)
    kwargs = {**spec.options, **options}
    if spec.name in ("psnr", "ssim"):
        kwargs["crop_border"] = crop_border
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pyiqa prints while loading weights
            import pyiqa

            return pyiqa.create_metric(spec.pyiqa_name, device=torch.device(device), **kwargs)
    except MetricUnavailable:
        raise
    except Exception as err:  # noqa: BLE001 - any failure to build a metric is reported, not fatal
        raise MetricUnavailable(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
