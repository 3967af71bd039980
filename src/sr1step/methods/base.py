"""What a method is: a name, a generator family, default weights, and (optionally) a training recipe.

``load_generator`` turns a ``--weights`` value (model name, local file/folder, Hub repo) into a
ready Generator. Our own weight folders hold ``config.json`` (``{"method": ..., "generator": {...}}``)
next to safetensors files, so a folder always says which method and network it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..generators.base import Generator
from ..hub import ModelCard, WeightsNotFoundError, resolve_weights

if TYPE_CHECKING:
    from ..training.config import RunConfig


@dataclass(frozen=True)
class Phase:
    """One optimizer's turn in a training step.

    ``network`` names the entry of ``Recipe.networks()`` whose parameters this phase updates.
    A phase runs ``repeats`` optimizer steps; the first reuses the step's shared micro-batches
    (and their per-batch ``state``) unless ``fresh_batch``, the others draw new ones.
    """

    name: str
    network: str
    repeats: int = 1
    fresh_batch: bool = False


@dataclass
class Batch:
    hr: torch.Tensor  # (B, 3, H, W) in [0, 1]
    lr: torch.Tensor  # (B, 3, H/s, W/s) in [0, 1]


class Recipe(nn.Module):
    """A training recipe: trainable networks, phases and their losses.

    The trainer owns the loop (optimizers, mixed precision, accumulation, EMA of
    ``networks()["generator"]``, checkpoints, validation); a recipe only says what to optimize
    and how to compute each phase's loss. Randomness inside ``loss`` uses the global torch RNG,
    which the trainer seeds from (seed, step) so resumed runs repeat exactly.
    """

    phases: tuple[Phase, ...] = (Phase("generator", "generator"),)
    phase_lrs: dict[str, float] = {}  # learning rates that differ from train.lr, by phase

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def bind(self, prepared: dict[str, nn.Module]) -> None:
        """Receive the networks as wrapped by the trainer (DDP); use them in ``loss``."""
        self.wrapped = prepared

    def loss(self, phase: str, batch: Batch, state: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def generator(self) -> Generator:
        """The inference generator built on the current weights (validation, export)."""
        raise NotImplementedError

    def export(self, folder: Path, extra: dict) -> Path:
        """Write the generator as a weight folder that ``sr1step upscale --weights`` loads."""
        raise NotImplementedError


class Method:
    name: ClassVar[str]
    summary: ClassVar[str]
    default_model: ClassVar[str | None] = None  # model card used when --weights is not given
    card_methods: ClassVar[tuple[str, ...]] = ()  # card "method" values this method can load
    multistep: ClassVar[bool] = False  # honours --steps
    # Training (methods without these cannot be trained):
    config_class: ClassVar[type | None] = None  # the [model] section of a run config
    presets: ClassVar[dict[str, Callable[[], RunConfig]]] = {}
    default_preset: ClassVar[str | None] = None
    needs_teacher: ClassVar[bool] = False  # trained with `sr1step distill`

    @classmethod
    def build_recipe(cls, run: RunConfig) -> Recipe:
        raise ValueError(f"method {cls.name!r} cannot be trained")

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
        raise ValueError(f"method {cls.name!r} does not load model weights")

    @classmethod
    def from_folder(cls, folder: Path) -> Generator:
        raise ValueError(f"method {cls.name!r} does not load model weights")

    @classmethod
    def from_file(cls, path: Path) -> Generator:
        raise ValueError(f"{path}: method {cls.name!r} does not load single weight files (give a weight folder)")

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
