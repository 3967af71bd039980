"""What every command shares: the consoles, exit codes, and the engine options as typed flags."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def usage_error(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def run_error(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def note(message: str) -> None:
    err_console.print(f"[yellow]note:[/yellow] {message}")


@contextlib.contextmanager
def exit_codes():
    """Library exceptions -> one error line and the documented exit code: 1 for what is missing
    or cannot be loaded, 2 for a wrong request."""
    from ..hub import WeightsNotFoundError
    from ..training.checkpoint import CheckpointError
    from ..weights import WeightFileError

    try:
        yield
    except (WeightsNotFoundError, WeightFileError, CheckpointError, FileNotFoundError) as err:
        raise run_error(str(err)) from None
    except ValueError as err:  # ConfigError included
        raise usage_error(str(err)) from None


def launch_place(device: str):
    """(this process's Shard, its device): one process keeps ``device``; in an `accelerate launch`
    each process takes its own GPU (or the CPU, with ``--device cpu`` or no GPU)."""
    from ..distributed import init

    shard = init(cpu=device == "cpu")
    return shard, shard.device if shard.distributed and device in ("auto", "cuda") else device


def engine_options(flags: dict, **given):
    """The EngineOptions a command's flags of the same names ask for (``given`` wins); a flag a
    command lacks (benchmark has no --tile-space) keeps its default. ValueError if invalid."""
    import dataclasses

    from ..engine import EngineOptions

    names = {f.name for f in dataclasses.fields(EngineOptions)}
    return EngineOptions(**{**{k: v for k, v in flags.items() if k in names}, **given})


def offline(no_download: bool) -> None:
    if no_download:
        os.environ["SR1STEP_OFFLINE"] = "1"


# --- engine options, as flags of upscale and benchmark ----------------------------------------------

Steps = Annotated[
    int | None, typer.Option("--steps", help="Sampling steps for multi-step methods (e.g. resshift).")
]
Device = Annotated[str, typer.Option("--device", "-d", help="auto | cpu | cuda | cuda:N | mps.")]
Dtype = Annotated[
    str,
    typer.Option("--dtype", help="auto (GPU: fp16; CPU: bf16 where native, else fp32) | fp32 | fp16 | bf16."),
]
Tile = Annotated[int, typer.Option("--tile", "-t", help="Tile size in input (LR) pixels; 0 = no tiling.")]
TileOverlap = Annotated[int, typer.Option("--tile-overlap", help="Overlap between tiles in input pixels.")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Tiles per forward pass.")]
ColorFix = Annotated[str, typer.Option("--color-fix", help="none | adain | wavelet.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for the noise of stochastic methods.")]
Ensemble = Annotated[
    int,
    typer.Option(
        "--ensemble",
        help='Self-ensemble: average 1, 2, 4 or 8 flipped/transposed runs (k x time; the papers\' "+" rows).',
    ),
]
Compile = Annotated[
    bool, typer.Option("--compile", help="torch.compile the networks (slow first image; faster after).")
]
NoDownload = Annotated[
    bool,
    typer.Option("--no-download", help="Never download weights (as SR1STEP_OFFLINE=1); say what is missing."),
]
