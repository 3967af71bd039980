"""``sr1step upscale``: plan the jobs, load one Upscaler, run it with a progress bar, summarise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import (
    BatchSize,
    ColorFix,
    Compile,
    Device,
    Dtype,
    Ensemble,
    NoDownload,
    Seed,
    Steps,
    Tile,
    TileOverlap,
    console,
    engine_options,
    err_console,
    exit_codes,
    launch_place,
    note,
    offline,
    usage_error,
)

Method = Annotated[
    str | None,
    typer.Option(
        "--method",
        "-m",
        help="SR method (default: the one --weights names; with neither, the bundled default model).",
    ),
]
Weights = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        help="Model name, local file/folder, Hub repo org/name\\[@revision], or 'random' (the "
        "architecture with random weights, for speed checks).",
    ),
]
Scale = Annotated[
    float | None,
    typer.Option(
        "--scale", "-s", help="Output scale (default: the model's own; others are resized with Lanczos)."
    ),
]
TileSpace = Annotated[str, typer.Option("--tile-space", help="auto | pixel | latent.")]
Ext = Annotated[
    str, typer.Option("--ext", help="auto | png | jpg | webp | tif (auto keeps the input format).")
]
Suffix = Annotated[
    str, typer.Option("--suffix", help="Appended to output file names (<stem><suffix>.<ext>).")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them).")
]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
MaxPixels = Annotated[
    int, typer.Option("--max-pixels", help="Refuse inputs with more pixels (checked before decoding).")
]
Quality = Annotated[int, typer.Option("--quality", help="JPEG/WebP quality.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List what would be done, load no model.")]


def upscale(
    input: Annotated[Path, typer.Argument(help="Image file or folder of images.")],
    output: Annotated[Path, typer.Argument(help="Output folder (created if missing).")],
    method: Method = None,
    weights: Weights = None,
    scale: Scale = None,
    steps: Steps = None,
    tile: Tile = 0,
    tile_overlap: TileOverlap = 32,
    tile_space: TileSpace = "auto",
    batch_size: BatchSize = 1,
    device: Device = "auto",
    dtype: Dtype = "auto",
    color_fix: ColorFix = "none",
    seed: Seed = 0,
    ensemble: Ensemble = 1,
    compile: Compile = False,
    ext: Ext = "auto",
    suffix: Suffix = "",
    overwrite: Overwrite = False,
    recursive: Recursive = False,
    max_pixels: MaxPixels = 100_000_000,
    quality: Quality = 95,
    dry_run: DryRun = False,
    no_download: NoDownload = False,
) -> None:
    """Upscale an image or a folder of images."""
    flags = dict(locals())
    offline(no_download)
    from ..api import Upscaler, check_outscale
    from ..distributed import finish
    from ..files import check_writable
    from ..upscale import UpscaleOptions, plan_jobs

    shard, device = launch_place(device)
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
        engine = engine_options(flags, device=device)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise usage_error(str(err)) from None
    if not jobs:
        hint = "; try --recursive" if not recursive else ""
        raise usage_error(f"no images found in {input} (PNG, JPEG, WebP, TIFF, BMP, GIF{hint})")
    if dry_run:
        return _print_plan(jobs, overwrite) if shard.main else None
    root = Path(os.path.commonpath([job.target.parent for job in jobs]))
    try:  # before any model loads: an unwritable output wastes no work
        check_writable(root)
    except PermissionError as err:
        raise usage_error(str(err)) from None
    with exit_codes():
        upscaler = Upscaler(method, weights, scale=scale, steps=steps, options=engine)
    for message in upscaler.notes if shard.main else ():
        note(message)
    summary = _run_with_progress(jobs, upscaler, options, shard, root)
    raise typer.Exit(finish(summary.exit_code if shard.main else None, shard))


def _print_plan(jobs, overwrite: bool) -> None:
    table = Table(title=f"dry run: {len(jobs)} image(s)")
    table.add_column("input", overflow="fold")
    table.add_column("output", overflow="fold")
    table.add_column("action")
    for job in jobs:
        action = "skip (exists)" if job.target.exists() and not overwrite else "upscale"
        table.add_row(str(job.source), str(job.target), action)
    console.print(table)


def _run_with_progress(jobs, upscaler, options, shard, root):
    """Run this process's share; rank 0 shows the whole job's bar and prints the one summary."""
    import threading

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..upscale import Callbacks, SharedProgress, Summary, gather_results, run_jobs, shard_jobs

    (jobs, mine), board = shard_jobs(jobs, shard), SharedProgress(root, shard)
    summary, stop = Summary(), threading.Event()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not shard.main) as progress:
        images = progress.add_task("images", total=len(jobs))
        tiles = progress.add_task("tiles", total=1)

        def started(job, n_tiles):
            progress.update(tiles, description=f"tiles  {job.source.name}", total=n_tiles, completed=0)

        def tiles_done(done, total):
            progress.update(tiles, completed=done, total=total)

        def image_done(result):
            board.advance()
            progress.update(images, completed=board.total())
            if not err_console.is_terminal:  # logs and pipes: one line per image (each rank its own)
                where = f" -> {result.target}" if result.target else ""
                why = f": {result.reason}" if result.reason else ""
                rank = f"\\[rank {shard.rank}] " if shard.distributed else ""
                err_console.print(
                    f"{rank}{result.status} {result.source}{where} ({result.seconds:.1f} s){why}",
                    soft_wrap=True,
                )

        def follow_others():  # rank 0, between its own images and after them
            while not stop.wait(0.5):
                progress.update(images, completed=board.total())

        watcher = threading.Thread(target=follow_others, daemon=True)
        if shard.main and shard.distributed:
            watcher.start()
        try:
            results = run_jobs(mine, upscaler, options, Callbacks(started, tiles_done, image_done))
            summary.results = gather_results(results, jobs, shard) or []
        finally:
            stop.set()
            board.close()
    if shard.main:
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
