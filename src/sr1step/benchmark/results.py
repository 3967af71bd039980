"""What a run writes: the environment and test-set provenance, results.json/csv/md."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from ..data.testsets import TESTSETS
from .options import MethodRef, Row
from .speed import SpeedRow
from .tables import markdown


def dataset_provenance(name: str, folder: Path) -> dict:
    """Where a test set came from: the registered archive and the Hub snapshot it was read from."""
    info = {"folder": str(folder)}
    if name in TESTSETS:
        ts = TESTSETS[name]
        info.update(
            {
                "repo": ts.repo_id,
                "archive": ts.archive,
                "pinned_revision": ts.revision or None,
                "protocol": ts.protocol,
            }
        )
        from huggingface_hub import try_to_load_from_cache

        if ts.repo_id:
            cached = try_to_load_from_cache(
                ts.repo_id, ts.archive, revision=ts.revision or None, repo_type="dataset"
            )
            if isinstance(cached, str) and "/snapshots/" in cached:
                info["snapshot"] = cached.split("/snapshots/")[1].split("/")[0]
    return info


def environment(device: torch.device, methods: list[MethodRef], datasets: dict | None = None) -> dict:
    import importlib.metadata as md

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    from .. import __version__
    from ..hub import load_cards
    from ..registry import get_method

    cards = load_cards()
    weights = {}
    for ref in methods:
        spec = ref.weights or get_method(ref.method).default_model
        card = cards.get(spec) if spec else None
        weights[ref.label] = {
            "weights": spec,
            "repo": card.repo_id if card else None,
            "revision": card.revision if card else None,
            "source": card.source_url if card else spec,
        }
    return {
        "sr1step": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "pyiqa": version("pyiqa"),
        "diffusers": version("diffusers"),
        "weights": weights,
        "datasets": datasets or {},
        "metric_settings": {
            "psnr/ssim": "Y of YCbCr (BT.601), pyiqa",
            "lpips": "AlexNet v0.1",
            "musiq": "KonIQ",
            "maniqa": "PIPAL",
            "fid": "folder vs folder, clean",
        },
    }


def write_results(
    output: Path,
    rows: list[Row],
    speed: list[SpeedRow],
    refs: list[dict],
    env: dict,
    metrics: tuple[str, ...],
    crop_border: int,
) -> None:
    from ..files import write_atomic

    output.mkdir(parents=True, exist_ok=True)
    env = {**env, "crop_border": crop_border}
    data = {
        "environment": env,
        "results": [asdict(r) for r in rows],
        "speed": [asdict(s) for s in speed],
        "reference": refs,
    }
    write_atomic(output / "results.json", (json.dumps(data, indent=2) + "\n").encode())
    header = ["method", "dataset", "images"] + [f"{m}" for m in metrics] + ["problems"]
    lines = [",".join(header)]
    for r in rows:
        vals = [f"{r.scores[m]:.4f}" if m in r.scores else "" for m in metrics]
        lines.append(",".join([r.method, r.dataset, str(r.images)] + vals + [str(len(r.problems))]))
    write_atomic(output / "results.csv", ("\n".join(lines) + "\n").encode())
    write_atomic(output / "results.md", markdown(rows, speed, refs, metrics, env).encode())
