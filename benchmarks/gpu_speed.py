"""The GPU speed table of docs/performance.md, in one command (random weights: no downloads).

    python benchmarks/gpu_speed.py                         # on a CUDA machine: the whole table
    python benchmarks/gpu_speed.py --device cpu --methods bicubic,sinsr --dtypes fp32 --batches 1 --runs 1

For every method (the released architecture with random weights, `--weights random`; SD-based
ones with the LoRA merged, as sr1step always runs them), dtype, batch size and with/without
torch.compile: latency per batch, images/s and peak memory at 128 -> 512, through the same
`measure_speed` as `sr1step benchmark --speed`. Then the memory of a tiled 1024 -> 4096 upscale
(--tile 256) per architecture. Writes the markdown table to stdout and JSON to --json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sr1step.api import Upscaler
from sr1step.benchmark import MethodRef, measure_speed
from sr1step.engine import EngineOptions

METHODS = "bicubic,sinsr,resshift@4,resshift@15,rsd,tadsr,d3sr,osediff,sr1step-compact-x4"


def refs(spec: str) -> list[MethodRef]:
    out = []
    for item in spec.split(","):
        name, _, steps = item.partition("@")
        if name == "sr1step-compact-x4":  # the bundled default: real weights, its card names the method
            out.append(MethodRef("rsd", name, None, name))
        else:
            label = f"{name} ({steps} steps)" if steps else name
            out.append(MethodRef(name, "random", int(steps) if steps else None, label))
    return out


def tiled_memory(ref: MethodRef, device: str, dtype: str, size: int, tile: int) -> dict:
    up = Upscaler(ref.method, ref.weights, steps=ref.steps, device=device, dtype=dtype, tile=tile)
    x = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    if up.engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    up(x)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if up.engine.device.type == "cuda" else float("nan")
    return {"method": ref.label, "size": f"{size} -> {size * 4}", "tile": tile, "seconds": round(seconds, 2),
            "peak_gib": round(peak, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--dtypes", default="fp16,bf16")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", default="off,on", help="off, on, or off,on")
    ap.add_argument(
        "--tiled-size", type=int, default=1024, help="input side of the tiled memory check (0: skip)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows, tiled = [], []
    for ref in refs(args.methods):
        for dtype in args.dtypes.split(","):
            for compile_ in args.compile.split(","):
                for batch in (int(b) for b in args.batches.split(",")):
                    opts = EngineOptions(device=args.device, dtype=dtype, compile=compile_ == "on")
                    try:
                        r = measure_speed(ref, opts, args.size, batch, args.runs, args.warmup)
                    except (RuntimeError, ValueError) as err:  # e.g. out of memory at a large batch
                        print(f"{ref.label} {dtype} batch {batch} compile {compile_}: {err}".splitlines()[0])
                        continue
                    row = {
                        "method": ref.label,
                        "dtype": dtype,
                        "compile": compile_,
                        "batch": batch,
                        "nfe": r.nfe,
                        "params_m": round(r.params_m, 1),
                        "latency_ms": round(r.latency_s * 1e3, 1),
                        "ms_per_image": round(r.latency_s * 1e3 / batch, 1),
                        "images_per_s": round(r.images_per_s, 2),
                        "peak_mib": round(r.peak_memory_mb),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        if args.tiled_size:
            tiled.append(tiled_memory(ref, args.device, args.dtypes.split(",")[0], args.tiled_size, 256))
            print(json.dumps(tiled[-1]), flush=True)
    cols = ["method", "dtype", "compile", "batch", "nfe", "params_m", "latency_ms", "ms_per_image"]
    cols += ["images_per_s", "peak_mib"]
    print("\n| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if tiled:
        print("\n| method | tiled upscale | tile | s | peak GiB |\n|---|---|---|---|---|")
        for t in tiled:
            print(f"| {t['method']} | {t['size']} | {t['tile']} | {t['seconds']} | {t['peak_gib']} |")
    if args.json:
        args.json.write_text(json.dumps({"speed": rows, "tiled": tiled}, indent=2))


if __name__ == "__main__":
    main()
