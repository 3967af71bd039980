"""A small paired test set from the photos shipped with scikit-image (no download).

    python benchmarks/make_photo_pairs.py OUTPUT [--size 256] [--scale 4] [--degradation bicubic|realesrgan]

Writes OUTPUT/HR/<name>.png (centre crops) and OUTPUT/LR/<name>.png (x4 smaller) of eight photos
the tiny training preset never sees, for `sr1step benchmark --dataset OUTPUT`.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from sr1step.data.datasets import BUILTIN_TRAIN, builtin_photos
from sr1step.data.degradations import BicubicDegradation, RealESRGANDegradation
from sr1step.imageio import read_image, save_png

# scikit-image photos not used by the tiny training preset (which trains on BUILTIN_TRAIN)
HELD_OUT = ("retina.jpg", "ihc.png", "coins.png", "moon.png", "brick.png", "grass.png")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("output", type=Path)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--degradation", choices=["bicubic", "realesrgan"], default="bicubic")
    args = ap.parse_args()
    degrade = BicubicDegradation(args.scale) if args.degradation == "bicubic" else RealESRGANDegradation()
    files = builtin_photos("val") + [
        p.parent / n for p in builtin_photos("val")[:1] for n in HELD_OUT if (p.parent / n).is_file()
    ]
    for i, path in enumerate(files):
        rgb = read_image(path, max_pixels=None).rgb
        h, w = rgb.shape[:2]
        s = min(args.size, h, w) // args.scale * args.scale
        y, x = (h - s) // 2, (w - s) // 2
        hr = rgb[y : y + s, x : x + s]
        lr = degrade(
            torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None],
            torch.Generator().manual_seed(i),
        )[0]
        save_png(args.output / "HR" / f"{path.stem}.png", hr)
        save_png(args.output / "LR" / f"{path.stem}.png", lr.permute(1, 2, 0).numpy())
    print(
        f"{len(files)} pairs in {args.output} ({', '.join(f.name for f in files)}; "
        f"none of {', '.join(BUILTIN_TRAIN)})"
    )


if __name__ == "__main__":
    main()
