"""The ``sr1step`` command line: a thin Typer shell over the library.

Exit codes: 0 everything done; 1 some inputs failed (the rest were written) or the run could not
start (missing weights); 2 bad usage. Heavy imports (torch, diffusers) happen inside commands so
``sr1step --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="sr1step",
    help="One-step diffusion image super-resolution: upscale, train, distill, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List, download, convert and push model weights (model cards in models/).", no_args_is_help=True
)
app.add_typer(models_app, name="models")

console = Console()
err_console = Console(stderr=True)


def usage_error(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def run_error(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@app.command()
def upscale(
    input: Path = typer.Argument(..., help="Image file or folder of images."),
    output: Path = typer.Argument(..., help="Output folder (created if missing)."),
    method: str | None = typer.Option(
        None,
        "--method",
        "-m",
        help="SR method (default: the one --weights names; with neither, the bundled default model).",
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        "-w",
        help="Model name, local file/folder, Hub repo org/name[@revision], or 'random' (the "
        "architecture with random weights, for speed checks).",
    ),
    scale: float | None = typer.Option(
        None,
        "--scale",
        "-s",
        help="Output scale (default: the model's own; others are resized with Lanczos).",
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Sampling steps for multi-step methods (e.g. resshift)."
    ),
    tile: int = typer.Option(0, "--tile", "-t", help="Tile size in input pixels; 0 = no tiling."),
    tile_overlap: int = typer.Option(32, "--tile-overlap", help="Overlap between tiles in input pixels."),
    tile_space: str = typer.Option("auto", "--tile-space", help="auto | pixel | latent."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Tiles per forward pass."),
    device: str = typer.Option("auto", "--device", "-d", help="auto | cpu | cuda | cuda:N | mps."),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="auto (GPU: fp16; CPU: bf16 where native, else fp32) | fp32 | fp16 | bf16.",
    ),
    color_fix: str = typer.Option("none", "--color-fix", help="none | adain | wavelet."),
    seed: int = typer.Option(0, "--seed", help="Seed for the noise of stochastic methods."),
    ensemble: int = typer.Option(
        1, "--ensemble", help="Self-ensemble: average 1, 2, 4 or 8 flipped/transposed runs (k x time)."
    ),
    compile: bool = typer.Option(
        False, "--compile", help="torch.compile the networks (slow first image; faster after)."
    ),
    ext: str = typer.Option(
        "auto", "--ext", help="auto | png | jpg | webp | tif (auto keeps the input format)."
    ),
    suffix: str = typer.Option("", "--suffix", help="Appended to output file names (<stem><suffix>.<ext>)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing outputs (default: skip them)."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", help="Refuse inputs with more pixels (checked before decoding)."
    ),
    quality: int = typer.Option(95, "--quality", help="JPEG/WebP quality."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done, load no model."),
    no_download: bool = typer.Option(
        False, "--no-download", help="Never download weights (as SR1STEP_OFFLINE=1); say what is missing."
    ),
) -> None:
    """Upscale an image or a folder of images."""
    from .api import Upscaler, check_outscale

    if no_download:
        os.environ["SR1STEP_OFFLINE"] = "1"
    from .engine import EngineOptions
    from .upscale import UpscaleOptions, check_writable, plan_jobs

    try:
        options = UpscaleOptions(
            ext=ext,
            suffix=suffix,
            overwrite=overwrite,
            recursive=recursive,
            max_pixels=max_pixels,
            quality=quality,
        )
        check_outscale(scale)
        jobs = plan_jobs(input, output, options)
        engine_options = EngineOptions(
            device=device,
            dtype=dtype,
            tile=tile,
            tile_overlap=tile_overlap,
            tile_space=tile_space,
            batch_size=batch_size,
            color_fix=color_fix,
            seed=seed,
            compile=compile,
            ensemble=ensemble,
        )
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise usage_error(str(err)) from None
    if not jobs:
        raise usage_error(
            f"no images found in {input} "
            f"(PNG, JPEG, WebP, TIFF, BMP, GIF{'; try --recursive' if not recursive else ''})"
        )
    if dry_run:
        table = Table(title=f"dry run: {len(jobs)} image(s)")
        table.add_column("input", overflow="fold")
        table.add_column("output", overflow="fold")
        table.add_column("action")
        for job in jobs:
            action = "skip (exists)" if job.target.exists() and not overwrite else "upscale"
            table.add_row(str(job.source), str(job.target), action)
        console.print(table)
        return
    try:  # before any model loads: an unwritable output wastes no work
        check_writable(Path(os.path.commonpath([job.target.parent for job in jobs])))
    except PermissionError as err:
        raise usage_error(str(err)) from None
    with _exit_codes():
        upscaler = Upscaler(method, weights, scale=scale, steps=steps, options=engine_options)
    for note in upscaler.notes:
        err_console.print(f"[yellow]note:[/yellow] {note}")
    summary = _run_with_progress(jobs, upscaler, options)
    raise typer.Exit(summary.exit_code)


@contextlib.contextmanager
def _exit_codes():
    """Library exceptions -> one error line and the documented exit code: 1 for what is missing
    or cannot be loaded, 2 for a wrong request."""
    from .hub import WeightsNotFoundError
    from .training.checkpoint import CheckpointError
    from .weights import WeightFileError

    try:
        yield
    except (WeightsNotFoundError, WeightFileError, CheckpointError, FileNotFoundError) as err:
        raise run_error(str(err)) from None
    except ValueError as err:  # ConfigError included
        raise usage_error(str(err)) from None


def _run_with_progress(jobs, upscaler, options):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .upscale import Callbacks, Summary, run_jobs

    summary = Summary()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        images = progress.add_task("images", total=len(jobs))
        tiles = progress.add_task("tiles", total=1)

        def started(job, n_tiles):
            progress.update(tiles, description=f"tiles  {job.source.name}", total=n_tiles, completed=0)

        def tiles_done(done, total):
            progress.update(tiles, completed=done, total=total)

        def image_done(result):
            progress.advance(images)
            if not err_console.is_terminal:  # logs and pipes: one line per image
                where = f" -> {result.target}" if result.target else ""
                why = f": {result.reason}" if result.reason else ""
                err_console.print(
                    f"{result.status} {result.source}{where} ({result.seconds:.1f} s){why}", soft_wrap=True
                )

        summary.results = run_jobs(jobs, upscaler, options, Callbacks(started, tiles_done, image_done))
    _print_summary(summary)
    return summary


def _print_summary(summary) -> None:
    table = Table(title="sr1step upscale")
    table.add_column("done", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("seconds", justify="right")
    total = sum(r.seconds for r in summary.results)
    table.add_row(
        str(summary.count("done")),
        str(summary.count("skipped")),
        str(summary.count("failed")),
        f"{total:.1f}",
    )
    console.print(table)
    problems = [r for r in summary.results if r.status != "done" or r.reason]  # + notes of done files
    if problems:
        detail = Table(show_header=True)
        detail.add_column("file", overflow="fold")
        detail.add_column("status")
        detail.add_column("reason", overflow="fold")
        for r in problems:
            detail.add_row(str(r.source), r.status, r.reason)
        console.print(detail)


TRAIN_HELP = {
    "preset": "Named preset of the method (default: the method's paper preset; `tiny` runs on a CPU).",
    "config": "TOML run config merged over the preset (method, \\[model], \\[data], \\[train]).",
    "set": "Override one setting, e.g. --set train.lr=1e-4 --set data.gt_size=128 (repeatable).",
    "data": "Training HR images: a folder, a .txt file list, or 'builtin' (photos from scikit-image).",
    "output": "Run folder: config.toml, checkpoints/, logs/ (TensorBoard), samples/, export/.",
    "max_steps": "Stop after this many optimizer steps.",
    "resume": "Continue a run: 'latest' (newest checkpoint in --output) or a checkpoint folder.",
    "device": "auto | cpu | cuda | cuda:N | mps (multi-GPU: `accelerate launch -m sr1step.cli train ...`).",
    "print_config": "Print the resolved config as TOML and exit.",
}


def _train_command(
    kind,
    *,
    method,
    preset,
    config,
    overrides,
    data,
    output,
    max_steps,
    resume,
    device,
    print_config,
    teacher=None,
):
    from .config import load_file
    from .registry import training_method

    try:
        file_data = load_file(config) if config else None
        if resume and config is None and output is not None and (output / "config.toml").is_file():
            file_data = load_file(output / "config.toml")  # a resumed run keeps its own config
            if preset is not None:
                err_console.print(
                    f"[yellow]note:[/yellow] --preset {preset} is not applied on --resume: the run keeps "
                    f"{output / 'config.toml'} (with --set overrides on top)"
                )
    except (OSError, ValueError) as err:
        raise usage_error(f"cannot read the run config: {err}") from None
    values: dict = {}
    for section, key, value in (
        ("data", "train", data),
        ("train", "max_steps", max_steps),
        ("train", "device", device),
        ("model", "teacher", teacher),
    ):
        if value is not None:
            values.setdefault(section, {})[key] = value
    try:
        method_obj = training_method(method)
        run = method_obj.run_config(kind, preset, file_data, overrides, values)
    except ValueError as err:
        raise usage_error(str(err)) from None
    if print_config:
        typer.echo(run.to_toml())
        return
    if output is None:
        raise usage_error("--output is required (the run folder)")
    ckpts = output / "checkpoints"
    if not resume and ckpts.is_dir() and any(p.name.startswith("checkpoint-") for p in ckpts.iterdir()):
        raise usage_error(f"{output} already holds checkpoints; use --resume latest, or another --output")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .training.trainer import Trainer

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
    task = progress.add_task("train", total=run.train.max_steps, info="")

    def on_log(step, logs):
        losses = " ".join(
            f"{k.split('/')[-1]}={v:.4g}"
            for k, v in logs.items()
            if not k.startswith("lr/") and k != "it_per_s"
        )
        progress.update(task, completed=step, info=f"{losses} {logs.get('it_per_s', 0):.2f} it/s")
        if not console.is_terminal:  # logs and CI: one line per log step
            console.print(f"step {step}/{run.train.max_steps} {losses} it/s={logs.get('it_per_s', 0):.3g}")

    with _exit_codes(), progress:
        trainer = Trainer(run, method_obj.build_recipe, output, log=progress.console.print)
        progress.update(task, completed=trainer.step)
        result = trainer.fit(resume=resume, on_log=on_log)
    if result.interrupted:
        raise typer.Exit(130)  # as an interrupted shell command; the checkpoint is saved
    if result.main_process:
        console.print(f"exported weights: {result.export_dir}")


@app.command()
def train(
    method: str = typer.Option(..., "--method", "-m", help="Method to train (e.g. resshift, d3sr)."),
    output: Path | None = typer.Option(None, "--output", "-o", help=TRAIN_HELP["output"]),
    preset: str | None = typer.Option(None, "--preset", "-p", help=TRAIN_HELP["preset"]),
    config: Path | None = typer.Option(None, "--config", "-c", help=TRAIN_HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=TRAIN_HELP["set"]),
    data: str | None = typer.Option(None, "--data", help=TRAIN_HELP["data"]),
    max_steps: int | None = typer.Option(None, "--max-steps", help=TRAIN_HELP["max_steps"]),
    resume: str | None = typer.Option(None, "--resume", help=TRAIN_HELP["resume"]),
    device: str | None = typer.Option(None, "--device", help=TRAIN_HELP["device"]),
    print_config: bool = typer.Option(False, "--print-config", help=TRAIN_HELP["print_config"]),
) -> None:
    """Train a model from HR images (degradations made on the fly); export weights for upscale."""
    _train_command(
        "train",
        method=method,
        preset=preset,
        config=config,
        overrides=overrides,
        data=data,
        output=output,
        max_steps=max_steps,
        resume=resume,
        device=device,
        print_config=print_config,
    )


@app.command()
def distill(
    method: str = typer.Option(..., "--method", "-m", help="Distillation method (e.g. tadsr, rsd)."),
    teacher: str = typer.Option(..., "--teacher", help="Teacher model: a model name, weight folder or file."),
    output: Path | None = typer.Option(None, "--output", "-o", help=TRAIN_HELP["output"]),
    preset: str | None = typer.Option(None, "--preset", "-p", help=TRAIN_HELP["preset"]),
    config: Path | None = typer.Option(None, "--config", "-c", help=TRAIN_HELP["config"]),
    overrides: list[str] = typer.Option([], "--set", help=TRAIN_HELP["set"]),
    data: str | None = typer.Option(None, "--data", help=TRAIN_HELP["data"]),
    max_steps: int | None = typer.Option(None, "--max-steps", help=TRAIN_HELP["max_steps"]),
    resume: str | None = typer.Option(None, "--resume", help=TRAIN_HELP["resume"]),
    device: str | None = typer.Option(None, "--device", help=TRAIN_HELP["device"]),
    print_config: bool = typer.Option(False, "--print-config", help=TRAIN_HELP["print_config"]),
) -> None:
    """Distill a multi-step teacher into a one-step student (same options as train, plus --teacher)."""
    _train_command(
        "distill",
        method=method,
        preset=preset,
        config=config,
        overrides=overrides,
        data=data,
        output=output,
        max_steps=max_steps,
        resume=resume,
        device=device,
        print_config=print_config,
        teacher=teacher,
    )


@app.command()
def benchmark(
    datasets: list[str] = typer.Option(
        [],
        "--dataset",
        "-D",
        help="Test set (RealSR, DRealSR, DIV2K-Val, RealSet65), or a folder: HR/ + LR/ or LR only.",
    ),
    methods: list[str] = typer.Option(
        ["bicubic"],
        "--method",
        "-m",
        help="Method, optionally with weights: resshift:resshift-realsr-x4-v1. Repeatable.",
    ),
    metrics: str = typer.Option(
        "psnr,ssim,lpips,dists,fid,niqe,musiq,maniqa,clipiqa", "--metrics", help="Comma-separated metrics."
    ),
    output: Path = typer.Option(
        Path("benchmark-results"),
        "--output",
        "-o",
        help="Folder for results.json/csv/md, the score cache and SR images.",
    ),
    crop_border: int = typer.Option(
        0,
        "--crop-border",
        help="Pixels cropped from each border for PSNR/SSIM (papers: 0; classical SR: the scale).",
    ),
    metric_weights: Path | None = typer.Option(
        None, "--metric-weights", help="Folder with pyiqa weights (DIR/pyiqa/, DIR/checkpoints/, DIR/clip/)."
    ),
    save_images: bool = typer.Option(
        False,
        "--save-images",
        help="Keep the SR images (OUTPUT/sr/...); later metrics then need no recomputation.",
    ),
    reference: str = typer.Option(
        "none", "--reference", help="'paper': show published numbers beside ours, with the delta."
    ),
    speed: bool = typer.Option(
        False, "--speed", help="Measure NFE, parameters, latency, throughput and peak memory per method."
    ),
    speed_size: int = typer.Option(
        128, "--speed-size", help="LR input size for --speed (128 -> 512 output at x4)."
    ),
    speed_runs: int = typer.Option(10, "--speed-runs", help="Timed runs (median reported)."),
    speed_warmup: int = typer.Option(3, "--speed-warmup", help="Untimed warm-up runs."),
    speed_batch: int = typer.Option(1, "--speed-batch", help="Images per timed run."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps for multi-step methods."),
    device: str = typer.Option("auto", "--device", "-d", help="auto | cpu | cuda | cuda:N | mps."),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="auto (GPU: fp16; CPU: bf16 where native, else fp32) | fp32 | fp16 | bf16.",
    ),
    tile: int = typer.Option(0, "--tile", "-t", help="Tile size in LR pixels (0 = whole image)."),
    tile_overlap: int = typer.Option(32, "--tile-overlap", help="Tile overlap in LR pixels."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Tiles per forward pass."),
    color_fix: str = typer.Option("none", "--color-fix", help="none | adain | wavelet."),
    seed: int = typer.Option(0, "--seed", help="Noise seed of stochastic methods."),
    ensemble: int = typer.Option(
        1, "--ensemble", help='Self-ensemble over 1, 2, 4 or 8 orientations (the papers\' "+" rows).'
    ),
    compile: bool = typer.Option(
        False, "--compile", help="torch.compile the networks (timed after the warm-up runs)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="Only the first N images of each set (quick checks)."
    ),
    no_download: bool = typer.Option(
        False, "--no-download", help="Never download weights (as SR1STEP_OFFLINE=1)."
    ),
) -> None:
    """Evaluate methods on test sets with the papers' metric settings; speed and size with --speed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if no_download:
        os.environ["SR1STEP_OFFLINE"] = "1"

    from .benchmark import (
        Benchmark,
        BenchOptions,
        MethodRef,
        dataset_provenance,
        environment,
        load_dataset,
        measure_speed,
        reference_rows,
        unique_labels,
        write_results,
    )
    from .config import ConfigError
    from .data.testsets import TestSetError
    from .engine import EngineOptions
    from .hub import WeightsNotFoundError
    from .metrics import get_spec, set_metric_weights_dir
    from .training.checkpoint import CheckpointError
    from .weights import WeightFileError

    LOAD_ERRORS = (WeightsNotFoundError, WeightFileError, CheckpointError, ValueError, OSError, RuntimeError)
    from .registry import get_method

    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    try:
        for n in names:
            get_spec(n)
        refs = unique_labels([MethodRef.parse(m, steps) for m in methods])
        for ref in refs:
            get_method(ref.method)
        engine_options = EngineOptions(
            device=device,
            dtype=dtype,
            tile=tile,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
            color_fix=color_fix,
            seed=seed,
            compile=compile,
            ensemble=ensemble,
        )
    except ValueError as err:
        raise usage_error(str(err)) from None
    if reference not in ("none", "paper"):
        raise usage_error("--reference takes 'paper' or 'none'") from None
    if not datasets and not speed:
        raise usage_error("give at least one --dataset, or --speed") from None
    if metric_weights is not None:
        set_metric_weights_dir(metric_weights)
    opts = BenchOptions(
        metrics=names, crop_border=crop_border, engine=engine_options, limit=limit, save_images=save_images
    )
    dev = opts.device
    rows, speed_rows, failed = [], [], False
    from .upscale import check_writable

    try:
        check_writable(output)  # before any model runs: results that cannot be written are lost
    except PermissionError as err:
        raise run_error(str(err)) from None
    try:
        bench = Benchmark(output, opts) if datasets else None
        loaded = [load_dataset(d) for d in datasets]
    except (TestSetError, ConfigError) as err:
        raise run_error(str(err)) from None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        for ref in refs:
            for name, folder, paired in loaded:
                task = progress.add_task(f"{ref.label} on {name}", total=len(paired.pairs))
                try:
                    rows.append(
                        bench.evaluate(
                            ref,
                            name,
                            folder,
                            paired,
                            lambda d, t, task=task: progress.update(task, completed=d, total=t),
                        )
                    )
                except LOAD_ERRORS as err:  # this method's row is lost, never the others'
                    err_console.print(f"[red]{ref.label}: {err}[/red]")
                    failed = True
                progress.remove_task(task)
            if speed:
                try:
                    speed_rows.append(
                        measure_speed(ref, engine_options, speed_size, speed_batch, speed_runs, speed_warmup)
                    )
                except LOAD_ERRORS as err:
                    err_console.print(f"[red]{ref.label}: {err}[/red]")
                    failed = True
    pub = reference_rows(rows) if reference == "paper" else []
    provenance = {name: dataset_provenance(name, folder) for name, folder, _ in loaded}
    env = environment(dev, refs, provenance)
    if ensemble > 1:  # the papers' "+" rows: not comparable with one-pass published figures
        env["self_ensemble"] = ensemble
        console.print(f"[yellow]scores are self-ensembles of {ensemble} orientations[/yellow]")
    write_results(output, rows, speed_rows, pub, env, names, crop_border)
    _print_benchmark(rows, speed_rows, pub, names)
    console.print(f"results: {output / 'results.md'}")
    if save_images and loaded:
        from .benchmark.report import write_report

        console.print(f"report: {write_report(output, rows, speed_rows, pub, names, loaded)}")
    failed = failed or any(r.problems for r in rows)
    raise typer.Exit(1 if failed else 0)


