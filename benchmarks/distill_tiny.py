"""Distill a tiny ResShift teacher into one step and compare, on held-out crops, with the teacher.

    python benchmarks/train_tiny_resshift.py --output runs/tiny-teacher        # the teacher, once
    python benchmarks/distill_tiny.py --method rsd --teacher runs/tiny-teacher/export --output runs/rsd-tiny

Reports PSNR-Y/SSIM-Y on the held-out crops of benchmarks/train_tiny_resshift.py (built-in
validation photos, 64 px HR, bicubic x4 LR, seed 2024) for bicubic, the teacher's multi-step
chain, the teacher's plain one-step prediction (t = T-1, no distillation) and the distilled
student, plus the distillation speed; writes report.json in the output.
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
from sr1step.metrics import create_metric
from sr1step.registry import get_method
from sr1step.training.trainer import Trainer


def held_out(count: int):
    pairs = synthesize_pairs(builtin_photos("val"), BicubicDegradation(4), 4, 64, count, seed=2024).pairs
    return torch.stack([p.lr for p in pairs]), torch.stack([p.hr for p in pairs])


def run_generator(gen, lr):
    noise = torch.randn(len(lr), gen.noise_channels, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return gen.eval()(lr, noise).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="rsd")
    ap.add_argument("--teacher", type=Path, required=True, help="the tiny teacher's export folder")
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=None, help="distillation steps (default: the tiny preset's)")
    ap.add_argument("--val-count", type=int, default=32)
    ap.add_argument(
        "--set", action="append", default=[], help="config override, as for `sr1step distill --set`"
    )
    args = ap.parse_args()

    method = get_method(args.method)
    overrides = [f'model.teacher="{args.teacher}"', 'train.device="cpu"', *args.set]
    if args.steps is not None:
        overrides.append(f"train.max_steps={args.steps}")
    run = method.run_config("distill", "tiny", None, overrides)
    t0 = time.perf_counter()
    resume = "latest" if (args.output / "checkpoints").is_dir() else None
    result = Trainer(run, method.build_recipe, args.output, log=print).fit(resume=resume)
    seconds = time.perf_counter() - t0
    its = [h["it_per_s"] for h in result.history if "it_per_s" in h]

    lr, hr = held_out(args.val_count)
    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    report = {
        "method": args.method,
        "steps": result.steps,
        "distill_seconds": round(seconds, 1),
        "val_images": len(lr),
    }
    if its:
        report["it_per_s"] = round(sum(its) / len(its), 3)

    def score(name, sr):
        report[name] = {
            "psnr": round(psnr(sr, hr).mean().item(), 3),
            "ssim": round(ssim(sr, hr).mean().item(), 4),
        }

    score("bicubic", F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1))
    teacher = get_method("resshift").load_generator(str(args.teacher))
    score(f"teacher-{teacher.steps}step", run_generator(teacher, lr))
    teacher.set_sampling(dataclasses.replace(teacher.config, steps=1))
    score("teacher-one-step", run_generator(teacher, lr))
    score(f"{args.method}-student", run_generator(method.load_generator(str(result.export_dir)), lr))
    (args.output / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
