"""What a benchmark row is: the method (and weights), the run options, the scores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..devices import resolve_device
from ..engine import EngineOptions


@dataclass(frozen=True)
class MethodRef:
    """``--method NAME[:WEIGHTS]``."""

    method: str
    weights: str | None = None
    steps: int | None = None
    name: str | None = None  # the row label; None = NAME or NAME:<last part of WEIGHTS>

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.method if not self.weights else f"{self.method}:{Path(self.weights).name}"

    @classmethod
    def parse(cls, text: str, steps: int | None = None) -> MethodRef:
        """``NAME``, ``NAME:WEIGHTS``, or a model card's name alone (``realesrgan-x4plus``)."""
        from ..hub import load_cards
        from ..registry import METHODS

        method, _, weights = text.partition(":")
        if not weights and method not in METHODS:
            card = load_cards().get(method)
            if card is not None:
                return cls(card.method, card.name, steps, name=card.name)
        return cls(method, weights or None, steps)


def unique_labels(refs: list[MethodRef]) -> list[MethodRef]:
    """Rows whose labels would collide (two ``.../export`` folders) get as many trailing path
    parts of their weights as tell them apart; the same method and weights twice is an error."""
    seen = set()
    for ref in refs:
        key = (ref.method, ref.weights, ref.steps)
        if key in seen:
            raise ValueError(f"--method {ref.label} is given twice")
        seen.add(key)
    out = list(refs)
    for depth in range(2, 8):
        labels = [r.label for r in out]
        clashes = {label for label in labels if labels.count(label) > 1}
        if not clashes:
            break
        out = [
            dataclasses.replace(r, name=f"{r.method}:{'/'.join(Path(r.weights).parts[-depth:])}")
            if r.label in clashes and r.weights
            else r
            for r in out
        ]
    return out


@dataclass
class BenchOptions:
    metrics: tuple[str, ...] = ("psnr", "ssim")
    crop_border: int = 0
    engine: EngineOptions = field(default_factory=lambda: EngineOptions(device="cpu"))
    limit: int | None = None
    save_images: bool = False

    @property
    def device(self) -> torch.device:
        return resolve_device(self.engine.device)


@dataclass
class Row:
    method: str
    dataset: str
    images: int
    scores: dict[str, float]
    unavailable: dict[str, str]  # metric -> reason
    problems: list[tuple[str, str]]  # (file, reason): reported, never averaged silently
    nfe: int = 0
    params_m: float = 0.0
    sr_folder: str | None = None  # the saved SR images (--save-images)
    cached_images: int = 0  # images whose scores all came from the score cache of an earlier run
    notes: list[str] = field(default_factory=list)  # said with the results, not failures
    published_as: str | None = None  # the row of published.toml it is compared with