def _print_benchmark(rows, speed_rows, pub, names):
    from .benchmark import result_notes, result_tables

    # Metrics with no score anywhere are explained below the table, not shown as columns of n/a.
    shown = [m for m in names if any(m in r.scores for r in rows)]
    for title, head, cells in result_tables(rows, speed_rows, pub, shown):
        table = Table(title=title)
        for col in head:
            table.add_column(col)
        for row in cells:
            table.add_row(*row)
        console.print(table)
        if title == "sr1step benchmark":
            for note in result_notes(rows):
                console.print(f"[yellow]{note}[/yellow]")


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show every model card and whether its files are present."""
    import urllib.parse

    from .hub import bundled_dir, card_status, load_cards, local_dir

    cards = load_cards()
    rows = []
    for card in cards.values():
        rows.append(
            {
                "name": card.name,
                "method": card.method,
                "scale": card.scale,
                "status": card_status(card),
                "source": f"hf:{card.repo_id}@{card.revision[:7]}" if card.on_hub else card.source_url,
                "license": card.license,
                "commercial_use": card.commercial_use,
                "folder": str((bundled_dir(card) if card.bundled else None) or local_dir(card)),
                "summary": card.summary,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="sr1step models (licences: --json, or the cards in models/)")
    for col in ("name", "method", "scale", "status", "source", "commercial use"):
        table.add_column(col, no_wrap=col == "name", overflow="fold")
    colours = {
        "bundled": "green",
        "converted": "green",
        "present": "green",
        "partial": "yellow",
        "missing": "red",
    }
    for card, r in zip(cards.values(), rows):
        status = f"[{colours[r['status']]}]{r['status']}[/]"
        source = f"hub {card.repo_id}" if card.on_hub else urllib.parse.urlparse(card.source_url).netloc
        source = "bundled" if card.bundled else source
        table.add_row(
            r["name"], r["method"], str(r["scale"]), status, source, "yes" if card.commercial_use else "no"
        )
    console.print(table)


@models_app.command("download")
def models_download(
    names: list[str] = typer.Argument(..., help="Model names (see `sr1step models list`)."),
) -> None:
    """Fetch a model's files from the Hub at its pinned revision (or explain where to get them)."""
    from .config import ConfigError
    from .hub import WeightsNotFoundError, download_card, get_card

    failed = False
    for name in names:
        try:
            card = get_card(name)
        except ConfigError as err:
            raise usage_error(str(err)) from None
        try:
            paths = download_card(card)
        except WeightsNotFoundError as err:
            err_console.print(f"[red]{err}[/red]")
            failed = True
            continue
        for filename, path in paths.items():
            console.print(f"{card.name}: {filename} -> {path}")
    raise typer.Exit(1 if failed else 0)


