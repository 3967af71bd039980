"""What a method is: everything sr1step knows about one SR method, in one object.

A ``Method`` names the method, says how a ``--weights`` value becomes a ready SRGenerator
(model card, our weight folder, an official file), how official files convert, which published
row it is compared with, and, for trainable methods, its run config, presets and recipe. The
registry holds one instance per method name; a new method is one file that defines its
instance, one registry line and its model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import ConfigError, unknown_name_error
from ..contract import SRGenerator
from ..hub import ModelCard, WeightsNotFoundError, resolve_weights
from ..training.config import RunConfig, resolve_run_config
from ..training.recipe import Recipe

TrainKind = Literal["train", "distill"]


RANDOM = "random"  # --weights value: the method's architecture with random weights


@dataclass
class Method:
    name: str
    summary: str
    default_model: str | None = None  # model card used when --weights is not given
    published_as: str | None = None  # row of benchmark/published.toml compared with --reference paper
    # Training (methods without a recipe cannot be trained):
    recipe: Callable[[RunConfig], Recipe] | None = None  # builds the training recipe of a run
    config_class: type | None = None  # the [model] section of a run config
    presets: dict[str, Callable[[], RunConfig]] = field(
        default_factory=dict
    )  # each trainable method has "tiny"
    default_preset: str | None = None
    needs_teacher: bool = False  # trained with `sr1step distill`

    # --- inference ------------------------------------------------------------------------------

    def load_generator(
        self, weights: str | None = None, *, steps: int | None = None, scale: float | None = None
    ) -> SRGenerator:
        """``--weights`` (card name, folder, file, Hub repo; None = the default model) -> generator.

        ``scale`` is a hint for methods without a fixed scale; the others keep their own and the
        upscale runner resizes their output."""
        spec = weights or self.default_model
        if spec == RANDOM:
            generator = self.random_generator()
        elif spec is None:
            generator = self.build_default(scale)
        else:
            target = resolve_weights(spec)
            if isinstance(target, ModelCard):
                if target.method != self.name:
                    raise ValueError(
                        f"model {target.name!r} is a {target.method} model; use --method {target.method}"
                    )
                generator = self.from_card(target)
            elif target.is_dir():
                generator = self.from_folder(target)
            else:
                generator = self._from_file_or_hint(target)
        return generator if steps is None else self.with_steps(generator, steps)

    def _from_file_or_hint(self, path: Path) -> SRGenerator:
        try:
            return self.from_file(path)
        except (ValueError, KeyError, RuntimeError) as err:  # not this method's file: whose is it?
            from .spandrel import spandrel_architecture

            arch = spandrel_architecture(path) if self.name != "spandrel" else None
            if arch is None:
                raise
            raise ValueError(
                f"{path} holds a {arch} network, not a {self.name} model; run it with --method spandrel"
            ) from err

    def build_default(self, scale: float | None = None) -> SRGenerator:
        raise WeightsNotFoundError(f"method {self.name!r} needs --weights")

    def random_generator(self) -> SRGenerator:
        """The released architecture with random weights (``--weights random``: speed and memory
        measurements without downloads; the output is noise)."""
        raise ValueError(f"method {self.name!r} has no random-weight architecture")

    def from_card(self, card: ModelCard) -> SRGenerator:
        raise ValueError(f"method {self.name!r} does not load model weights")

    def from_folder(self, folder: Path) -> SRGenerator:
        raise ValueError(f"method {self.name!r} does not load model weights")

    def from_file(self, path: Path) -> SRGenerator:
        raise ValueError(
            f"{path}: method {self.name!r} does not load single weight files (give a weight folder)"
        )

    def with_steps(self, generator: SRGenerator, steps: int) -> SRGenerator:
        if steps != generator.steps:
            raise ValueError(
                f"method {self.name!r} is a {generator.steps}-step method; --steps does not apply"
            )
        return generator

    def convert_card(self, card: ModelCard, files: dict[str, Path], out: Path) -> None:
        """Official files of ``card`` -> an sr1step weight folder (``sr1step models convert``)."""
        raise ValueError(
            f"model {card.name!r}: method {self.name!r} has no converter (its files load as they are)"
        )

    # --- training -------------------------------------------------------------------------------

    @property
    def trainable(self) -> bool:
        return self.recipe is not None

    def build_recipe(self, run: RunConfig) -> Recipe:
        if self.recipe is None:
            raise ValueError(f"method {self.name!r} cannot be trained")
        return self.recipe(run)

    def run_config(
        self,
        kind: TrainKind,
        preset: str | None = None,
        file_data: dict | None = None,
        overrides: list[str] = (),
        values: dict | None = None,
    ) -> RunConfig:
        """The run config of ``sr1step train|distill``: preset -> config file -> ``--set`` strings
        -> typed ``values`` (``{"data": {"train": path}}``), each level type-checked."""
        if not self.trainable:
            raise ConfigError(f"method {self.name!r} has no training recipe in this version (inference only)")
        if self.needs_teacher != (kind == "distill"):
            raise ConfigError(
                f"method {self.name!r} is trained with "
                f"`sr1step {'distill' if self.needs_teacher else 'train'}`"
            )
        name = preset or self.default_preset
        if name not in self.presets:
            raise unknown_name_error(f"{self.name} preset", str(name), list(self.presets))
        return resolve_run_config(self.presets[name](), self.config_class, file_data, list(overrides), values)
