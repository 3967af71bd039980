"""The ``sr1step`` command line: a thin Typer shell over the library, one module per command group.

Exit codes: 0 everything done; 1 some inputs failed (the rest were written) or the run could not
start (missing weights); 2 bad usage. Heavy imports (torch, diffusers) happen inside commands so
``sr1step --help`` stays fast.
"""

from __future__ import annotations

import typer

from .benchmark import benchmark
from .models import models_app
from .train import distill, train
from .upscale import upscale

app = typer.Typer(
    name="sr1step",
    help="One-step diffusion image super-resolution: upscale, train, distill, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (upscale, train, distill, benchmark):
    app.command()(command)
app.add_typer(models_app, name="models")


def main() -> None:
    app()  # Ctrl-C: typer exits with 130, no traceback; outputs are atomic, nothing half-written stays
