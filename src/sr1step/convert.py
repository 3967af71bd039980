"""``sr1step models convert``: official checkpoints -> sr1step weight folders.

The card's method does the conversion (``Method.convert_card``): it takes the card, the paths of
its official files and an output folder, and writes ``config.json`` plus safetensors there.
"""

from __future__ import annotations

from pathlib import Path

from .hub import converted_dir, download_card, get_card
from .registry import METHODS


def convert_model(name_or_path: str, *, output: Path | None = None, as_card: str | None = None) -> Path:
    """Convert a named model (its files found locally) or an official file given by path."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        if as_card is None:
            raise ValueError(
                "converting a file by path needs --as MODEL (the model card whose format it has)"
            )
        card = get_card(as_card)
        files = {card.files[0]: path}
    else:
        card = get_card(name_or_path)
        files = download_card(card, with_requirements=False)
    if card.bundled:
        raise ValueError(f"model {card.name!r} ships with sr1step as a weight folder: nothing to convert")
    if card.method not in METHODS:
        raise ValueError(f"model {card.name!r} is a {card.method} (converted with the models that need it)")
    out = Path(output) if output else converted_dir(card)
    METHODS[card.method].convert_card(card, files, out)
    return out
