"""``sr1step models convert``: official checkpoints -> sr1step weight folders.

A converter takes a model card, the paths of its official files (and of the cards it requires)
and an output folder, and writes ``config.json`` plus safetensors there. The converters are a
plain dict filled by explicit imports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import unknown_name_error
from .hub import ModelCard, converted_dir, download_card, get_card

Converter = Callable[[ModelCard, dict[str, Path], Path], None]


def converters() -> dict[str, Converter]:
    from .methods.resshift import convert_resshift_card

    return {"resshift": convert_resshift_card}


def convert_model(name_or_path: str, *, output: Path | None = None, as_card: str | None = None) -> Path:
    """Convert a named model (its files found locally) or an official file given by path."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        if as_card is None:
            raise ValueError("converting a file by path needs --as MODEL (the model card whose format it has)")
        card = get_card(as_card)
        files = {card.files[0]: path}
    else:
        card = get_card(name_or_path)
        files = download_card(card, with_requirements=False)
    if not card.converter:
        raise ValueError(f"model {card.name!r} has no converter (native format, or converted with the models that need it)")
    table = converters()
    if card.converter not in table:
        raise unknown_name_error("converter", card.converter, list(table))
    out = Path(output) if output else converted_dir(card)
    table[card.converter](card, files, out)
    return out
