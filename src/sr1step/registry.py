"""The method registry: a plain dict filled by explicit imports (a new method = one line here)."""

from __future__ import annotations

from .config import ConfigError, unknown_name_error
from .methods.base import Method
from .methods.bicubic import BICUBIC
from .methods.d3sr import D3SR
from .methods.osediff import OSEDIFF
from .methods.resshift import RESSHIFT, SINSR
from .methods.rsd import RSD
from .methods.tadsr import TADSR

METHODS: dict[str, Method] = {m.name: m for m in (BICUBIC, RESSHIFT, SINSR, RSD, TADSR, D3SR, OSEDIFF)}

DEFAULT_METHOD = "bicubic"


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise unknown_name_error("method", name, list(METHODS))
    return METHODS[name]


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
