"""``sr1step models``: list, download, push and convert model weights (the cards in models/)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .common import console, err_console, exit_codes, run_error, usage_error

models_app = typer.Typer(
    help="List, download, convert and push model weights (model cards in models/).", no_args_is_help=True
)


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show every model card and whether its files are present."""
    import urllib.parse

    from ..hub import bundled_dir, card_status, load_cards, local_dir

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
    from ..config import ConfigError
    from ..hub import WeightsNotFoundError, download_card, get_card

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
    from ..publish import plan_push, push

    with exit_codes():
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
    from ..config import ConfigError
    from ..convert import convert_model
    from ..hub import WeightsNotFoundError
    from ..weights import WeightFileError

    try:
        out = convert_model(name, output=output, as_card=model)
    except (ConfigError, ValueError) as err:
        raise usage_error(str(err)) from None
    except (WeightsNotFoundError, WeightFileError, KeyError) as err:
        raise run_error(str(err)) from None
    console.print(f"converted -> {out}")
