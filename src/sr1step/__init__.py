"""sr1step: one-step diffusion super-resolution."""

import logging as _logging

__version__ = "0.1.0"

# bitsandbytes (pulled in through peft and pyiqa) logs a warning about an optional CPU kernel
# package on import; sr1step never uses 4-bit layers, and users should not see an error-looking
# line on every successful run.
_logging.getLogger("bitsandbytes").setLevel(_logging.ERROR)


__all__ = ["Upscaler", "EngineOptions", "__version__"]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str):
    # ``sr1step.Upscaler`` without importing torch for ``sr1step --help``.
    if name in ("Upscaler", "EngineOptions"):
        from . import api, engine

        return {"Upscaler": api.Upscaler, "EngineOptions": engine.EngineOptions}[name]
    raise AttributeError(f"module 'sr1step' has no attribute {name!r}")
