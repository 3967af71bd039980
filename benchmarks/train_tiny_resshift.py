"""Train the tiny ResShift preset on the built-in photos and compare it with bicubic.

    python benchmarks/train_tiny_resshift.py --output runs/tiny-bench [--steps 3000]

Reports, on held-out crops of the built-in validation photos (bicubic x4 LR), PSNR-Y/SSIM-Y of
bicubic, of the model's 4-step ancestral chain (its default), of the deterministic chain, and of
the one-step prediction at t = T-1, plus training speed; writes report.json in the output.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sr1step.data.datasets import builtin_photos, synthesize_pairs
from sr1step.data.degradations import BicubicDegradation
from sr1step.methods.resshift import RESSHIFT, ResShiftTraining
from sr1step.metrics import create_metric
from sr1step.training.config import resolve_run_config
from sr1step.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", type=Path, default=Path("runs/tiny-bench"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--val-count", type=int, default=32)
    ap.add_argument(
        "--set", action="append", default=[], help="config override, as for `sr1step train --set`"
    )
    args = ap.parse_args()
    run = resolve_run_config(
        RESSHIFT.presets["tiny"](),
        ResShiftTraining,
        None,
        [f"train.max_steps={args.steps}", 'train.device="cpu"', *args.set],
    )
    t0 = time.perf_counter()
    result = Trainer(run, RESSHIFT.build_recipe, args.output, log=print).fit(
        resume="latest" if (args.output / "checkpoints").is_dir() else None
    )
    train_s = time.perf_counter() - t0

    pairs = synthesize_pairs(
        builtin_photos("val"), BicubicDegradation(4), 4, 64, args.val_count, seed=2024
    ).pairs
    lr = torch.stack([p.lr for p in pairs])
    hr = torch.stack([p.hr for p in pairs])
    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    report = {
        "steps": result.steps,
        "train_seconds": round(train_s, 1),
        "val_images": len(pairs),
        "overrides": args.set,
    }

    def score(name, sr):
        report[name] = {
            "psnr": round(psnr(sr, hr).mean().item(), 3),
            "ssim": round(ssim(sr, hr).mean().item(), 4),
        }

    score("bicubic", F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1))
    for label, sampler, steps in (
        ("resshift-4step-ancestral", "ancestral", None),
        ("resshift-4step-ddim", "ddim", None),
        ("one-step", "ancestral", 1),
    ):
        gen = RESSHIFT.load_generator(str(result.export_dir)).eval()
        gen.set_sampling(dataclasses.replace(gen.config, sampler=sampler, steps=steps))
        noise = torch.randn(
            len(pairs), gen.noise_channels, 64, 64, generator=torch.Generator().manual_seed(0)
        )
        with torch.no_grad():
            score(label, gen(lr, noise).clamp(0, 1))
    report["gain_db"] = round(report["resshift-4step-ancestral"]["psnr"] - report["bicubic"]["psnr"], 3)
    (args.output / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
