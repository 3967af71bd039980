"""The library entry point: a method name and a ``--weights`` value -> a ready Engine.

``sr1step upscale``, ``sr1step benchmark`` and Python users all load models through here.
"""

from __future__ import annotations

from .engine import Engine, EngineOptions
from .registry import DEFAULT_METHOD, get_method


def load_engine(
    method: str | None = None,
    weights: str | None = None,
    options: EngineOptions | None = None,
    *,
    steps: int | None = None,
    scale: float | None = None,
) -> Engine:
    """Load the generator of ``method`` (default: the embedded default) from ``weights`` and wrap
    it in an Engine. ``options`` are validated when built, before anything is loaded."""
    m = get_method(method or DEFAULT_METHOD)
    return Engine(m.load_generator(weights, steps=steps, scale=scale), options or EngineOptions())
