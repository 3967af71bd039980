"""The inference engine shared by every method: pad, tile, batch, blend, colour-fix.

Tiling works in the input's pixel space (every generator) or in latent space (generators with
``latent_ratio``): tiles overlap and are blended with a window that is zero over the outer
quarter of each overlap and rises with a raised cosine to one. A model whose receptive field
fits in that quarter therefore gives the same output tiled or untiled, and no seam.

Memory is bounded by the tile size: tiles are run ``batch_size`` at a time and their outputs
are accumulated into the (output-sized) result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .colorfix import apply_color_fix
from .generators.base import Generator


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right to multiples of ``multiple``: reflect where the image
    is large enough, replicate otherwise. Returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    dtype = x.dtype
    if mode == "replicate" or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # padding kernels for half precision are missing on some CPUs
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode).to(dtype), (h, w)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length``, the last one snapped to the end."""
    if length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def blend_ramp(size: int, overlap: int, ramp_start: bool, ramp_end: bool, device=None) -> torch.Tensor:
    """1-D blending weights for a tile of ``size`` pixels.

    Edges inside the image ramp over ``overlap`` pixels: weight 0 for the first quarter (pixels a
    zero-padded tile edge can corrupt), a raised cosine over the middle half, then 1. Edges on the
    image border keep weight 1.
    """
    weights = torch.ones(size, dtype=torch.float32, device=device)
    if overlap <= 0:
        return weights
    margin = overlap // 4
    width = max(overlap - 2 * margin, 1)
    d = torch.arange(overlap, dtype=torch.float32, device=device)
    ramp = 0.5 - 0.5 * torch.cos(math.pi * ((d - margin + 0.5) / width).clamp(0, 1))
    ramp[:margin] = 0.0
    n = min(overlap, size)
    if ramp_start:
        weights[:n] = torch.minimum(weights[:n], ramp[:n])
    if ramp_end:
        weights[size - n :] = torch.minimum(weights[size - n :], ramp[:n].flip(0))
    return weights


@dataclass
class TileInput:
    """A tensor to tile along with the others: ``ratio`` of its pixels per grid pixel."""

    tensor: torch.Tensor
    ratio: int = 1


