"""Run configuration: method-specific model config + data + training loop settings.

A run config is TOML (``method = ...`` then ``[model]``, ``[data]``, ``[train]`` tables). It is
built from a named preset of the method, then a ``--config`` file, then ``--set key=value``
overrides, each checked against the dataclass types. The resolved config is written next to
every run and every export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import ConfigError, from_dict, merge, overrides_to_dict, to_dict, to_toml
from ..data.datasets import PairedSet, load_paired_folder, resolve_image_list, synthesize_pairs
from ..data.degradations import BicubicDegradation, RealESRGANConfig, RealESRGANDegradation


@dataclass(frozen=True)
class DataConfig:
    train: str = "builtin"  # a folder of HR images (recursive), a .txt list of paths, or "builtin"
    val: str = "builtin"  # "builtin", a paired folder (HR/ + LR/), an HR folder (LR synthesised), or ""
    scale: int = 4
    gt_size: int = 256  # HR training crop
    crop_pad_size: int = 300  # HR crop before degradation (blur borders), then a gt_size crop
    rescale_gt: bool = True  # ResShift's: a random min(h, w) square area-resized to crop_pad_size first
    # Re-draw HR crops that a bicubic x{scale} round trip reproduces above this PSNR (dB; 0 = off):
    # flat sky or walls teach nothing (not in the papers, whose sets are curated; see docs/training.md)
    flat_crop_psnr: float = 0.0
    degradation: Literal["realesrgan", "bicubic"] = "realesrgan"
    realesrgan: RealESRGANConfig = field(default_factory=RealESRGANConfig)
    pool_batches: int = (
        10  # Real-ESRGAN pair pool of pool_batches x batch_size pairs (realesrgan only; 0 = off)
    )
    flip: bool = True
    rotate: bool = False  # also vertical flips and transposes (BasicSR's use_rot; ResShift: off)
    cache_images: bool = False  # keep decoded training images in memory (small sets)
    num_workers: int = 0
    val_size: int = 256  # HR crop size of synthesised validation pairs
    val_count: int = 8

    def __post_init__(self):
        if self.scale < 1:
            raise ConfigError(f"data.scale must be >= 1, got {self.scale}")
        for name in ("gt_size", "val_size"):
            size = getattr(self, name)
            if size < self.scale or size % self.scale:
                raise ConfigError(
                    f"data.{name} ({size}) must be a positive multiple of data.scale ({self.scale})"
                )
        if self.flat_crop_psnr < 0:
            raise ConfigError(f"data.flat_crop_psnr must be >= 0 (0 = off), got {self.flat_crop_psnr}")
        if self.crop_pad_size < 0 or self.pool_batches < 0 or self.val_count < 0 or self.num_workers < 0:
            raise ConfigError("data.crop_pad_size, pool_batches, val_count and num_workers must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 8  # per process and micro-batch
    grad_accum: int = 1
    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    grad_clip: float = 0.0  # 0 = no clipping
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    ema_decay: float = 0.999  # 0 = no EMA
    gradient_checkpointing: bool = False
    seed: int = 123456
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (several processes: accelerate picks each GPU)
    log_every: int = 10
    validate_every: int = 500  # 0 = only at the end
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_images: int = 4  # validation images written to samples/ each validation

    def __post_init__(self):
        positive = ("max_steps", "batch_size", "grad_accum")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        never_negative = (
            "warmup_steps",
            "log_every",
            "validate_every",
            "checkpoint_every",
            "keep_checkpoints",
        )
        for name in never_negative + ("sample_images",):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class RunConfig:
    method: str
    model: Any  # the method's own config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def build(cls, method: str, model: Any, data: dict, train: dict) -> RunConfig:
        """A preset: the method's model config plus keyword dicts of the data and train sections."""
        return cls(method, model, DataConfig(**data), TrainConfig(**train))

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "model": to_dict(self.model),
            "data": to_dict(self.data),
            "train": to_dict(self.train),
        }

    def to_toml(self) -> str:
        return to_toml(_drop_none(self.to_dict()))


def _drop_none(d):
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d


def run_config_from_dict(data: dict, model_class: type) -> RunConfig:
    unknown = set(data) - {"method", "model", "data", "train"}
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected method, model, data, train")
    return RunConfig(
        method=data["method"],
        model=from_dict(model_class, data.get("model", {}), "model"),
        data=from_dict(DataConfig, data.get("data", {}), "data"),
        train=from_dict(TrainConfig, data.get("train", {}), "train"),
    )


def resolve_run_config(
    base: RunConfig,
    model_class: type,
    file_data: dict | None,
    overrides: list[str],
    values: dict | None = None,
) -> RunConfig:
    """preset -> config file -> ``--set`` overrides -> typed ``values`` (each level type-checked)."""
    merged = base.to_dict()
    if file_data:
        if file_data.get("method", base.method) != base.method:
            raise ConfigError(f"the config file is for method {file_data['method']!r}, not {base.method!r}")
        merged = merge(merged, file_data)
    merged = merge(merged, overrides_to_dict(overrides))
    merged = merge(merged, values or {})
    return run_config_from_dict(merged, model_class)


def save_run_config(cfg: RunConfig, path: Path) -> None:
    from ..files import write_atomic

    write_atomic(path, cfg.to_toml().encode())


# --- what the trainer builds from a run config ---------------------------------------------------


def make_degradation(run: RunConfig):
    if run.data.degradation == "bicubic":
        return BicubicDegradation(run.data.scale)
    cfg = run.data.realesrgan
    if cfg.scale != run.data.scale:
        import dataclasses

        cfg = dataclasses.replace(cfg, scale=run.data.scale)
    return RealESRGANDegradation(cfg)


def build_validation_set(run: RunConfig, degrade) -> PairedSet | None:
    source = run.data.val
    if not source:
        return None
    if source != "builtin" and (Path(source) / "LR").is_dir():
        return load_paired_folder(source, run.data.scale)
    files = resolve_image_list(source, split="val")
    return synthesize_pairs(
        files, degrade, run.data.scale, run.data.val_size, run.data.val_count, seed=run.train.seed
    )


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return f


def check_crop_fits(run: RunConfig, generator) -> None:
    """Training crops must fit the network without padding: data.gt_size / scale must be a
    multiple of the generator's ``pad_multiple``. Checked before the first step."""
    from ..config import ConfigError

    s, m = run.data.scale, max(1, generator.pad_multiple)
    lr_size = run.data.gt_size // s
    if lr_size % m:
        fit = -(-lr_size // m) * m * s
        raise ConfigError(
            f"data.gt_size {run.data.gt_size} gives {lr_size} px LR crops, not a multiple of this "
            f"network's {m}; use a multiple of {m * s}, e.g. {fit}"
        )


def flat_config(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        elif v is not None:
            out[key] = str(v)
    return out
