"""Rebuild sr1step's two bundled models from scratch and report on both.

    python benchmarks/default_model.py --model real               # the default: every stage, CPU
    python benchmarks/default_model.py --model compact --device cuda
    python benchmarks/default_model.py --stages report            # only the report of existing runs

Models (MODELS below):
  real     sr1step-real-x4, the default of `sr1step upscale`: a blind model for real photos.
           Teacher `sr1step train -m resshift -p real` (the compact network started from
           sr1step-compact-x4's weights, REAL_REALESRGAN with 20 % clean pairs, rotations; 2000
           steps at batch 8 on 2 CPU cores, about 40 min) -> runs/real-teacher; students
           `sr1step distill -m rsd|tadsr -p real` (300 and 200 iterations; about 30 min each
           side by side on one core) -> runs/real-rsd, runs/real-tadsr.
  compact  sr1step-compact-x4, the fidelity model for clean LR: teacher in two stages
           (TEACHER_STAGES: 2860 steps at batch 32 on 90 % clean pairs, then 2050 on clean pairs;
           on an H100, 8 and 5 minutes) -> runs/compact-teacher; RSD student on clean pairs, 1500
           iterations, then to 1950 with data.rotate (2-3 h on the CPU) -> runs/compact-rsd.

Stages (each resumes where an earlier run stopped): data (benchmarks/photo_set.py -> data/photos),
teacher, rsd, tadsr, report, ship (the student named by --ship into models/<card>/, in fp16).

Report: the held-out photos (data/photos/val: whole photos the training never sees), 512 px crops
whose bicubic x4 PSNR-Y is under 40 dB (flat sky measures nothing), taken in turn from each photo;
five LR versions (sr1step.data.eval_degradations: clean bicubic, clean area, mild, moderate, the
papers' Real-ESRGAN pipeline; seeded per image); PSNR-Y, SSIM-Y and the detail ratio (variance of
the Laplacian of Y, output over HR), border 4; speed and memory of the default in a CLI process.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "teacher", "rsd", "tadsr", "report", "ship")
CLEAN = ["data.realesrgan.bicubic_prob=1.0"]  # every pair clean bicubic (the compact students' data)
STAGE2 = [*CLEAN, "train.lr=2e-4", "train.warmup_steps=50"]
MODELS = {
    # card, preset, teacher stages ((run suffix, steps, overrides), each from the weights of the
    # one before), student stages ({method: ((total steps, overrides), ...)}, resumed in one run)
    "real": dict(
        card="sr1step-real-x4",
        preset="real",
        teacher=(("", 2000, []),),
        students={"rsd": ((300, []),), "tadsr": ((200, []),)},
        student_overrides=[],
        ship="teacher",  # its one step scored above both students (docs/default-model.md)
    ),
    "compact": dict(
        card="sr1step-compact-x4",
        preset="compact",
        teacher=(("stage1", 2860, []), ("", 2050, STAGE2)),
        students={"rsd": ((1500, []), (1950, ["data.rotate=true"])), "tadsr": ((300, []),)},
        student_overrides=CLEAN,
        ship="rsd",
    ),
}


def sh(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def resume_args(run: Path) -> list[str]:
    return ["--resume", "latest"] if (run / "checkpoints").is_dir() else []


# --- evaluation ---------------------------------------------------------------------------------


def held_out(val_dir: Path, max_images: int) -> list[tuple[str, torch.Tensor]]:
    """512 px crops (top-left of each tile) under 40 dB bicubic PSNR-Y, one photo after another."""
    from sr1step.data.degradations import BicubicDegradation
    from sr1step.imageio import read_image
    from sr1step.metrics import create_metric

    psnr = create_metric("psnr", crop_border=4)
    by_photo: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for path in sorted(val_dir.glob("*.png")):
        rgb = read_image(path, max_pixels=None).rgb
        if rgb.shape[0] < 512 or rgb.shape[1] < 512:
            continue
        hr = torch.from_numpy(np.ascontiguousarray(rgb[:512, :512])).permute(2, 0, 1)[None].float()
        up = F.interpolate(BicubicDegradation(4)(hr), scale_factor=4, mode="bicubic").clamp(0, 1)
        if psnr(up, hr).item() < 40:
            by_photo.setdefault(path.stem.rsplit("__", 1)[0], []).append((path.stem, hr))
    out = []
    while len(out) < max_images and any(by_photo.values()):
        for crops in by_photo.values():
            if crops and len(out) < max_images:
                out.append(crops.pop(0))
    return out


def models(runs: Path) -> dict[str, tuple[str, str, int]]:
    """Report rows: name -> (method, weights, self-ensemble)."""
    teacher = str(runs / "real-teacher" / "export")
    return {
        "bicubic": ("bicubic", "", 1),
        "fidelity model (sr1step-compact-x4)": ("rsd", "sr1step-compact-x4", 1),
        "real teacher, 4 steps": ("resshift", teacher, 1),
        "real teacher, 1 step (plain)": ("sinsr", teacher, 1),
        "real RSD student": ("rsd", str(runs / "real-rsd" / "export"), 1),
        "real RSD student, MSE weight 50": ("rsd", str(runs / "real-rsd-w50" / "export"), 1),
        "real TAD-SR student": ("tadsr", str(runs / "real-tadsr" / "export"), 1),
    }


def report(args) -> dict:
    from sr1step import Upscaler
    from sr1step.data.eval_degradations import EVAL_DEGRADATIONS
    from sr1step.metrics import create_metric
    from sr1step.metrics.detail import detail_ratio

    images = held_out(args.data / "val", args.max_images)
    print(f"{len(images)} held-out 512 px crops: {', '.join(n for n, _ in images)}", flush=True)
    lrs = {d: [f(hr, 1000 + i) for i, (_, hr) in enumerate(images)] for d, f in EVAL_DEGRADATIONS.items()}
    psnr, ssim = create_metric("psnr", crop_border=4), create_metric("ssim", crop_border=4)
    rows, outputs = {}, {}
    for name, (method, weights, ensemble) in models(args.runs).items():
        if "/" in weights and not Path(weights).is_dir():  # a run folder (not a card name) not made yet
            print(f"skipping {name}: {weights} does not exist", flush=True)
            continue
        up = Upscaler(method, weights or None, device=args.device, dtype="fp32", seed=0, ensemble=ensemble)
        row = {}
        for d, lr_list in lrs.items():
            p, s, detail = [], [], []
            t0 = time.perf_counter()
            for (_, hr), lr in zip(images, lr_list):
                sr = up(lr[0]).clamp(0, 1)[None]
                p.append(psnr(sr, hr).item())
                s.append(ssim(sr, hr).item())
                detail.append(detail_ratio(sr, hr).item())
                outputs.setdefault(d, {}).setdefault(name, []).append(sr)
            row[d] = {
                "psnr": round(float(np.mean(p)), 3),
                "ssim": round(float(np.mean(s)), 4),
                "detail": round(float(np.mean(detail)), 3),
                "seconds_per_image": round((time.perf_counter() - t0) / len(lr_list), 3),
            }
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    result = {"images": [n for n, _ in images], "quality": rows}
    if not args.no_speed:
        result["speed"] = speed(args)
    picture = ["bicubic", "fidelity model (sr1step-compact-x4)", "real teacher, 1 step (plain)"]
    picture.append("real RSD student")
    for d in ("moderate", "papers"):
        crops_picture(images, lrs[d], outputs[d], picture, ROOT / "docs" / "images" / f"real-model-{d}.png")
    (args.runs / "report.json").write_text(json.dumps(result, indent=2))
    (args.runs / "report.md").write_text(markdown(result))
    print(markdown(result))
    return result


def timed_cli(*args: str) -> dict:
    """Wall seconds and peak RSS (GNU time) of one `sr1step upscale` process."""
    cmd = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "sr1step.cli", "upscale", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    wall, rss_kb = done.stderr.strip().splitlines()[-1].split()
    return {"wall_s": float(wall), "peak_rss_mb": round(int(rss_kb) / 1024)}


def speed(args) -> dict:
    """512x512 -> 2048x2048 and a tiled 2000x1500 photo, each in a fresh CLI process."""
    import cv2

    from sr1step import Upscaler

    work = args.runs / "speed"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    src = sorted((args.data / "val").glob("*.png"))
    tile = cv2.imread(str(src[len(src) // 2]))[:512, :512]
    cv2.imwrite(str(work / "photo512.png"), tile)
    big = cv2.resize(tile, (2000, 1500), interpolation=cv2.INTER_CUBIC)  # 2000x1500 of photo content
    cv2.imwrite(str(work / "photo2000x1500.png"), big)
    weights = ["--weights", args.speed_weights] if args.speed_weights else []
    out = {
        "512 -> 2048 (CLI process)": timed_cli(str(work / "photo512.png"), str(work / "a"), *weights),
        "512 -> 2048, --ensemble 2 (CLI process)": timed_cli(
            str(work / "photo512.png"), str(work / "e"), "--ensemble", "2", *weights
        ),
        "2000x1500 -> 8000x6000, --tile 256 (CLI process)": timed_cli(
            str(work / "photo2000x1500.png"), str(work / "b"), "--tile", "256", *weights
        ),
    }
    x = torch.from_numpy(tile[..., ::-1].copy()).permute(2, 0, 1).float() / 255
    for dtype in ("fp32", "bf16"):
        up = Upscaler(None, args.speed_weights or None, device=args.device, dtype=dtype)
        up(x)  # warm-up
        t0 = time.perf_counter()
        whole = up(x)
        out[f"512 -> 2048, {dtype} (model only, in process)"] = {"wall_s": round(time.perf_counter() - t0, 2)}
    # seams: the same image in 128 px tiles (overlap 32) against the whole-image run
    tiled = Upscaler(None, args.speed_weights or None, device=args.device, dtype="bf16", tile=128)(x)
    mse = ((tiled - whole) ** 2).mean().item()
    out["tiled (128) vs whole image"] = {
        "psnr_db": round(10 * math.log10(1 / mse), 2) if mse else float("inf"),
        "max_abs_diff": round((tiled - whole).abs().max().item(), 4),
    }
    return out


def markdown(result: dict) -> str:
    inputs = list(next(iter(result["quality"].values())))
    lines = [
        f"Held-out photos: {len(result['images'])} crops of 512 px, x4, PSNR-Y / SSIM-Y / detail ratio "
        "(border 4).",
        "",
        "| model | " + " | ".join(inputs) + " | s / image |",
        "|---|" + "---|" * (len(inputs) + 1),
    ]
    for name, row in result["quality"].items():
        cells = [f"{row[d]['psnr']:.2f} / {row[d]['ssim']:.4f} / {row[d]['detail']:.2f}" for d in inputs]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row[inputs[0]]['seconds_per_image']:.2f} |")
    if "speed" in result:
        lines += ["", "| speed | wall s | peak RSS MB |", "|---|---|---|"]
        for name, row in result["speed"].items():
            if "wall_s" in row:
                lines.append(f"| {name} | {row['wall_s']} | {row.get('peak_rss_mb', '')} |")
            else:
                lines.append(f"\n{name}: PSNR {row['psnr_db']} dB, max abs diff {row['max_abs_diff']}")
    return "\n".join(lines) + "\n"


def crops_picture(images, lrs, outputs, names, path: Path, size: int = 160) -> None:
    """One row per image (the four most detailed): LR (nearest), the named models, HR; the most
    detailed 160 px crop of the 512 px area."""
    import cv2

    from sr1step.metrics.detail import laplacian_variance

    corners = [(y, x) for y in range(0, 512 - size + 1, 88) for x in range(0, 512 - size + 1, 88)]

    def detail(hr: torch.Tensor, yx: tuple[int, int]) -> float:
        y, x = yx
        return laplacian_variance(hr[..., y : y + size, x : x + size]).item()

    rows = []
    names = [n for n in names if n in outputs]
    order = sorted(range(len(images)), key=lambda i: -max(detail(images[i][1], c) for c in corners))
    for i in order[:4]:
        hr = images[i][1]
        y, x = max(corners, key=lambda c: detail(hr, c))
        lr_up = F.interpolate(lrs[i], scale_factor=4, mode="nearest")
        tiles = [lr_up] + [outputs[n][i] for n in names] + [hr]
        row = [t[0, :, y : y + size, x : x + size] for t in tiles]
        rows.append(torch.cat([F.pad(t, (2, 2, 2, 2), value=1.0) for t in row], dim=2))
    grid = torch.cat(rows, dim=1)
    labels = ["LR (nearest)"] + [n.split(" (")[0] for n in names] + ["HR"]
    head = np.full((24, grid.shape[2], 3), 255, np.uint8)
    for k, label in enumerate(labels):
        cv2.putText(head, label[:24], (k * (size + 4) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1)
    body = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([head, body]), cv2.COLOR_RGB2BGR))
    print(f"wrote {path}")


# --- stages -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=list(MODELS), default="real", help="which model's stages run")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "photos")
    ap.add_argument(
        "--ship",
        choices=["rsd", "tadsr", "teacher"],
        default=None,
        help="what to ship: a student, or the teacher's plain one-step prediction (method sinsr); "
        "default: what the model's recipe ships",
    )
    ap.add_argument("--max-images", type=int, default=32)
    ap.add_argument("--no-speed", action="store_true", help="report quality only")
    ap.add_argument("--speed-weights", default="", help="weights timed (default: the bundled default)")
    args = ap.parse_args()
    stages = args.stages.split(",")
    unknown = set(stages) - set(STAGES)
    if unknown:
        ap.error(f"unknown stage(s) {sorted(unknown)}")
    model = MODELS[args.model]
    args.ship = args.ship or model["ship"]
    cli = [sys.executable, "-m", "sr1step.cli"]
    teacher = args.runs / f"{args.model}-teacher"
    if "data" in stages and not (args.data / "train").is_dir():
        sh(sys.executable, "benchmarks/photo_set.py", "--output", str(args.data))
    if "teacher" in stages:
        common = ["-m", "resshift", "-p", model["preset"], "--data", str(args.data / "train")]
        common += ["--device", args.device]
        init = None
        for suffix, steps, overrides in model["teacher"]:
            run = args.runs / (f"{args.model}-teacher" + (f"-{suffix}" if suffix else ""))
            sets = [x for kv in overrides for x in ("--set", kv)]
            if init is not None:
                sets += ["--set", f'model.init_weights="{init}"']
            if not (run / "export" / "config.json").is_file():
                sets += ["--max-steps", str(steps), *resume_args(run)]
                sh(*cli, "train", *common, "-o", str(run), *sets)
            init = run / "export"
    for method in ("rsd", "tadsr"):
        if method in stages:
            run = args.runs / f"{args.model}-{method}"
            for steps, overrides in model["students"][method]:
                sets = [x for kv in model["student_overrides"] + overrides for x in ("--set", kv)]
                sh(*cli, "distill", "-m", method, "-p", model["preset"], "--teacher", str(teacher / "export"),
                   "-o", str(run), "--data", str(args.data / "train"), "--device", args.device,
                   "--max-steps", str(steps), *sets, *resume_args(run))  # fmt: skip
    if "report" in stages:
        report(args)
    if "ship" in stages:
        from sr1step.weights import load_state_dict, save_safetensors

        src = args.runs / f"{args.model}-{args.ship}" / "export"
        dst = ROOT / "models" / model["card"]
        dst.mkdir(parents=True, exist_ok=True)
        config = json.loads((src / "config.json").read_text())
        config["model"] = model["card"]
        if args.ship == "teacher":  # its prediction at t = T-1 alone, as SinSR runs
            config["method"] = "sinsr"
        (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        # fp16 halves the file (10 MB); the loader casts to the run's dtype. Held-out PSNR moved
        # by under 0.001 dB (docs/default-model.md).
        state = load_state_dict(src / "unet.safetensors")
        save_safetensors({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
                         dst / "unet.safetensors")  # fmt: skip
        print(f"shipped {src} as {dst} ({(dst / 'unet.safetensors').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
