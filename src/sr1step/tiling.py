"""Tiling shared by the engine and the autoencoders: overlapping tiles blended without seams.

Tiles overlap and are blended with a window that is zero over the outer quarter of each overlap
and rises with a raised cosine to one. A model whose receptive field fits in that quarter
therefore gives the same output tiled or untiled, and no seam. Memory is bounded by the tile
size: tiles run ``batch_size`` at a time and their outputs accumulate into the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
