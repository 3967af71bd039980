"""Peak RSS of `sr1step upscale --tile T` on a 256x256 and a 1024x1024 photo: the tile, not the
image, should set the memory (issue target: 1024 within 1.2x of 256).

    python benchmarks/tile_memory.py                                   # the bundled default model
    python benchmarks/tile_memory.py --method resshift --weights runs/tiny-teacher/export \
        --old-ref 372a785                                              # also the tree before the change

Each run is a fresh `python -m sr1step.cli upscale` process under GNU time (peak RSS of the
process); inputs are a photo from data/photos/val resized to each size (or a smooth synthetic
image when the photo set is absent).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def photo(size: int) -> np.ndarray:
    files = sorted((ROOT / "data" / "photos" / "val").glob("*.png"))
    if files:
        return cv2.resize(cv2.imread(str(files[len(files) // 2])), (size, size), interpolation=cv2.INTER_AREA)
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([np.sin(9 * x), np.cos(7 * y), x * y], axis=2) * 100 + 128).astype(np.uint8)


def peak_rss(src: Path, image: Path, out: Path, args) -> tuple[float, float]:
    cmd = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "sr1step.cli", "upscale", str(image)]
    cmd += [str(out), "--tile", str(args.tile), "--dtype", args.dtype]
    if args.method:
        cmd += ["--method", args.method]
    if args.weights:
        cmd += ["--weights", args.weights]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    wall, kb = done.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="")
    ap.add_argument("--weights", default="")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--sizes", default="256,1024")
    ap.add_argument("--old-ref", default="", help="also measure this commit (git worktree)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sr1step-mem-"))
    trees = {"this tree": ROOT / "src"}
    if args.old_ref:
        subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "old"), args.old_ref], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        trees = {f"old ({args.old_ref})": tmp / "old" / "src", **trees}
    sizes = [int(s) for s in args.sizes.split(",")]
    for s in sizes:
        cv2.imwrite(str(tmp / f"in{s}.png"), photo(s))
    print(f"| tree | {' | '.join(f'{s} -> {4 * s}: s, peak MB' for s in sizes)} | ratio |")
    print("|---" * (len(sizes) + 2) + "|")
    try:
        for name, src in trees.items():
            rows = [peak_rss(src, tmp / f"in{s}.png", tmp / f"out-{name[:3]}-{s}", args) for s in sizes]
            cells = " | ".join(f"{w:.1f} s, {m:.0f} MB" for w, m in rows)
            print(f"| {name} | {cells} | {rows[-1][1] / rows[0][1]:.2f}x |", flush=True)
    finally:
        if args.old_ref:
            remove = ["git", "worktree", "remove", "--force", str(tmp / "old")]
            subprocess.run(remove, cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