@models_app.command("push")
def models_push(
    folder: Path = typer.Argument(..., help="A weight folder written by train/distill (RUN/export)."),
    repo_id: str = typer.Argument(..., help="Hub repo ORG/NAME (created if missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the model card and the file list; upload nothing."
    ),
) -> None:
    """Upload trained weights to the Hugging Face Hub with a generated model card."""
    from .publish import plan_push, push

    with _exit_codes():
        plan = plan_push(folder, repo_id, private)
    if dry_run:
        typer.echo(plan.card)
        typer.echo("files: " + ", ".join(plan.files))
        return
    try:
        revision = push(plan)
    except Exception as err:  # network, authentication, permissions: one line
        raise run_error(
            f"upload to {repo_id} failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    console.print(f"pushed {folder} -> {repo_id}@{revision}")
    console.print(f"load it with: sr1step upscale in/ out/ --weights {repo_id}@{revision} --method METHOD")


@models_app.command("convert")
def models_convert(
    name: str = typer.Argument(..., help="Model name, or a path to an official checkpoint file."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Output folder (default: the model's folder)."
    ),
    model: str | None = typer.Option(
        None, "--as", help="For a file path: the model card whose format it has."
    ),
) -> None:
    """Convert official checkpoints to sr1step's format (safetensors + config.json)."""
    from .config import ConfigError
    from .convert import convert_model
    from .hub import WeightsNotFoundError
    from .weights import WeightFileError

    try:
        out = convert_model(name, output=output, as_card=model)
    except (ConfigError, ValueError) as err:
        raise usage_error(str(err)) from None
    except (WeightsNotFoundError, WeightFileError, KeyError) as err:
        raise run_error(str(err)) from None
    console.print(f"converted -> {out}")


def main() -> None:
    app()  # Ctrl-C: typer exits with 130, no traceback; outputs are atomic, nothing half-written stays


if __name__ == "__main__":
    main()
