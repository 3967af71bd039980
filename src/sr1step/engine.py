"""The inference engine shared by every method: pad, tile, batch, blend, clamp, colour-fix.

Tiling works in the input's pixel space (every generator) or in latent space (generators with
``latent_ratio``); the blending window and its exactness are described in ``tiling.py``. Memory
is bounded by the tile size: tiles draw their own part of the noise field (``NoiseField``).

``EngineOptions`` is the user's request (names as typed on the command line), validated once
when it is built, before any model is loaded; ``options.build(generator)`` gives the Engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .colorfix import COLOR_FIXES, apply_color_fix
from .contract import SRGenerator
from .devices import DTYPES, resolve_device, resolve_dtype
from .tiling import NoiseField, TileInput, count_tiles, pad_to_multiple, tiled_apply

TILE_SPACES = ("auto", "pixel", "latent")


@dataclass(frozen=True)
class EngineOptions:
    """How to run a generator: device, precision, tiling, colour fix, seed (validated here)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | fp32 | fp16 | bf16
    tile: int = 0  # tile size in input pixels; 0 = whole image
    tile_overlap: int = 32
    tile_space: str = "auto"  # auto | pixel | latent
    batch_size: int = 1  # tiles per forward pass
    color_fix: str = "none"  # none | adain | wavelet
    seed: int = 0  # noise of stochastic generators
    compile: bool = False  # torch.compile the generator's networks (pays after a warm-up run)
    ensemble: int = 1  # self-ensemble: mean over 1, 2, 4 or 8 flips/transposes of the input (k x time)

    def __post_init__(self):
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use auto, {', '.join(DTYPES)}")
        if self.color_fix not in COLOR_FIXES:
            raise ValueError(f"unknown colour fix {self.color_fix!r}; use one of {', '.join(COLOR_FIXES)}")
        if self.tile_space not in TILE_SPACES:
            raise ValueError(f"unknown tile space {self.tile_space!r}; use auto, pixel or latent")
        if self.tile < 0 or self.tile_overlap < 0 or self.batch_size < 1:
            raise ValueError("tile and tile overlap must be >= 0 and batch size >= 1")
        if self.tile and self.tile_overlap >= self.tile:
            raise ValueError(
                f"tile overlap ({self.tile_overlap}) must be smaller than the tile ({self.tile})"
            )
        if self.ensemble not in (1, 2, 4, 8):
            raise ValueError(f"ensemble must be 1, 2, 4 or 8 (orientations averaged), got {self.ensemble}")
        resolve_device(self.device)  # an unknown or absent device is an error now, not after loading