def tiled_apply(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[TileInput],
    *,
    out_ratio: int,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run ``fn(*tiles)`` over overlapping tiles of ``inputs`` and blend the results.

    Sizes are in grid pixels (those of an input with ratio 1); ``fn`` maps tiles of t grid pixels
    to outputs of ``out_ratio``*t pixels. Tiles are stacked ``batch_size`` at a time.
    """
    ref = inputs[0]
    batch = ref.tensor.shape[0]
    grid_h, grid_w = ref.tensor.shape[-2] // ref.ratio, ref.tensor.shape[-1] // ref.ratio
    tile_h, tile_w = min(tile, grid_h), min(tile, grid_w)
    ys, xs = tile_starts(grid_h, tile_h, overlap), tile_starts(grid_w, tile_w, overlap)
    boxes = [(y, x) for y in ys for x in xs]
    out = weight_sum = None
    r = out_ratio
    ov = overlap * r
    windows: dict[tuple, torch.Tensor] = {}  # at most 9 distinct windows (border/inner per axis)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        args = []
        for inp in inputs:
            k = inp.ratio
            crops = [inp.tensor[..., y * k : (y + tile_h) * k, x * k : (x + tile_w) * k] for y, x in chunk]
            args.append(torch.cat(crops, dim=0))
        result = fn(*args).float()
        if out is None:
            channels = result.shape[1]
            out = torch.zeros(batch, channels, grid_h * r, grid_w * r, device=result.device)
            weight_sum = torch.zeros(1, 1, grid_h * r, grid_w * r, device=result.device)
        for i, (y, x) in enumerate(chunk):
            key = (y > 0, y + tile_h < grid_h, x > 0, x + tile_w < grid_w)
            if key not in windows:
                wy = blend_ramp(tile_h * r, ov, key[0], key[1], result.device)
                wx = blend_ramp(tile_w * r, ov, key[2], key[3], result.device)
                windows[key] = wy[:, None] * wx[None, :]
            w = windows[key]
            ys_, xs_ = slice(y * r, (y + tile_h) * r), slice(x * r, (x + tile_w) * r)
            out[:, :, ys_, xs_] += result[i * batch : (i + 1) * batch] * w
            weight_sum[:, :, ys_, xs_] += w
        if progress is not None:
            progress(min(start + batch_size, len(boxes)), len(boxes))
    return out / weight_sum.clamp_min(1e-12)


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    if tile <= 0:
        return 1
    return len(tile_starts(h, min(tile, h), overlap)) * len(tile_starts(w, min(tile, w), overlap))


class Engine:
    """Runs a Generator on whole images of any size.

    Args:
        generator: any Generator (see generators/base.py for the contract).
        device, dtype: where and in what precision the generator runs.
        tile: tile size in input pixels (0 = no tiling); rounded up to the generator's multiple.
        tile_overlap: overlap between tiles in input pixels.
        batch_size: tiles per forward pass.
        color_fix: ``none``, ``adain`` or ``wavelet``.
        tile_space: ``pixel``, ``latent`` or ``auto`` (latent when the generator supports it).
        seed: seeds the per-image noise field for stochastic generators.
    """

    def __init__(
        self,
        generator: Generator,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tile: int = 0,
        tile_overlap: int = 32,
        batch_size: int = 1,
        color_fix: str = "none",
        tile_space: str = "auto",
        seed: int = 0,
    ):
        if tile_space not in ("auto", "pixel", "latent"):
            raise ValueError(f"unknown tile space {tile_space!r}; use auto, pixel or latent")
        if tile_space == "latent" and generator.latent_ratio is None:
            raise ValueError(f"{type(generator).__name__} cannot tile in latent space; use --tile-space pixel")
        if tile < 0 or tile_overlap < 0 or batch_size < 1:
            raise ValueError("tile and tile overlap must be >= 0 and batch size >= 1")
        self.device = torch.device(device)
        self.dtype = dtype
        self.generator = generator.to(self.device, dtype).eval()
        self.multiple = max(1, generator.pad_multiple)
        self.tile = math.ceil(tile / self.multiple) * self.multiple if tile else 0
        if self.tile and tile_overlap >= self.tile:
            raise ValueError(f"tile overlap ({tile_overlap}) must be smaller than the tile ({self.tile})")
        self.overlap = tile_overlap
        self.batch_size = batch_size
        self.color_fix = color_fix
        self.latent = tile_space == "latent" or (tile_space == "auto" and generator.latent_ratio is not None)
        self.seed = seed

    def num_tiles(self, h: int, w: int) -> int:
        """Forward passes of the tiled stage for an h x w input."""
        m = self.multiple
        return count_tiles(math.ceil(h / m) * m, math.ceil(w / m) * m, self.tile, self.overlap)

    def _noise(self, batch: int, h: int, w: int) -> torch.Tensor | None:
        g = self.generator
        if g.noise_channels == 0:
            return None
        # Drawn on the CPU so a seed gives the same image on every device.
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(batch, g.noise_channels, h * g.noise_ratio, w * g.noise_ratio, generator=gen)
        return noise.to(self.device, self.dtype)

    @torch.inference_mode()
    def run(self, lr: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """``lr``: (B, 3, h, w) in [0, 1] on any device. Returns (B, 3, s*h, s*w) float32 on the CPU."""
        g = self.generator
        x = lr.to(self.device, self.dtype)
        x, (h, w) = pad_to_multiple(x, self.multiple)
        noise = self._noise(x.shape[0], x.shape[-2], x.shape[-1])
        tiled = self.tile > 0 and (x.shape[-2] > self.tile or x.shape[-1] > self.tile)
        if not tiled:
            out = g(x, noise) if noise is not None else g(x)
            if progress is not None:
                progress(1, 1)
        elif self.latent:
            lat = g.latent_ratio  # latent pixels per input pixel (may be fractional: 0.5 for SD at x4)
            cond = g.encode(x)
            inputs = [TileInput(cond, 1)]
            if noise is not None:
                inputs.append(TileInput(noise, round(g.noise_ratio / lat)))
            z = tiled_apply(
                g.denoise,
                inputs,
                out_ratio=1,
                tile=round(self.tile * lat),
                overlap=round(self.overlap * lat),
                batch_size=self.batch_size,
                progress=progress,
            )
            out = g.decode(z.to(self.dtype))
        else:
            inputs = [TileInput(x, 1)]
            if noise is not None:
                inputs.append(TileInput(noise, g.noise_ratio))
            out = tiled_apply(
                g,
                inputs,
                out_ratio=g.scale,
                tile=self.tile,
                overlap=self.overlap,
                batch_size=self.batch_size,
                progress=progress,
            )
        s = g.scale
        out = out[..., : h * s, : w * s].float().clamp(0, 1)
        if self.color_fix != "none":
            ref = F.interpolate(lr.to(out.device).float(), scale_factor=s, mode="bicubic").clamp(0, 1)
            out = apply_color_fix(out, ref, self.color_fix).clamp(0, 1)
        return out.cpu()
