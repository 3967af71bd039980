"""ResShift's denoiser, ``UNetModelSwin`` (Yue et al., NeurIPS 2023), written for sr1step.

An ADM-style UNet (GroupNorm32, SiLU, scale-shift timestep conditioning) whose first residual
block at each level is followed by a Swin layer (window attention, GroupNorm instead of
LayerNorm, 1x1-conv MLP). The LR image is concatenated to the latent (``cond_lq``). Parameter and
buffer names follow the official checkpoints one to one, so ``resshift_realsrx4_s15_v1.pth`` and
friends load with ``strict=True``.

Two details of the official code are reproduced on purpose, for output parity:
- the shifted-window attention mask is always recomputed for the actual input size (the official
  size check compares a list with a tuple and never matches), and
- that mask is built with the official indexing, which labels regions along one axis only.
The ``attn_mask`` buffers are kept for checkpoint compatibility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .swin import BasicLayer, GroupNorm32, PatchProj  # noqa: F401 - GroupNorm32 re-exported


@dataclass(frozen=True)
class ResShiftUNetConfig:
    """Constructor arguments of the official ``UNetModelSwin`` that sr1step supports."""

    image_size: int = 64  # latent size the Swin layers are built for (sets windows and masks)
    in_channels: int = 3  # latent channels (x_t)
    model_channels: int = 160
    out_channels: int = 3
    num_res_blocks: tuple[int, ...] = (2, 2, 2, 2)
    attention_resolutions: tuple[int, ...] = (64, 32, 16, 8)
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)
    dropout: float = 0.0
    conv_resample: bool = True
    num_heads: int = -1
    num_head_channels: int = 32
    use_scale_shift_norm: bool = True
    swin_depth: int = 2
    swin_embed_dim: int = 192
    window_size: int = 8
    mlp_ratio: float = 4.0
    cond_lq: bool = True
    lq_size: int = 64  # LR size; > image_size adds a strided conv feature extractor (x2, face)
    extra_in_channels: int = 0  # RSD: noise channel(s) appended to the input, zero-initialised

    @property
    def size_multiple(self) -> int:
        """Latent sides must be multiples of this (window x 2^(levels-1))."""
        return self.window_size * 2 ** (len(self.channel_mult) - 1)

    @property
    def lq_channels(self) -> int:
        if self.lq_size == self.image_size:
            return 3
        return 16 * 2 ** int(math.log2(self.lq_size / self.image_size))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding, cosines first (ADM convention); integer indices t, not rescaled."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepSequential(nn.Sequential):
    """Passes the timestep embedding to the children that take it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Downsample(nn.Module):
    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock(nn.Module):
    def __init__(
        self, channels: int, emb_channels: int, dropout: float, out_channels: int, scale_shift: bool
    ):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if scale_shift else out_channels)
        )
        conv_out = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(conv_out.weight)
        nn.init.zeros_(conv_out.bias)
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout), conv_out)
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.scale_shift:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class ResShiftUNet(nn.Module):
    """``forward(x, t, lq, noise=None)``: x (B, C, H, W) scaled latent, t (B,) integer step
    indices, lq (B, 3, H*lq_size/image_size, ...) LR image in [-1, 1], noise (B, extra_in_channels,
    H, W) or None (RSD's noise input). Returns the x0 prediction (B, out_channels, H, W)."""

    def __init__(self, cfg: ResShiftUNetConfig):
        super().__init__()
        self.config = cfg
        self.gradient_checkpointing = False
        mc = cfg.model_channels
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        if cfg.lq_size == cfg.image_size:
            self.feature_extractor: nn.Module = nn.Identity()
        else:
            layers, cin, width = [], 3, 16
            for _ in range(int(math.log2(cfg.lq_size / cfg.image_size))):
                layers += [nn.Conv2d(cin, width, 3, 1, 1), nn.SiLU(), Downsample(width, width * 2)]
                width *= 2
                cin = width
            self.feature_extractor = nn.Sequential(*layers)

        def res(cin, cout):
            return ResBlock(cin, emb_dim, cfg.dropout, cout, cfg.use_scale_shift_norm)

        ch = mc * cfg.channel_mult[0]
        first_in = cfg.in_channels + cfg.lq_channels + cfg.extra_in_channels
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(first_in, ch, 3, padding=1))])
        skips, ds = [ch], cfg.image_size
        self.level_ends: list[int] = []
        for level, mult in enumerate(cfg.channel_mult):
            for j in range(cfg.num_res_blocks[level]):
                layers = [res(ch, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions and j == 0:
                    layers.append(BasicLayer(ch, cfg, ds))
                self.input_blocks.append(TimestepSequential(*layers))
                skips.append(ch)
            self.level_ends.append(len(skips) - 1)  # index in the input blocks' outputs
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(
                    TimestepSequential(Downsample(ch) if cfg.conv_resample else nn.AvgPool2d(2))
                )
                skips.append(ch)
                ds //= 2

        self.middle_block = TimestepSequential(res(ch, ch), BasicLayer(ch, cfg, ds), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks[level] + 1):
                layers = [res(ch + skips.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions and i == 0:
                    layers.append(BasicLayer(ch, cfg, ds))
                if level and i == cfg.num_res_blocks[level]:
                    layers.append(Upsample(ch) if cfg.conv_resample else nn.Upsample(scale_factor=2))
                    ds *= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), nn.Conv2d(mc * cfg.channel_mult[0], cfg.out_channels, 3, padding=1)
        )
        if cfg.extra_in_channels:
            with torch.no_grad():
                self.input_blocks[0][0].weight[:, -cfg.extra_in_channels :].zero_()

    def _run(self, block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, emb, use_reentrant=False)
        return block(h, emb)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute block activations in the backward pass (the diffusers method name)."""
        self.gradient_checkpointing = True

    def _encode(self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor, noise: torch.Tensor | None):
        """The UNet's first half: (skip features of every input block, middle output, embedding)."""
        emb = self.time_embed(
            timestep_embedding(t, self.config.model_channels).to(self.time_embed[0].weight.dtype)
        )
        parts = [x, self.feature_extractor(lq.type(x.dtype))]
        if self.config.extra_in_channels:
            if noise is None:
                raise ValueError("this network takes a noise input (extra_in_channels > 0)")
            parts.append(noise.type(x.dtype))
        h = torch.cat(parts, dim=1)
        hs = []
        for block in self.input_blocks:
            h = self._run(block, h, emb)
            hs.append(h)
        return hs, self._run(self.middle_block, h, emb), emb

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        hs, h, emb = self._encode(x, t, lq, noise)
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)

    def encoder_features(
        self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor, noise: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Features for discriminators on the encoder (TAD-SR, RSD): the output of each level's
        last block, then the middle block's. The same computation as ``forward``'s first half; no
        parameter or buffer is added, so outputs and state-dict keys are unchanged."""
        hs, h, _ = self._encode(x, t, lq, noise)
        return [hs[i] for i in self.level_ends] + [h]

    @property
    def feature_channels(self) -> list[int]:
        """Channels of ``encoder_features``, in order."""
        mc, mult = self.config.model_channels, self.config.channel_mult
        return [mc * m for m in mult] + [mc * mult[-1]]


def widen_input_conv(state: dict[str, torch.Tensor], extra: int) -> dict[str, torch.Tensor]:
    """A 6-channel-input state dict widened by ``extra`` zero input channels (RSD student init)."""
    state = dict(state)
    w = state["input_blocks.0.0.weight"]
    state["input_blocks.0.0.weight"] = torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], dim=1)
    return state


def narrow_input_conv(state: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """A state dict whose first conv keeps only its first ``channels`` inputs: an RSD student
    (extra noise input last) as the start of a network without it."""
    state = dict(state)
    for key in [k for k in state if k.endswith("input_blocks.0.0.weight")]:
        state[key] = state[key][:, :channels]
    return state


def load_official_state(net: ResShiftUNet, state: dict[str, torch.Tensor]) -> None:
    """Strict load of an official (already prefix-stripped) state dict; attention masks follow
    the network's construction size, so they are taken from the network when shapes differ."""
    own = net.state_dict()
    state = dict(state)
    for name in own:
        if name.endswith("attn_mask") and name in state and state[name].shape != own[name].shape:
            state[name] = own[name]
    net.load_state_dict(state, strict=True)
