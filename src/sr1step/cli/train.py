"""``sr1step train`` and ``sr1step distill``: resolve the run config, then one Trainer fits it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, exit_codes, note, usage_error

Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Run folder: config.toml, checkpoints/, logs/ (TensorBoard), samples/, export/.",
    ),
]
Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        "-p",
        help="Named preset of the method (default: the method's paper preset; `tiny` runs on a CPU).",
    ),
]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML run config merged over the preset (method, \\[model], \\[data], \\[train]).",
    ),
]
Overrides = Annotated[
    list[str],
    typer.Option(
        "--set", help="Override one setting, e.g. --set train.lr=1e-4 --set data.gt_size=128 (repeatable)."
    ),
]
Data = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Training HR images: a folder, a .txt file list, or 'builtin' (photos from scikit-image).",
    ),
]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
Resume = Annotated[
    str | None,
    typer.Option(
        "--resume", help="Continue a run: 'latest' (newest checkpoint in --output) or a checkpoint folder."
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto | cpu | cuda | cuda:N | mps (multi-GPU: `accelerate launch -m sr1step.cli train ...`).",
    ),
]
PrintConfig = Annotated[
    bool, typer.Option("--print-config", help="Print the resolved config as TOML and exit.")
]


def train(
    method: Annotated[str, typer.Option("--method", "-m", help="Method to train (e.g. resshift, d3sr).")],
    output: Output = None,
    preset: Preset = None,
    config: Config = None,
    overrides: Overrides = [],  # noqa: B006 - typer reads the default, never mutates it
    data: Data = None,
    max_steps: MaxSteps = None,
    resume: Resume = None,
    device: Device = None,
    print_config: PrintConfig = False,
) -> None:
    """Train a model from HR images (degradations made on the fly); export weights for upscale."""
    values = _values(data=data, max_steps=max_steps, device=device)
    run, method_obj = _run_config("train", method, preset, config, overrides, values, output, resume)
    _fit_or_print(run, method_obj, output, resume, print_config)


def distill(
    method: Annotated[str, typer.Option("--method", "-m", help="Distillation method (e.g. tadsr, rsd).")],
    teacher: Annotated[
        str, typer.Option("--teacher", help="Teacher model: a model name, weight folder or file.")
    ],
    output: Output = None,
    preset: Preset = None,
    config: Config = None,
    overrides: Overrides = [],  # noqa: B006
    data: Data = None,
    max_steps: MaxSteps = None,
    resume: Resume = None,
    device: Device = None,
    print_config: PrintConfig = False,
) -> None:
    """Distill a multi-step teacher into a one-step student (same options as train, plus --teacher)."""
    values = _values(data=data, max_steps=max_steps, device=device, teacher=teacher)
    run, method_obj = _run_config("distill", method, preset, config, overrides, values, output, resume)
    _fit_or_print(run, method_obj, output, resume, print_config)


def _values(*, data, max_steps, device, teacher=None) -> dict:
    """The flags that set config values, as {section: {key: value}}."""
    values: dict = {}
    for section, key, value in (
        ("data", "train", data),
        ("train", "max_steps", max_steps),
        ("train", "device", device),
        ("model", "teacher", teacher),
    ):
        if value is not None:
            values.setdefault(section, {})[key] = value
    return values


def _run_config(kind, method, preset, config, overrides, values, output, resume):
    from ..config import load_file
    from ..registry import training_method

    try:
        file_data = load_file(config) if config else None
        if resume and config is None and output is not None and (output / "config.toml").is_file():
            file_data = load_file(output / "config.toml")  # a resumed run keeps its own config
            if preset is not None:
                note(
                    f"--preset {preset} is not applied on --resume: the run keeps "
                    f"{output / 'config.toml'} (with --set overrides on top)"
                )
    except (OSError, ValueError) as err:
        raise usage_error(f"cannot read the run config: {err}") from None
    try:
        method_obj = training_method(method)
        return method_obj.run_config(kind, preset, file_data, overrides, values), method_obj
    except ValueError as err:
        raise usage_error(str(err)) from None


def _fit_or_print(run, method_obj, output, resume, print_config) -> None:
    if print_config:
        typer.echo(run.to_toml())
        return
    if output is None:
        raise usage_error("--output is required (the run folder)")
    ckpts = output / "checkpoints"
    if not resume and ckpts.is_dir() and any(p.name.startswith("checkpoint-") for p in ckpts.iterdir()):
        raise usage_error(f"{output} already holds checkpoints; use --resume latest, or another --output")
    from ..training.trainer import Trainer

    progress, task, on_log = _progress(run.train.max_steps)
    with exit_codes(), progress:
        trainer = Trainer(run, method_obj.build_recipe, output, log=progress.console.print)
        progress.update(task, completed=trainer.step)
        result = trainer.fit(resume=resume, on_log=on_log)
    if result.interrupted:
        raise typer.Exit(130)  # as an interrupted shell command; the checkpoint is saved
    if result.main_process:
        console.print(f"exported weights: {result.export_dir}")


def _progress(max_steps: int):
    """A progress bar on a terminal, one line per log step elsewhere (logs, CI)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("train", total=max_steps, info="")

    def on_log(step, logs):
        losses = " ".join(
            f"{k.split('/')[-1]}={v:.4g}"
            for k, v in logs.items()
            if not k.startswith("lr/") and k != "it_per_s"
        )
        progress.update(task, completed=step, info=f"{losses} {logs.get('it_per_s', 0):.2f} it/s")
        if not console.is_terminal:
            console.print(f"step {step}/{max_steps} {losses} it/s={logs.get('it_per_s', 0):.3g}")

    return progress, task, on_log
