"""D3SR's large-scale diffusion discriminator.

A pretrained diffusion UNet (default: SDXL base) keeps only its down blocks and mid block, gets
a LoRA, and feeds its mid-block features to a randomly initialised MLP head that scores every
feature position (a patch-wise realism map). Real and generated latents are first diffused
forward to a random timestep t ~ U[t_min, t_max] with the backbone's noise schedule, so the
discriminator judges noisy features at any noise level. It never runs at inference.

Conditioning: SDXL's cross-attention gets a zero (null) text context, its pooled text embedding
is zero and its size/crop ids describe the latent's pixel size without cropping.

Latent spaces: the generator's latents (SD 2.x VAE, x 0.18215) and SDXL's (its own VAE,
x 0.13025) are both scaled to about unit variance but are different spaces. By default they are
fed as they are and the LoRA adapts (``latent_scale = 1``); ``latent_scale = 0.715``
(0.13025 / 0.18215) matches raw-latent magnitudes instead. Both are configurable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .sd_base import LoraSettings, load_sd_unet

DISC_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "conv",
)


@dataclass(frozen=True)
class DiffusionDiscriminatorConfig:
    backbone: str = (
        "sdxl-base"  # model card, diffusers folder with unet/, or "tiny-sdxl" (random tiny SDXL-like UNet)
    )
    lora: LoraSettings = field(
        default_factory=lambda: LoraSettings(rank=16, alpha=16.0, targets=DISC_TARGETS)
    )
    head_hidden: int = 512
    t_min: int = 20
    t_max: int = 980
    latent_scale: float = 1.0  # applied to generator latents before noising (see module docstring)


class DiffusionDiscriminator(nn.Module):
    """``forward(latents, t)`` -> (B, 1, h, w) realism logits for (noised) latents."""

    def __init__(self, cfg: DiffusionDiscriminatorConfig, unet=None, scheduler_config: dict | None = None):
        super().__init__()
        from diffusers import DDPMScheduler
        from peft import LoraConfig, inject_adapter_in_model

        if unet is None:
            unet, scheduler_config = load_sd_unet(cfg.backbone)
        self.config = cfg
        # Keep the down blocks and the mid block; drop the decoder half.
        unet.up_blocks = nn.ModuleList()
        unet.conv_norm_out = None
        unet.conv_act = None
        unet.conv_out = None
        unet.requires_grad_(False)
        inject_adapter_in_model(
            LoraConfig(
                r=cfg.lora.rank,
                lora_alpha=cfg.lora.alpha,
                init_lora_weights="gaussian",
                target_modules=list(cfg.lora.targets),
            ),
            unet,
        )
        self.unet = unet
        width = unet.config.block_out_channels[-1]
        self.head = nn.Sequential(
            nn.Conv2d(width, cfg.head_hidden, 1), nn.LeakyReLU(0.2), nn.Conv2d(cfg.head_hidden, 1, 1)
        )
        sched = DDPMScheduler.from_config(scheduler_config)
        self.register_buffer("alphas_cumprod", sched.alphas_cumprod.float(), persistent=False)

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()

    def sample_timesteps(self, batch: int, device) -> torch.Tensor:
        return torch.randint(self.config.t_min, self.config.t_max + 1, (batch,), device=device)

    def add_noise(self, latents: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        abar = self.alphas_cumprod.to(latents.device)[t].view(-1, 1, 1, 1).to(latents.dtype)
        return abar.sqrt() * latents + (1 - abar).sqrt() * noise

    def features(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        unet = self.unet
        b = x.shape[0]
        dtype = next(unet.conv_in.parameters()).dtype
        emb = unet.time_embedding(unet.time_proj(t).to(dtype))
        context = torch.zeros(b, 77, unet.config.cross_attention_dim, device=x.device, dtype=dtype)
        if unet.config.addition_embed_type == "text_time":
            h_px, w_px = x.shape[-2] * 8, x.shape[-1] * 8
            ids = torch.tensor([h_px, w_px, 0, 0, h_px, w_px], device=x.device, dtype=dtype).expand(b, -1)
            time_embeds = unet.add_time_proj(ids.flatten()).reshape(b, -1)
            pooled_dim = unet.config.projection_class_embeddings_input_dim - time_embeds.shape[1]
            pooled = torch.zeros(b, pooled_dim, device=x.device, dtype=dtype)
            emb = emb + unet.add_embedding(torch.cat([pooled, time_embeds], dim=-1).to(dtype))
        h = unet.conv_in(x.to(dtype))
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, _ = block(hidden_states=h, temb=emb, encoder_hidden_states=context)
            else:
                h, _ = block(hidden_states=h, temb=emb)
        return unet.mid_block(h, emb, encoder_hidden_states=context)

    def forward(
        self, latents: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Noise the latents (the generator's scaled latents) to step t and score them."""
        latents = latents * self.config.latent_scale
        noise = torch.randn_like(latents) if noise is None else noise
        feats = self.features(self.add_noise(latents, t, noise), t)
        return self.head(feats.to(self.head[0].weight.dtype))
