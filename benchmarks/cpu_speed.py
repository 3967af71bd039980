"""Old code path against the new one on the same inputs: one-step latency on the CPU, as a ratio.

    python benchmarks/cpu_speed.py                          # old = --old-ref, new = this tree
    python benchmarks/cpu_speed.py --archs resshift --runs 5 --new-dtype bf16 --new-dtype fp32

Each architecture is built with seeded random weights through APIs both trees have (so the two
runs compute the same network on the same 128x128 input), in a fresh process per (tree, setting),
alternating old and new so background load hits both alike. The old tree is checked out with
`git worktree` at --old-ref (default: the commit before the performance work). Reported: the
median seconds of --runs timed runs after one warm-up, the ratio old / new, and the largest and
mean absolute output difference against the old fp32 output (in 0..1 units).

Architectures: ``resshift`` (ResShift v3 UNet + VQ-f4, one step: the path of SinSR/RSD/TAD-SR),
``compact`` (sr1step-compact-x4's network, new in this tree: its "old" column is this tree in
fp32), ``sd`` (the SD 2.1 / SD-Turbo UNet + VAE of D3SR and
OSEDiff, LoRA merged).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_REF = "372a785"  # the last commit before the performance work (issue 16)

WORKER = r"""
import json, sys, time
import numpy as np, torch
arch, size, runs, dtype, compile_, out = sys.argv[1:7]
size, runs = int(size), int(runs)
from sr1step.engine import Engine, EngineOptions
torch.manual_seed(0)
if arch in ("resshift", "compact"):
    from sr1step.generators.resshift import ResShiftGenerator
    from sr1step.methods.resshift import NETWORKS
    gen = ResShiftGenerator(NETWORKS["realsr-v3" if arch == "resshift" else "compact"].with_steps(1))
else:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from sr1step.generators.sd_onestep import SDOneStepConfig, SDOneStepGenerator
    from sr1step.nets.sd_configs import SD21_UNET, SD_SCHEDULER, SD_VAE
    unet, vae = UNet2DConditionModel(**SD21_UNET), AutoencoderKL(**SD_VAE)
    prompt = torch.randn(1, 77, 1024, generator=torch.Generator().manual_seed(0)) * 0.5
    gen = SDOneStepGenerator(SDOneStepConfig(base="random"), unet, vae, SD_SCHEDULER, prompt)
kw = {"compile": True} if compile_ == "1" else {}
engine = Engine(gen.eval(), EngineOptions(device="cpu", dtype=dtype, seed=0, **kw))
if hasattr(engine, "use_channels_last"):  # as load_engine does (the new tree)
    engine.use_channels_last()
x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
engine.run(x)
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    y = engine.run(x)
    times.append(time.perf_counter() - t0)
np.save(out, y.numpy())
print(json.dumps({"times": times, "dtype": str(engine.dtype)}))
"""


def run_worker(src: Path, arch: str, size: int, runs: int, dtype: str, compile_: bool, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "SR1STEP_CPU_BF16": "1"}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, arch, str(size), str(runs), dtype, "1" if compile_ else "0", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"worker failed ({src}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-ref", default=OLD_REF)
    ap.add_argument("--archs", default="resshift,compact,sd")
    ap.add_argument("--size", type=int, default=128, help="LR side (128 -> 512 output)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--new-dtype", action="append", default=None, help="new-path dtypes (default: bf16, fp32)"
    )
    ap.add_argument("--compile", action="store_true", help="also time the new path with --compile")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    new_settings = [(d, False) for d in (args.new_dtype or ["bf16", "fp32"])]
    if args.compile:
        new_settings.append((new_settings[0][0], True))

    tmp = Path(tempfile.mkdtemp(prefix="sr1step-speed-"))
    old_tree = tmp / "old"
    subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old_ref], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    results = []
    try:
        for arch in args.archs.split(","):
            old_src = ROOT / "src" if arch == "compact" else old_tree / "src"
            old = run_worker(old_src, arch, args.size, args.runs, "fp32", False, tmp / "old.npy")
            ref = np.load(tmp / "old.npy")
            for dtype, compile_ in new_settings:
                new = run_worker(ROOT / "src", arch, args.size, args.runs, dtype, compile_, tmp / "new.npy")
                diff = np.abs(np.load(tmp / "new.npy") - ref)
                row = {
                    "arch": arch,
                    "size": f"{args.size} -> {args.size * 4}",
                    "old_s": round(statistics.median(old["times"]), 3),
                    "new": f"{dtype}{' + compile' if compile_ else ''}",
                    "new_s": round(statistics.median(new["times"]), 3),
                    "max_abs_diff": float(diff.max()),
                    "mean_abs_diff": float(diff.mean()),
                }
                row["speedup"] = round(row["old_s"] / row["new_s"], 2)
                results.append(row)
                print(json.dumps(row), flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, capture_output=True)
    print("\n| arch | LR -> SR | old fp32 s | new | new s | speed-up | max abs diff | mean abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['arch']} | {r['size']} | {r['old_s']} | {r['new']} | {r['new_s']} | {r['speedup']}x "
            f"| {r['max_abs_diff']:.2e} | {r['mean_abs_diff']:.2e} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
