"""Tiling shared by the engine and the autoencoders: overlapping tiles blended without seams.

Tiles overlap and are blended with a window that is zero over the outer quarter of each overlap
and rises with a raised cosine to one. A model whose receptive field fits in that quarter
therefore gives the same output tiled or untiled, and no seam. Memory is bounded by the tile
size: tiles run ``batch_size`` at a time and their outputs accumulate into the result.
Stochastic generators' noise is a ``NoiseField``: each tile draws only its own part of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


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


class NoiseField:
    """Standard-normal noise of ``shape`` (B, C, H, W), drawn only where it is read.

    Each ``block`` x ``block`` square comes from its own CPU generator seeded with (seed, block
    row, block column), so a pixel's value depends on the seed and its position only: every crop
    agrees with the whole field (tiles agree in their overlaps, tiled == untiled, any device), and
    a crop costs memory of its own size, not the image's. Image i of a batch gets the same noise
    whatever the batch size.
    """

    def __init__(self, shape, seed: int, device=None, dtype=None, block: int = 64):
        self.shape = torch.Size(shape)
        self.seed, self.block = int(seed), block
        self.device, self.dtype = device, dtype

    def _block(self, row: int, col: int) -> torch.Tensor:
        b, c = self.shape[:2]
        seed = int(np.random.SeedSequence([self.seed, row, col]).generate_state(1)[0])
        g = torch.Generator().manual_seed(seed)
        return torch.randn(b, c, self.block, self.block, generator=g)

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """The field's rows [y0, y1) and columns [x0, x1) (clipped to its size)."""
        h, w = self.shape[-2:]
        y0, y1, x0, x1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        n = self.block
        out = torch.empty(*self.shape[:2], max(y1 - y0, 0), max(x1 - x0, 0))
        for row in range(y0 // n, -(-y1 // n)):
            for col in range(x0 // n, -(-x1 // n)):
                by, bx = row * n, col * n  # the block's corner
                top, bottom, left, right = max(y0, by), min(y1, by + n), max(x0, bx), min(x1, bx + n)
                part = self._block(row, col)[..., top - by : bottom - by, left - bx : right - bx]
                out[..., top - y0 : bottom - y0, left - x0 : right - x0] = part
        return out.to(self.device, self.dtype)

    def full(self) -> torch.Tensor:
        return self.crop(0, self.shape[-2], 0, self.shape[-1])


@dataclass
class TileInput:
    """A tensor (or a noise field) to tile along with the others: ``ratio`` of its pixels per
    grid pixel."""

    tensor: torch.Tensor | NoiseField
    ratio: int = 1

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Grid rows [y0, y1) and columns [x0, x1), in this input's pixels."""
        k = self.ratio
        if isinstance(self.tensor, NoiseField):
            return self.tensor.crop(y0 * k, y1 * k, x0 * k, x1 * k)
        return self.tensor[..., y0 * k : y1 * k, x0 * k : x1 * k]


# sink(y0, y1, rows): rows [y0, y1) of the output, blended and final, (B, C, y1 - y0, W) float32
Sink = Callable[[int, int, torch.Tensor], None]


def tiled_apply(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[TileInput],
    *,
    out_ratio: int,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    sink: Sink | None = None,
) -> torch.Tensor | None:
    """Run ``fn(*tiles)`` over overlapping tiles of ``inputs`` and blend the results.

    Sizes are in grid pixels (those of an input with ratio 1); ``fn`` maps tiles of t grid pixels
    to outputs of ``out_ratio``*t pixels. Tiles are stacked ``batch_size`` at a time, in rows.
    Returns the whole output, or, with a ``sink``, hands it over in bands of final rows as each
    row of tiles completes and returns None: memory is then one band, not the image.

    The blending windows are separable and every tile of a grid row (column) has the same
    vertical (horizontal) window, so their sum is an outer product of two 1-D sums.
    """
    ref = inputs[0]
    batch = ref.tensor.shape[0]
    grid_h, grid_w = ref.tensor.shape[-2] // ref.ratio, ref.tensor.shape[-1] // ref.ratio
    tile_h, tile_w = min(tile, grid_h), min(tile, grid_w)
    ys, xs = tile_starts(grid_h, tile_h, overlap), tile_starts(grid_w, tile_w, overlap)
    boxes = [(y, x) for y in ys for x in xs]
    r = out_ratio
    ov = overlap * r

    def window(start: int, size: int, length: int) -> torch.Tensor:
        return blend_ramp(size * r, ov, start > 0, start + size < length)

    wy = {y: window(y, tile_h, grid_h) for y in ys}
    wx = {x: window(x, tile_w, grid_w) for x in xs}
    sum_y, sum_x = torch.zeros(grid_h * r), torch.zeros(grid_w * r)
    for y in ys:
        sum_y[y * r : (y + tile_h) * r] += wy[y]
    for x in xs:
        sum_x[x * r : (x + tile_w) * r] += wx[x]
    sum_y, sum_x = sum_y.clamp_min(1e-12), sum_x.clamp_min(1e-12)

    out = None  # the whole output, or (with a sink) the band of rows [top, top + out.shape[-2])
    top = 0
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        args = []
        for inp in inputs:
            args.append(torch.cat([inp.crop(y, y + tile_h, x, x + tile_w) for y, x in chunk], dim=0))
        result = fn(*args).float()
        dev = result.device
        for i, (y, x) in enumerate(chunk):
            if out is None or (sink is not None and (y + tile_h) * r > top + out.shape[-2]):
                rows = (0, grid_h * r) if sink is None else (y * r, (y + tile_h) * r)
                out, top = _next_band(out, top, rows, (batch, result.shape[1], grid_w * r), dev)
            w = (wy[y].to(dev)[:, None] * wx[x].to(dev)[None, :]).to(result.dtype)
            rows = slice(y * r - top, (y + tile_h) * r - top)
            out[:, :, rows, x * r : (x + tile_w) * r] += result[i * batch : (i + 1) * batch] * w
            if sink is not None and x == xs[-1]:  # a row of tiles is complete
                nxt = ys[ys.index(y) + 1] * r if y != ys[-1] else grid_h * r
                if nxt > top:
                    band = out[:, :, : nxt - top]
                    band.div_(sum_y[top:nxt].to(dev)[:, None]).div_(sum_x.to(dev)[None, :])
                    sink(top, nxt, band)
                    out, top = out[:, :, nxt - top :], nxt
        if progress is not None:
            progress(min(start + batch_size, len(boxes)), len(boxes))
    if sink is not None:
        return None
    return out.div_(sum_y.to(out.device)[:, None]).div_(sum_x.to(out.device)[None, :])


def _next_band(old, old_top: int, rows: tuple[int, int], shape: tuple[int, int, int], device):
    """An accumulator of output ``rows`` (B, C, rows, W), holding the unfinished rows of ``old``."""
    top, bottom = rows
    b, c, w = shape
    band = torch.zeros(b, c, bottom - top, w, device=device)
    if old is not None and old.shape[-2]:
        keep = old[:, :, max(0, top - old_top) :]
        at = max(0, old_top - top)
        band[:, :, at : at + keep.shape[-2]] = keep
    return band, top


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    if tile <= 0:
        return 1
    return len(tile_starts(h, min(tile, h), overlap)) * len(tile_starts(w, min(tile, w), overlap))
