"""The method registry: a plain dict filled by explicit imports (a new method = one import here)."""

from __future__ import annotations

from .config import unknown_name_error
from .methods.base import Method
from .methods.bicubic import Bicubic
from .methods.d3sr import D3SR
from .methods.resshift import ResShift, RSDStudent, SinSR, TADSRStudent

METHODS: dict[str, type[Method]] = {m.name: m for m in (Bicubic, ResShift, SinSR, RSDStudent, TADSRStudent, D3SR)}

DEFAULT_METHOD = "bicubic"


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise unknown_name_error("method", name, list(METHODS))
    return METHODS[name]
