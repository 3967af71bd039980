"""The ``sr1step`` command line: a thin Typer shell over the library.

Exit codes: 0 everything done; 1 some inputs failed (the rest were written) or the run could not
start (missing weights); 2 bad usage. Heavy imports (torch, diffusers) happen inside commands so
``sr1step --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

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
models_app = typer.Typer(help="List, download and convert model weights (model cards in models/).", no_args_is_help=True)
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
    method: Optional[str] = typer.Option(None, "--method", "-m", help="SR method (default: the embedded default, bicubic)."),
    weights: Optional[str] = typer.Option(
        None, "--weights", "-w", help="Model name, local file/folder, or Hub repo org/name[@revision]."
    ),
    scale: Optional[float] = typer.Option(None, "--scale", "-s", help="Output scale (default: the model's own; others are resized with Lanczos)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps for multi-step methods (e.g. resshift)."),
    tile: int = typer.Option(0, "--tile", "-t", help="Tile size in input pixels; 0 = no tiling."),
    tile_overlap: int = typer.Option(32, "--tile-overlap", help="Overlap between tiles in input pixels."),
    tile_space: str = typer.Option("auto", "--tile-space", help="auto | pixel | latent."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Tiles per forward pass."),
    device: str = typer.Option("auto", "--device", "-d", help="auto | cpu | cuda | cuda:N | mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto | fp32 | fp16 | bf16."),
    color_fix: str = typer.Option("none", "--color-fix", help="none | adain | wavelet."),
    seed: int = typer.Option(0, "--seed", help="Seed for the noise of stochastic methods."),
    ext: str = typer.Option("auto", "--ext", help="auto | png | jpg | webp | tif (auto keeps the input format)."),
    suffix: str = typer.Option("", "--suffix", help="Appended to output file names (<stem><suffix>.<ext>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: skip them)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", help="Refuse inputs with more pixels (checked before decoding)."),
    quality: int = typer.Option(95, "--quality", help="JPEG/WebP quality."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done, load no model."),
) -> None:
    """Upscale an image or a folder of images."""
    from .upscale import UpscaleOptions, plan_jobs

    options = UpscaleOptions(ext, suffix, overwrite, recursive, max_pixels, scale, quality)
    try:
        jobs = plan_jobs(input, output, options)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise usage_error(str(err))
    if not jobs:
        raise usage_error(f"no images found in {input} (PNG, JPEG, WebP, TIFF, BMP{'; try --recursive' if not recursive else ''})")
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
    engine = _build_engine(method, weights, steps, scale, device, dtype, tile, tile_overlap, tile_space, batch_size, color_fix, seed)
    summary = _run_with_progress(jobs, engine, options)
    raise typer.Exit(summary.exit_code)


def _build_engine(method, weights, steps, scale, device, dtype, tile, tile_overlap, tile_space, batch_size, color_fix, seed):
    from .colorfix import COLOR_FIXES
    from .config import ConfigError
    from .devices import resolve_device, resolve_dtype
    from .engine import Engine
    from .hub import WeightsNotFoundError
    from .registry import DEFAULT_METHOD, get_method
    from .weights import UnsafeCheckpointError

    if color_fix not in COLOR_FIXES:
        raise usage_error(f"unknown --color-fix {color_fix!r}; use one of {', '.join(COLOR_FIXES)}")
    try:
        method_cls = get_method(method or DEFAULT_METHOD)
        dev = resolve_device(device)
    except (ConfigError, ValueError) as err:
        raise usage_error(str(err))
    try:
        generator = method_cls.load_generator(weights, steps=steps, scale=scale)
    except (WeightsNotFoundError, UnsafeCheckpointError) as err:
        raise run_error(str(err))
    except (ConfigError, ValueError) as err:
        raise usage_error(str(err))
    try:
        dt = resolve_dtype(dtype, dev, generator.supports_half)
        return Engine(
            generator,
            device=dev,
            dtype=dt,
            tile=tile,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
            color_fix=color_fix,
            tile_space=tile_space,
            seed=seed,
        )
    except ValueError as err:
        raise usage_error(str(err))


def _run_with_progress(jobs, engine, options):
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

        summary.results = run_jobs(jobs, engine, options, Callbacks(started, tiles_done, image_done))
    _print_summary(summary)
    return summary


def _print_summary(summary) -> None:
    table = Table(title="sr1step upscale")
    table.add_column("done", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("seconds", justify="right")
    total = sum(r.seconds for r in summary.results)
    table.add_row(str(summary.count("done")), str(summary.count("skipped")), str(summary.count("failed")), f"{total:.1f}")
    console.print(table)
    problems = [r for r in summary.results if r.status != "done"]
    if problems:
        detail = Table(show_header=True)
        detail.add_column("file", overflow="fold")
        detail.add_column("status")
        detail.add_column("reason", overflow="fold")
        for r in problems:
            detail.add_row(str(r.source), r.status, r.reason)
        console.print(detail)


def _not_yet(command: str, issue: str) -> typer.Exit:
    err_console.print(f"[yellow]sr1step {command} is not yet implemented[/yellow] (tracked in the {issue} issue).")
    return typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Train a model from HR images (arrives with the training engine)."""
    raise _not_yet("train", "training-engine")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def distill(ctx: typer.Context) -> None:
    """Distill a multi-step teacher into a one-step student (arrives with the distillation methods)."""
    raise _not_yet("distill", "distillation")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def benchmark(ctx: typer.Context) -> None:
    """Evaluate methods on the standard test sets (arrives with the benchmark issue)."""
    raise _not_yet("benchmark", "benchmark")


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show every model card and whether its files are present."""
    import urllib.parse

    from .hub import card_status, load_cards, local_dir

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
                "folder": str(local_dir(card)),
                "summary": card.summary,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="sr1step models (licences: --json, or the cards in models/)")
    for col in ("name", "method", "scale", "status", "source", "commercial use"):
        table.add_column(col, no_wrap=col == "name", overflow="fold")
    colours = {"converted": "green", "present": "green", "partial": "yellow", "missing": "red"}
    for card, r in zip(cards.values(), rows):
        status = f"[{colours[r['status']]}]{r['status']}[/]"
        source = f"hub {card.repo_id}" if card.on_hub else urllib.parse.urlparse(card.source_url).netloc
        table.add_row(r["name"], r["method"], str(r["scale"]), status, source, "yes" if card.commercial_use else "no")
    console.print(table)


@models_app.command("download")
def models_download(names: list[str] = typer.Argument(..., help="Model names (see `sr1step models list`).")) -> None:
    """Fetch a model's files from the Hub at its pinned revision (or explain where to get them)."""
    from .config import ConfigError
    from .hub import WeightsNotFoundError, download_card, get_card

    failed = False
    for name in names:
        try:
            card = get_card(name)
        except ConfigError as err:
            raise usage_error(str(err))
        try:
            paths = download_card(card)
        except WeightsNotFoundError as err:
            err_console.print(f"[red]{err}[/red]")
            failed = True
            continue
        for filename, path in paths.items():
            console.print(f"{card.name}: {filename} -> {path}")
    raise typer.Exit(1 if failed else 0)


@models_app.command("convert")
def models_convert(
    name: str = typer.Argument(..., help="Model name, or a path to an official checkpoint file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder (default: the model's folder)."),
    model: Optional[str] = typer.Option(None, "--as", help="For a file path: the model card whose format it has."),
) -> None:
    """Convert official checkpoints to sr1step's format (safetensors + config.json)."""
    from .config import ConfigError
    from .convert import convert_model
    from .hub import WeightsNotFoundError
    from .weights import UnsafeCheckpointError

    try:
        out = convert_model(name, output=output, as_card=model)
    except (ConfigError, ValueError) as err:
        raise usage_error(str(err))
    except (WeightsNotFoundError, UnsafeCheckpointError, KeyError) as err:
        raise run_error(str(err))
    console.print(f"converted -> {out}")


def main() -> None:
    import logging

    # bitsandbytes (pulled in by pyiqa) logs a CPU-kernel warning when diffusers imports it.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    app()


if __name__ == "__main__":
    main()
