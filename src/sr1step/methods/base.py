"""What a method is: a name, a generator family, default weights, and (optionally) a training recipe.

``load_generator`` turns a ``--weights`` value (model name, local file/folder, Hub repo) into a
ready Generator. Our own weight folders hold ``config.json`` (``{"method": ..., "generator": {...}}``)
next to safetensors files, so a folder always says which method and network it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from ..generators.base import Generator
from ..hub import ModelCard, WeightsNotFoundError, resolve_weights


class Method:
    name: ClassVar[str]
    summary: ClassVar[str]
    default_model: ClassVar[str | None] = None  # model card used when --weights is not given
    card_methods: ClassVar[tuple[str, ...]] = ()  # card "method" values this method can load
    multistep: ClassVar[bool] = False  # honours --steps

    @classmethod
    def load_generator(
        cls, weights: str | None = None, *, steps: int | None = None, scale: float | None = None
    ) -> Generator:
        """``scale`` is a hint for methods without a fixed scale; the others keep their own and
        the upscale runner resizes their output."""
        spec = weights or cls.default_model
        if spec is None:
            return cls.build_default(scale)
        target = resolve_weights(spec)
        if isinstance(target, ModelCard):
            accepted = cls.card_methods or (cls.name,)
            if target.method not in accepted:
                raise ValueError(f"model {target.name!r} is a {target.method} model; use --method {target.method}")
            generator = cls.from_card(target)
        elif target.is_dir():
            generator = cls.from_folder(target)
        else:
            generator = cls.from_file(target)
        if steps is not None:
            generator = cls.with_steps(generator, steps)
        return generator

    @classmethod
    def build_default(cls, scale: float | None = None) -> Generator:
        raise WeightsNotFoundError(f"method {cls.name!r} needs --weights")

    @classmethod
    def from_card(cls, card: ModelCard) -> Generator:
        raise NotImplementedError

    @classmethod
    def from_folder(cls, folder: Path) -> Generator:
        raise NotImplementedError

    @classmethod
    def from_file(cls, path: Path) -> Generator:
        raise ValueError(f"{path}: method {cls.name!r} loads weight folders (config.json + safetensors), not single files")

    @classmethod
    def with_steps(cls, generator: Generator, steps: int) -> Generator:
        if steps != generator.steps:
            raise ValueError(f"method {cls.name!r} is a {generator.steps}-step method; --steps does not apply")
        return generator


def read_folder_config(folder: Path) -> dict:
    """``config.json`` of one of our weight folders, with a clear error when it is not one."""
    path = folder / "config.json"
    if not path.is_file():
        raise WeightsNotFoundError(f"{folder} holds no config.json; it is not an sr1step weight folder")
    return json.loads(path.read_text(encoding="utf-8"))
