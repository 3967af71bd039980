"""``sr1step benchmark``: build the request, run it with a progress bar, print the tables."""

from __future__ import annotations

import dataclasses
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
    launch_place,
    offline,
    run_error,
    usage_error,
)

Datasets = Annotated[
    list[str],
    typer.Option(
        "--dataset",
        "-D",
        help="Test set (RealSR, DRealSR, DIV2K-Val, RealSet65), or a folder: HR/ + LR/ or LR only.",
    ),
]
Methods = Annotated[
    list[str],
    typer.Option(
        "--method", "-m", help="Method, optionally with weights: resshift:resshift-realsr-x4-v1. Repeatable."
    ),
]
Metrics = Annotated[str, typer.Option("--metrics", help="Comma-separated metrics.")]
Output = Annotated[
    Path,
    typer.Option("--output", "-o", help="Folder for results.json/csv/md, the score cache and SR images."),
]
CropBorder = Annotated[
    int,
    typer.Option(
        "--crop-border",
        help="Pixels cropped from each border for PSNR/SSIM (papers: 0; classical SR: the scale).",
    ),
]
MetricWeights = Annotated[
    Path | None,
    typer.Option(
        "--metric-weights", help="Folder with pyiqa weights (DIR/pyiqa/, DIR/checkpoints/, DIR/clip/)."
    ),
]
SaveImages = Annotated[
    bool,
    typer.Option(
        "--save-images", help="Keep the SR images (OUTPUT/sr/...); later metrics then need no recomputation."
    ),
]
Reference = Annotated[
    str, typer.Option("--reference", help="'paper': show published numbers beside ours, with the delta.")
]
Speed = Annotated[
    bool,
    typer.Option("--speed", help="Measure NFE, parameters, latency, throughput and peak memory per method."),
]
SpeedSize = Annotated[
    int, typer.Option("--speed-size", help="LR input size for --speed (128 -> 512 output at x4).")
]
SpeedRuns = Annotated[int, typer.Option("--speed-runs", help="Timed runs (median reported).")]
SpeedWarmup = Annotated[int, typer.Option("--speed-warmup", help="Untimed warm-up runs.")]
SpeedBatch = Annotated[int, typer.Option("--speed-batch", help="Images per timed run.")]
Limit = Annotated[
    int | None, typer.Option("--limit", help="Only the first N images of each set (quick checks).")
]


def benchmark(
    datasets: Datasets = [],  # noqa: B006 - typer reads the default, never mutates it
    methods: Methods = ["bicubic"],  # noqa: B006
    metrics: Metrics = "psnr,ssim,lpips,dists,fid,niqe,musiq,maniqa,clipiqa",
    output: Output = Path("benchmark-results"),
    crop_border: CropBorder = 0,
    metric_weights: MetricWeights = None,
    save_images: SaveImages = False,
    reference: Reference = "none",
    speed: Speed = False,
    speed_size: SpeedSize = 128,
    speed_runs: SpeedRuns = 10,
    speed_warmup: SpeedWarmup = 3,
    speed_batch: SpeedBatch = 1,
    steps: Steps = None,
    device: Device = "auto",
    dtype: Dtype = "auto",
    tile: Tile = 0,
    tile_overlap: TileOverlap = 32,
    batch_size: BatchSize = 1,
    color_fix: ColorFix = "none",
    seed: Seed = 0,
    ensemble: Ensemble = 1,
    compile: Compile = False,
    limit: Limit = None,
    no_download: NoDownload = False,
) -> None:
    """Evaluate methods on test sets with the papers' metric settings; speed and size with --speed."""
    flags = dict(locals())
    offline(no_download)
    from ..benchmark.session import BenchmarkRequest, plan_benchmark, run_benchmark
    from ..config import ConfigError
    from ..data.testsets import TestSetError
    from ..distributed import finish

    shard, device = launch_place(device)

    try:
        engine = engine_options(flags, device=device)
        # the request's fields are this command's flags of the same names
        named = {f.name: flags[f.name] for f in dataclasses.fields(BenchmarkRequest) if f.name != "engine"}
        request = BenchmarkRequest(**named, engine=engine)
        plan = plan_benchmark(request)
    except ValueError as err:
        raise usage_error(str(err)) from None
    try:
        result = _run_with_progress(plan, run_benchmark, shard)
    except (PermissionError, TestSetError, ConfigError) as err:
        raise run_error(str(err)) from None
    if not shard.main:  # rank 0 reports for every process
        raise typer.Exit(finish(None, shard))
    for line in result.errors:
        err_console.print(f"[red]{line}[/red]")
    if ensemble > 1:
        console.print(f"[yellow]scores are self-ensembles of {ensemble} orientations[/yellow]")
    _print_tables(result)
    console.print(f"results: {output / 'results.md'}")
    if result.report is not None:
        console.print(f"report: {result.report}")
    raise typer.Exit(finish(1 if result.failed else 0, shard))


def _run_with_progress(plan, run, shard):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    tasks: dict = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
        disable=not shard.main,
    ) as progress:

        def update(label: str, done: int, total: int) -> None:
            if not label:  # the current task is over
                for task in tasks.values():
                    progress.remove_task(task)
                tasks.clear()
                return
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        return run(plan, update, shard)


def _print_tables(result) -> None:
    from ..benchmark import result_notes, result_tables

    # Metrics with no score anywhere are explained below the table, not shown as columns of n/a.
    shown = [m for m in result.metrics if any(m in r.scores for r in result.rows)]
    for title, head, cells in result_tables(result.rows, result.speed_rows, result.published, shown):
        table = Table(title=title)
        for col in head:
            table.add_column(col)
        for row in cells:
            table.add_row(*row)
        console.print(table)
        if title == "sr1step benchmark":
            for note in result_notes(result.rows):
                console.print(f"[yellow]{note}[/yellow]")
