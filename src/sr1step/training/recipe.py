"""The training contract between a method and the trainer: phases, batches, recipes.

The trainer owns the loop (optimizers, mixed precision, accumulation, EMA of
``networks()["generator"]``, checkpoints, validation); a recipe only says what to optimize and
how to compute each phase's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..contract import SRGenerator


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

    Randomness inside ``loss`` uses the global torch RNG, which the trainer seeds from
    (seed, step) so resumed runs repeat exactly.
    """

    phases: tuple[Phase, ...] = (Phase("generator", "generator"),)
    phase_lrs: dict[str, float] = {}  # noqa: RUF012  learning rates that differ from train.lr, by phase

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def bind(self, prepared: dict[str, nn.Module]) -> None:
        """Receive the networks as wrapped by the trainer (DDP); use them in ``loss``."""
        self.wrapped = prepared

    def loss(self, phase: str, batch: Batch, state: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def generator(self) -> SRGenerator:
        """The inference generator built on the current weights (validation, export)."""
        raise NotImplementedError

    def export(self, folder: Path, method: str, info: dict) -> Path:
        """Write the generator as a weight folder that ``sr1step upscale --weights`` loads."""
        return self.generator().save_folder(folder, method, info)