def dihedral(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """The k-th (0-7) of the eight orientations of x's last two axes: bit 0 mirrors left-right,
    bit 1 upside down, bit 2 transposes (after the flips; ``inverse`` undoes it)."""
    flips = [d for bit, d in ((1, -1), (2, -2)) if k & bit]
    if inverse and k & 4:
        x = x.transpose(-1, -2)
    x = x.flip(flips) if flips else x
    return x.transpose(-1, -2) if k & 4 and not inverse else x


class SelfEnsemble:
    """``fn`` averaged over the first ``n`` orientations of its inputs (EDSR's self-ensemble,
    the "+" rows of SR papers): 2 adds the mirror, 4 the flips, 8 the transposes."""

    def __init__(self, fn: Callable[..., torch.Tensor], n: int):
        self.fn, self.n = fn, n

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        total = None
        for k in range(self.n):
            out = dihedral(self.fn(*(dihedral(x, k) for x in inputs)), k, inverse=True)
            total = out.float() if total is None else total + out.float()
        return (total / self.n).to(out.dtype)


class NonFiniteOutputError(RuntimeError):
    """The model computed NaN or Inf values (damaged weights, or an overflow in fp16)."""


def check_finite_output(out: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteOutputError(
            "the model produced NaN or Inf values (damaged weights, or an fp16 overflow: try --dtype fp32)"
        )
    return out


class Engine:
    """Runs an SRGenerator on whole images of any size, as ``options`` ask.

    The tile is rounded up to the generator's ``pad_multiple``; ``tile_space="auto"`` tiles in
    latent space when the generator supports it.
    """

    def __init__(self, generator: SRGenerator, options: EngineOptions | None = None):
        o = options or EngineOptions()
        if o.tile_space == "latent" and generator.latent_ratio is None:
            raise ValueError(
                f"{type(generator).__name__} cannot tile in latent space; use --tile-space pixel"
            )
        self.options = o
        self.device = resolve_device(o.device)
        self.dtype = resolve_dtype(o.dtype, self.device, generator.supports_half)
        self.notes: list[str] = []  # what the engine changed from the request, for the user
        if self.device.type == "cpu" and self.dtype == torch.float16:
            self.notes.append(
                "fp16 on a CPU runs far slower than fp32 (no half-precision kernels): using fp32; "
                "bf16 is fast on CPUs with AVX-512 BF16 or AMX"
            )
            self.dtype = torch.float32
        self.generator = generator.to(self.device, self.dtype).eval()
        self.memory_format = torch.contiguous_format
        if o.compile:
            self.generator.compile_networks()
        self.multiple = max(1, generator.pad_multiple)
        self.tile = math.ceil(o.tile / self.multiple) * self.multiple if o.tile else 0
        if self.tile and o.tile_overlap >= self.tile:
            raise ValueError(f"tile overlap ({o.tile_overlap}) must be smaller than the tile ({self.tile})")
        self.overlap = o.tile_overlap
        self.batch_size = o.batch_size
        self.color_fix = o.color_fix
        self.latent = o.tile_space == "latent" or (
            o.tile_space == "auto" and generator.latent_ratio is not None and not generator.prefer_pixel_tiles
        )
        self.seed = o.seed
        self.ensemble = o.ensemble

    def _fn(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        return SelfEnsemble(fn, self.ensemble) if self.ensemble > 1 else fn

    def use_channels_last(self) -> None:
        """NHWC weights and inputs on a CPU: oneDNN convolutions run about 10 % faster (exact up
        to fp32 rounding). Changes the generator in place, so only for generators the engine
        owns (``load_engine``), never a network being trained."""
        if self.device.type == "cpu":
            self.memory_format = torch.channels_last
            self.generator.to(memory_format=self.memory_format)

    def num_tiles(self, h: int, w: int) -> int:
        """Forward passes of the tiled stage for an h x w input."""
        m = self.multiple
        return count_tiles(math.ceil(h / m) * m, math.ceil(w / m) * m, self.tile, self.overlap)

    def _noise(self, batch: int, h: int, w: int) -> NoiseField | None:
        g = self.generator
        if g.noise_channels == 0:
            return None
        shape = (batch, g.noise_channels, h * g.noise_ratio, w * g.noise_ratio)
        return NoiseField(shape, self.seed, self.device, self.dtype)

    def _tiled(self, h: int, w: int) -> bool:
        """Whether an h x w input runs in tiles (its padded size exceeds the tile)."""
        m = self.multiple
        return self.tile > 0 and max(math.ceil(h / m) * m, math.ceil(w / m) * m) > self.tile

    def _prepare(self, lr: torch.Tensor):
        x = lr.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        x, hw = pad_to_multiple(x, self.multiple)
        noise = self._noise(x.shape[0], x.shape[-2], x.shape[-1])
        return x, hw, noise, self._tiled(*hw)

    def _pixel_inputs(self, x, noise) -> list[TileInput]:
        inputs = [TileInput(x, 1)]
        if noise is not None:
            inputs.append(TileInput(noise, self.generator.noise_ratio))
        return inputs

    @torch.inference_mode()
    def stream(
        self,
        lr: torch.Tensor,
        sink: Callable[[int, int, torch.Tensor], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """``run`` for one image, handing the output to ``sink(y0, y1, rows)`` in bands of final
        rows ((1, 3, y1 - y0, s*w) float32 in [0, 1] on the CPU). Tiled in pixel space with no
        colour fix, only one band of tiles is ever held: memory is set by the tile, not the image."""
        if not (
            self._tiled(*lr.shape[-2:]) and not self.latent and self.color_fix == "none" and lr.shape[0] == 1
        ):
            out = self.run(lr, progress)
            sink(0, out.shape[-2], out)
            return
        x, (h, w), noise, _ = self._prepare(lr)
        s = self.generator.scale

        def crop(y0: int, y1: int, rows: torch.Tensor) -> None:
            y1 = min(y1, h * s)
            if y0 < y1:
                sink(y0, y1, check_finite_output(rows[..., : y1 - y0, : w * s]).clamp_(0, 1).cpu())

        tiled_apply(
            self._fn(self.generator),
            self._pixel_inputs(x, noise),
            out_ratio=s,
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            progress=progress,
            sink=crop,
        )

    @torch.inference_mode()
    def run(self, lr: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """``lr``: (B, 3, h, w) in [0, 1] on any device. Returns (B, 3, s*h, s*w) float32 on the CPU."""
        g = self.generator
        x, (h, w), noise, tiled = self._prepare(lr)
        if not tiled:
            multi_step = g.steps > 1 and self.ensemble == 1
            g.on_step = progress if multi_step else None  # per-step progress of a whole image
            try:
                fn = self._fn(g)
                out = fn(x, noise.full()) if noise is not None else fn(x)
            finally:
                g.on_step = None
            if progress is not None and not multi_step:
                progress(1, 1)
        elif self.latent:
            lat = g.latent_ratio  # latent pixels per input pixel (may be fractional: 0.5 for SD at x4)
            cond = g.encode(x)
            inputs = [TileInput(cond, 1)]
            if noise is not None:
                inputs.append(TileInput(noise, round(g.noise_ratio / lat)))
            z = tiled_apply(
                self._fn(g.denoise),
                inputs,
                out_ratio=1,
                tile=round(self.tile * lat),
                overlap=round(self.overlap * lat),
                batch_size=self.batch_size,
                progress=progress,
            )
            out = g.decode(z.to(self.dtype))
        else:
            out = tiled_apply(
                self._fn(g),
                self._pixel_inputs(x, noise),
                out_ratio=g.scale,
                tile=self.tile,
                overlap=self.overlap,
                batch_size=self.batch_size,
                progress=progress,
            )
        s = g.scale
        out = check_finite_output(out[..., : h * s, : w * s].float()).clamp_(0, 1)  # in place: large
        if self.color_fix != "none":
            ref = F.interpolate(lr.to(out.device).float(), scale_factor=s, mode="bicubic").clamp(0, 1)
            out = apply_color_fix(out, ref, self.color_fix).clamp(0, 1)
        return out.cpu()
