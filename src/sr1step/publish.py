"""``sr1step models push``: a trained weight folder to the Hugging Face Hub, with a model card.

The card (README.md) says what the weights are and how they were made, from the folder itself:
``config.json`` (format, method, generator config, training steps, validation figures) and
``train_config.toml`` (the run config: recipe, data, teacher). The upload is one commit of the
folder; ``sr1step upscale --method M --weights ORG/NAME@REVISION`` loads it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

from .contract import read_folder_config

# Licence notes of the base weights a method's export builds on (the code is Apache-2.0).
_RESSHIFT = "official ResShift weights are S-Lab License 1.0 (non-commercial)"
BASE_LICENCES = {
    "resshift": "trained by you; if initialised from official weights: " + _RESSHIFT,
    "rsd": "distilled from a ResShift teacher; " + _RESSHIFT,
    "tadsr": "distilled from a ResShift teacher; " + _RESSHIFT,
    "d3sr": "a LoRA on SD-Turbo (commercial use restricted) or SD 2.1 (CreativeML Open RAIL++-M)",
}


@dataclass
class PushPlan:
    folder: Path
    repo_id: str
    private: bool
    card: str  # README.md text
    files: list[str]  # what the commit uploads, relative to folder


def model_card(folder: Path, repo_id: str) -> str:
    config = read_folder_config(folder)
    method = config.get("method", "?")
    run_file = folder / "train_config.toml"
    run = tomllib.loads(run_file.read_text()) if run_file.is_file() else {}
    model, data, train = run.get("model", {}), run.get("data", {}), run.get("train", {})
    lines = [
        "---",
        "library_name: sr1step",
        "tags: [super-resolution, one-step-diffusion, sr1step, " + method + "]",
        "---",
        "",
        f"# {repo_id}",
        "",
        f"A `{method}` super-resolution model trained with [sr1step](https://github.com/sr1step/sr1step).",
        "",
        "```bash",
        f"sr1step upscale photos/ out/ --method {method} --weights {repo_id}@<revision>",
        "```",
        "",
        "## How it was made",
        "",
        f"- method: `{method}`; weight format `{config.get('format', '?')}`",
        f"- training steps: {config.get('train_steps', '?')}",
    ]
    if model.get("teacher"):
        lines.append(f"- teacher: `{model['teacher']}`")
    if data:
        lines.append(
            f"- data: `{data.get('train', '?')}`, {data.get('degradation', '?')} degradation, "
            f"x{data.get('scale', '?')}, {data.get('gt_size', '?')} px HR crops"
        )
    if train:
        lines.append(
            f"- optimiser: AdamW lr {train.get('lr', '?')}, batch {train.get('batch_size', '?')} x "
            f"{train.get('grad_accum', 1)}, EMA {train.get('ema_decay', '?')}, seed {train.get('seed', '?')}"
        )
    lines += ["", "## Validation", ""]
    val = config.get("validation")
    if val:
        lines += [
            "| step | PSNR-Y | SSIM-Y | bicubic PSNR-Y | bicubic SSIM-Y |",
            "|---|---|---|---|---|",
            f"| {val.get('step', '?')} | {val.get('psnr', '?')} | {val.get('ssim', '?')} | "
            f"{val.get('psnr_bicubic', '?')} | {val.get('ssim_bicubic', '?')} |",
        ]
    else:
        lines.append("No validation figures were recorded with these weights.")
    lines += [
        "",
        "## Licence",
        "",
        "sr1step's code is Apache-2.0. Base weights: "
        + BASE_LICENCES.get(method, "see the method's model cards")
        + ".",
        "",
        "## Run config",
        "",
        "```toml",
        run_file.read_text().strip() if run_file.is_file() else "# (no train_config.toml in the folder)",
        "```",
        "",
    ]
    return "\n".join(lines)


def plan_push(folder: Path, repo_id: str, private: bool = False) -> PushPlan:
    from .hub import REPO_SPEC

    folder = Path(folder)
    if not REPO_SPEC.match(repo_id) or "@" in repo_id:
        raise ValueError(f"{repo_id!r} is not a Hub repo id (org/name)")
    read_folder_config(folder)  # an sr1step weight folder, or a clear error
    files = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    return PushPlan(folder, repo_id, private, model_card(folder, repo_id), files + ["README.md"])


def push(plan: PushPlan, api=None) -> str:
    """Create the repo (if needed) and upload the folder and its card in one commit; returns the
    commit hash to pin with ``--weights ORG/NAME@<hash>``."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = api or HfApi()
    api.create_repo(plan.repo_id, private=plan.private, exist_ok=True, repo_type="model")
    ops = [CommitOperationAdd(f, str(plan.folder / f)) for f in plan.files if f != "README.md"]
    ops.append(CommitOperationAdd("README.md", plan.card.encode()))
    info = api.create_commit(
        plan.repo_id, operations=ops, commit_message="sr1step models push", repo_type="model"
    )
    return info.oid
