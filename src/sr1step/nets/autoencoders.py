"""First-stage autoencoders for ResShift-family models.

- ``vq``: the CompVis latent-diffusion VQ-f4 (``autoencoder_vq_f4.pth``: embed dim 3, 8192 codes,
  ch 128, ch_mult [1, 2, 4]) as a diffusers ``VQModel``, with an exact converter from the
  official key layout. Encoding returns the un-quantised latent; decoding quantises first, as
  ResShift does.
- ``pixel``: the identity (latent = image), for small ResShift models trained without one.
- ``unshuffle``: lossless space-to-depth by ``unshuffle`` (pixel_unshuffle; 4 turns an x4 HR image
  into 48 channels at the LR size), so the denoiser runs at the LR resolution: far cheaper on a CPU.

Both map images in [-1, 1] to latents and back, optionally in overlapping tiles so large images
fit in memory (the VQ mid-block attention is global and quadratic in the latent size).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..tiling import TileInput, tiled_apply


@dataclass(frozen=True)
class AutoencoderConfig:
    kind: Literal["vq", "pixel", "unshuffle"] = "vq"
    embed_dim: int = 3
    n_embed: int = 8192
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 3
    tile: int = 256  # latent pixels per tile for encode/decode of large inputs; 0 = never tile
    tile_overlap: int = 32
    unshuffle: int = 4  # space-to-depth factor of the ``unshuffle`` kind

    @property
    def factor(self) -> int:
        return {"pixel": 1, "unshuffle": self.unshuffle}.get(self.kind, 2 ** (len(self.ch_mult) - 1))

    @property
    def latent_channels(self) -> int:
        return {"pixel": 3, "unshuffle": 3 * self.unshuffle**2}.get(self.kind, self.embed_dim)

    @property
    def image_space(self) -> bool:
        """Latents are pixel values (clipped to [-1, 1] while sampling)."""
        return self.kind != "vq"


def build_vqmodel(cfg: AutoencoderConfig):
    from diffusers import VQModel

    n = len(cfg.ch_mult)
    return VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks,
        latent_channels=cfg.z_channels,
        num_vq_embeddings=cfg.n_embed,
        vq_embed_dim=cfg.embed_dim,
        norm_num_groups=32,
        scaling_factor=1.0,
    )


class Autoencoder(nn.Module):
    """``encode``: image (B, 3, H, W) in [-1, 1] -> latent (B, C, H/f, W/f); ``decode``: back."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.config = cfg
        self.vq = build_vqmodel(cfg) if cfg.kind == "vq" else None

    @property
    def factor(self) -> int:
        return self.config.factor

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vq.encode(x).latents

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(self.quantize(z), force_not_quantize=True).sample

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codebook entries, with the official distance ``z^2 + e^2 - 2 z.e`` (diffusers'
        ``torch.cdist`` breaks near-ties differently), returned straight-through as the official
        ``VectorQuantizer2`` does: ``z + (z_q - z)``."""
        codebook = self.vq.quantize.embedding.weight
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()  # fp32 distances: no bf16 near-ties
        book = codebook.float()
        dist = flat.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2 * flat @ book.t()
        z_q = codebook[dist.argmin(1)].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        return z + (z_q - z)

    def _tiled(self, z_hw: tuple[int, int]) -> bool:
        t = self.config.tile
        return t > 0 and max(z_hw) > t

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "unshuffle":
            return F.pixel_unshuffle(x, self.factor)
        if self.vq is None:
            return x
        f = self.factor
        if not self._tiled((x.shape[-2] // f, x.shape[-1] // f)):
            return self._encode(x)
        return tiled_apply(
            self._encode,
            [TileInput(x, f)],
            out_ratio=1,
            tile=self.config.tile,
            overlap=self.config.tile_overlap,
        ).to(x.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "unshuffle":
            return F.pixel_shuffle(z, self.factor)
        if self.vq is None:
            return z
        if not self._tiled(z.shape[-2:]):
            return self._decode(z)
        return tiled_apply(
            self._decode,
            [TileInput(z, 1)],
            out_ratio=self.factor,
            tile=self.config.tile,
            overlap=self.config.tile_overlap,
        ).to(z.dtype)


# --- official (CompVis ldm) <-> diffusers key layout -------------------------------------------

_RESNET = {
    "nin_shortcut": "conv_shortcut",
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _map_ldm_key(key: str, levels: int) -> str:
    """One official VQModelTorch key -> its diffusers VQModel name."""
    for side in ("encoder", "decoder"):
        prefix = side + "."
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if rest.startswith("norm_out."):
            return f"{side}.conv_norm_out.{rest[len('norm_out.') :]}"
        m = re.match(r"(down|up)\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$", rest)
        if m:
            kind, level, block, layer, param = m.groups()
            blocks = "down_blocks" if kind == "down" else "up_blocks"
            level = int(level) if kind == "down" else levels - 1 - int(level)
            return f"{side}.{blocks}.{level}.resnets.{block}.{_RESNET[layer]}.{param}"
        m = re.match(r"down\.(\d+)\.downsample\.conv\.(weight|bias)$", rest)
        if m:
            return f"{side}.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
        m = re.match(r"up\.(\d+)\.upsample\.conv\.(weight|bias)$", rest)
        if m:
            return f"{side}.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"
        m = re.match(r"mid\.block_(\d)\.(\w+)\.(weight|bias)$", rest)
        if m:
            return f"{side}.mid_block.resnets.{int(m[1]) - 1}.{_RESNET[m[2]]}.{m[3]}"
        m = re.match(r"mid\.attn_1\.(\w+)\.(weight|bias)$", rest)
        if m:
            return f"{side}.mid_block.attentions.0.{_ATTN[m[1]]}.{m[2]}"
        if rest.startswith(("conv_in.", "conv_out.")):
            return key
        raise KeyError(f"unexpected autoencoder key {key!r}")
    if key.startswith(("quant_conv.", "post_quant_conv.", "quantize.embedding.")):
        return key
    raise KeyError(f"unexpected autoencoder key {key!r}")


def convert_ldm_vq_state_dict(state: dict[str, torch.Tensor], levels: int = 3) -> dict[str, torch.Tensor]:
    """Official ``VQModelTorch`` state dict -> diffusers ``VQModel`` state dict. Every tensor is
    mapped (1x1 attention convs become linear weights); an unknown key raises."""
    out = {}
    for key, value in state.items():
        new = _map_ldm_key(key, levels)
        if ".attentions.0.to_" in new and new.endswith(".weight") and value.dim() == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    return out


def diffusers_to_ldm_vq_state_dict(
    state: dict[str, torch.Tensor], levels: int = 3
) -> dict[str, torch.Tensor]:
    """The inverse mapping (used to check the converter is a bijection)."""
    inverse: dict[str, str] = {}
    for side in ("encoder", "decoder"):
        for lv in range(levels):
            for blk in range(4):
                for old, new in _RESNET.items():
                    for p in ("weight", "bias"):
                        inverse[f"{side}.down_blocks.{lv}.resnets.{blk}.{new}.{p}"] = (
                            f"{side}.down.{lv}.block.{blk}.{old}.{p}"
                        )
                        inverse[f"{side}.up_blocks.{lv}.resnets.{blk}.{new}.{p}"] = (
                            f"{side}.up.{levels - 1 - lv}.block.{blk}.{old}.{p}"
                        )
            for p in ("weight", "bias"):
                inverse[f"{side}.down_blocks.{lv}.downsamplers.0.conv.{p}"] = (
                    f"{side}.down.{lv}.downsample.conv.{p}"
                )
                inverse[f"{side}.up_blocks.{lv}.upsamplers.0.conv.{p}"] = (
                    f"{side}.up.{levels - 1 - lv}.upsample.conv.{p}"
                )
        for p in ("weight", "bias"):
            for i in (0, 1):
                for old, new in _RESNET.items():
                    inverse[f"{side}.mid_block.resnets.{i}.{new}.{p}"] = f"{side}.mid.block_{i + 1}.{old}.{p}"
            for old, new in _ATTN.items():
                inverse[f"{side}.mid_block.attentions.0.{new}.{p}"] = f"{side}.mid.attn_1.{old}.{p}"
            inverse[f"{side}.conv_norm_out.{p}"] = f"{side}.norm_out.{p}"
    out = {}
    for key, value in state.items():
        old = inverse.get(key, key)
        if ".mid.attn_1." in old and old.endswith(".weight") and value.dim() == 2:
            value = value[:, :, None, None]
        out[old] = value
    return out
