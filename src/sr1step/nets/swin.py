"""The Swin layers of ResShift's UNet (``nets/resshift_unet.py``), and the float32 GroupNorm both use.

Window attention with a relative position bias, GroupNorm instead of LayerNorm and a 1x1-conv MLP,
named as the official checkpoints name them. Two details of the official code are reproduced on
purpose, for output parity: the shifted-window mask is recomputed for the actual input size, and
it is built with the official indexing, which labels regions along one axis only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .resshift_unet import ResShiftUNetConfig


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (the official normalisation layer)."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float32 statistics and affine, whatever the model dtype (the official keeps norms fp32)
        return F.group_norm(
            x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps
        ).type(x.dtype)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * nW, ws, ws, C), windows in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // ws, ws, w // ws, ws)  # reshape: channels_last inputs are not views
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, ws, ws, C) -> (B, C, H, W)."""
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.reshape(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, -1, h, w)


def relative_position_index(ws: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


def shifted_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask (0 / -100) for shifted windows, as the official code builds it.

    The official code fills a (1, 1, H, W) label image with ``img[:, hs, ws_, :] = cnt``, which
    indexes the singleton channel axis and the row axis; its windows are then flattened
    column-major. Both are reproduced here so outputs match the released models.
    """
    img = torch.zeros(1, 1, h, w)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for a in cuts:
        for b in cuts:
            img[:, a, b, :] = cnt
            cnt += 1
    windows = window_partition(img, ws).permute(0, 2, 3, 1).reshape(-1, ws * ws)
    mask = windows[:, None, :] - windows[:, :, None]
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, ws: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ws = ws
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1).to(q.dtype)  # heads, N, N
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
        else:  # windows as (B, nW, ...) so the (nW, N, N) mask broadcasts without a copy
            nw = mask.shape[0]
            q, k, v = (u.reshape(bw // nw, nw, self.heads, n, -1) for u in (q, k, v))
            attn_bias = bias[None, None] + mask[None, :, None].to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias).reshape(bw, self.heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        if resolution <= window:  # the window covers the whole (construction-time) map
            window, shift = resolution, 0
        self.window, self.shift = window, shift
        self.norm1 = GroupNorm32(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = GroupNorm32(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(resolution, resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask)  # stored in official checkpoints; not used
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def _mask(self, h: int, w: int, device, dtype) -> torch.Tensor | None:
        if not self.shift:
            return None
        key = (h, w, device, dtype)
        if key not in self._mask_cache:
            self._mask_cache[key] = shifted_window_mask(h, w, self.window, self.shift).to(device, dtype)
        return self._mask_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws, shift = self.window, self.shift
        y = self.norm1(x)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(2, 3))
        windows = window_partition(y, ws).reshape(-1, ws * ws, c)
        windows = self.attn(windows, self._mask(h, w, x.device, x.dtype))
        y = window_reverse(windows.view(-1, ws, ws, c), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(2, 3))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchProj(nn.Module):
    """1x1 conv in or out of the Swin embedding (``patch_embed`` / ``patch_unembed``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.proj(x)


class BasicLayer(nn.Module):
    """Swin stage: 1x1 embed, ``depth`` blocks alternating plain/shifted windows, 1x1 unembed."""

    def __init__(self, channels: int, cfg: ResShiftUNetConfig, resolution: int):
        super().__init__()
        heads = cfg.num_heads if cfg.num_head_channels == -1 else cfg.swin_embed_dim // cfg.num_head_channels
        dim = cfg.swin_embed_dim
        self.patch_embed = PatchProj(channels, dim)
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                resolution,
                heads,
                cfg.window_size,
                0 if i % 2 == 0 else cfg.window_size // 2,
                cfg.mlp_ratio,
            )
            for i in range(cfg.swin_depth)
        )
        self.patch_unembed = PatchProj(dim, channels)

    def forward(self, x):
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.patch_unembed(x)
