"""Validation during training: PSNR-Y/SSIM-Y of the generator and of bicubic on held-out pairs,
and side-by-side sample images (bicubic | SR | HR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.datasets import PairedSet
from ..engine import Engine


def score_validation(engine: Engine, valset: PairedSet, scale: int, sample_images: int, folder: Path) -> dict:
    """Mean scores over the pairs with HR; the first ``sample_images`` panels written to ``folder``."""
    from ..imageio import save_png
    from ..metrics import create_metric

    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    scores = {"psnr": [], "ssim": [], "psnr_bicubic": [], "ssim_bicubic": []}
    for i, pair in enumerate(valset.pairs):
        sr = engine.run(pair.lr[None])
        bic = F.interpolate(pair.lr[None], scale_factor=scale, mode="bicubic").clamp(0, 1)
        if pair.hr is not None:
            hr = pair.hr[None]
            scores["psnr"].append(psnr(sr, hr).item())
            scores["ssim"].append(ssim(sr, hr).item())
            scores["psnr_bicubic"].append(psnr(bic, hr).item())
            scores["ssim_bicubic"].append(ssim(bic, hr).item())
        if i < sample_images:
            panels = [bic[0], sr[0]] + ([pair.hr] if pair.hr is not None else [])
            save_png(folder / f"{pair.name}.png", torch.cat(panels, dim=2).permute(1, 2, 0).numpy())
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


def format_scores(step: int, s: dict) -> str:
    if "psnr" not in s:
        return f"step {step}: validation images written"
    return (
        f"step {step}: val PSNR-Y {s['psnr']:.2f} dB (bicubic {s['psnr_bicubic']:.2f}), "
        f"SSIM-Y {s['ssim']:.4f} (bicubic {s['ssim_bicubic']:.4f})"
    )
