"""The method registry: a plain dict filled by explicit imports (a new method = one line here)."""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError, unknown_name_error
from .contract import WeightFolderError, read_folder_config
from .hub import load_cards
from .methods.base import Method
from .methods.bicubic import BICUBIC
from .methods.d3sr import D3SR
from .methods.osediff import OSEDIFF
from .methods.resshift import RESSHIFT, SINSR
from .methods.rsd import RSD
from .methods.spandrel import SPANDREL
from .methods.tadsr import TADSR
from .weights import WeightFileError

METHODS: dict[str, Method] = {
    m.name: m for m in (BICUBIC, RESSHIFT, SINSR, RSD, TADSR, D3SR, OSEDIFF, SPANDREL)
}

# What `sr1step upscale in/ out/` runs: the model sr1step trained and distilled itself, bundled
# with the package (models/sr1step-real-x4/; the fidelity model for clean LR is sr1step-compact-x4);
# its card names the method.
DEFAULT_MODEL = "sr1step-real-x4"


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise unknown_name_error("method", name, list(METHODS))
    return METHODS[name]


def method_for(method: str | None, weights: str | None) -> tuple[Method, str | None]:
    """(method, weights) of an upscale request: with no method, the card or weight folder that
    ``weights`` names decides it, and with neither, the bundled default model is used."""
    if method is not None:
        return get_method(method), weights
    spec = weights or DEFAULT_MODEL
    cards = load_cards()
    if spec in cards:
        return get_method(cards[spec].method), spec
    folder = Path(spec).expanduser()
    if (folder / "config.json").is_file():
        try:
            method = read_folder_config(folder).get("method", "")
        except WeightFolderError as err:  # unreadable: the model cannot be loaded (exit 1)
            raise WeightFileError(str(err)) from None
        if method in METHODS:
            return get_method(method), spec
    raise ConfigError(f"--weights {spec!r} does not say which method it is for: give --method too")


def training_method(name: str) -> Method:
    """The method ``name`` if it can be trained, else an error listing those that can."""
    method = get_method(name)
    if not method.trainable:
        trainable = ", ".join(
            f"{m.name} ({'distill' if m.needs_teacher else 'train'})" for m in METHODS.values() if m.trainable
        )
        raise ConfigError(
            f"method {name!r} has no training recipe in this version (inference only); trainable: {trainable}"
        )
    return method
