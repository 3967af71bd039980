"""D3SR (Li et al., 2024/2025): a one-step SD generator trained with no teacher, against a
large-scale diffusion discriminator, with MSE + edge-aware DISTS.

The authors released no code or weights: every choice the paper leaves open is a configurable
default here and is listed in docs/methods/d3sr.md.

Phases per step: the generator (UNet LoRA) minimises
    w_mse * MSE(x_hat, x) + EA-DISTS(x_hat, x) + w_gan * L_G(D(q(z_hat, t), t))
then the discriminator (backbone LoRA + MLP head) minimises L_D on the same step's real and
generated latents, noised to the same random t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import DTYPES
from ..generators.sd_onestep import SDOneStepConfig, SDOneStepGenerator, load_base, random_sd_generator
from ..hub import WeightsNotFoundError
from ..losses import EADISTS, d_loss, g_loss
from ..nets.diffusion_discriminator import DISC_TARGETS, DiffusionDiscriminator, DiffusionDiscriminatorConfig
from ..nets.sd_base import LoraSettings, add_unet_lora, add_vae_encoder_lora, embed_prompt
from ..training.config import RunConfig
from ..training.recipe import Phase, Recipe
from .base import Method


@dataclass(frozen=True)
class D3SRLosses:
    mse_weight: float = 1.0
    dists_weight: float = 1.0  # EA-DISTS image term
    edge_weight: float = 1.0  # EA-DISTS edge (Sobel) term
    gan_weight: float = 0.05
    gan_loss: Literal["hinge", "non-saturating"] = "hinge"
    dists_weights: str = "pyiqa"  # pyiqa's cache/download, a file, or "random" (offline tests)


@dataclass(frozen=True)
class D3SRConfig:
    """The [model] section of a D3SR run."""

    generator: SDOneStepConfig = field(default_factory=SDOneStepConfig)
    discriminator: DiffusionDiscriminatorConfig = field(default_factory=DiffusionDiscriminatorConfig)
    losses: D3SRLosses = field(default_factory=D3SRLosses)
    prompt: str = ""  # fixed prompt, embedded once (D3SR runs without text)
    frozen_dtype: Literal["fp32", "bf16", "fp16"] = "fp32"  # frozen base weights; LoRA stays fp32
    discriminator_lr: float = 0.0  # 0 = train.lr


class GeneratorNet(nn.Module):
    """LR in [0, 1] -> x0 latent; the module DDP wraps and EMA tracks (its LoRA parameters)."""

    def __init__(self, gen: SDOneStepGenerator):
        super().__init__()
        self.gen = gen

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.gen.config.vae_encoder_lora_rank > 0):
            z = self.gen.encode(lr)
        return self.gen.denoise(z)

    def enable_gradient_checkpointing(self) -> None:
        self.gen.unet.enable_gradient_checkpointing()


class D3SRRecipe(Recipe):
    phases = (Phase("generator", "generator"), Phase("discriminator", "discriminator"))

    def __init__(self, run: RunConfig):
        super().__init__()
        cfg: D3SRConfig = run.model
        if run.data.scale != cfg.generator.scale:
            raise ValueError(
                f"data.scale ({run.data.scale}) must equal model.generator.scale ({cfg.generator.scale})"
            )
        unet, vae, sched = load_base(cfg.generator)
        prompt = embed_prompt(cfg.generator.base, cfg.prompt, unet.config.cross_attention_dim)
        frozen = DTYPES[cfg.frozen_dtype]
        for net in (unet, vae):
            if net.dtype != frozen:
                net.to(frozen)
        add_unet_lora(unet, cfg.generator.lora)
        if cfg.generator.vae_encoder_lora_rank:
            add_vae_encoder_lora(vae, cfg.generator.vae_encoder_lora_rank)
        self.gen = SDOneStepGenerator(cfg.generator, unet, vae, sched, prompt)
        self.gnet = GeneratorNet(self.gen)
        self.disc = DiffusionDiscriminator(cfg.discriminator)
        if self.disc.unet.dtype != frozen:
            self.disc.unet.to(frozen)
        for module in (self.gnet, self.disc):  # trainable LoRA/head parameters in fp32
            for p in module.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        w = cfg.losses
        self.losses = w
        self.ea_dists = (
            EADISTS(w.dists_weights, w.dists_weight, w.edge_weight)
            if (w.dists_weight or w.edge_weight)
            else None
        )
        self.phase_lrs = {"discriminator": cfg.discriminator_lr} if cfg.discriminator_lr else {}

    def networks(self):
        return {"generator": self.gnet, "discriminator": self.disc}

    def train(self, mode: bool = True):
        super().train(mode)
        self.gen.vae.eval()
        if self.ea_dists is not None:
            self.ea_dists.eval()
        return self

    def loss(self, phase, batch, state):
        if phase == "generator":
            return self._generator_loss(batch, state)
        return self._discriminator_loss(state)

    def _generator_loss(self, batch, state):
        w = self.losses
        gen = self.gen
        z_hat = self.wrapped["generator"](batch.lr)
        sr = gen.decode(z_hat)
        hr = batch.hr.float()
        mse = F.mse_loss(sr.float(), hr)
        logs = {"mse": mse.item()}
        loss = w.mse_weight * mse
        if self.ea_dists is not None:
            ead = self.ea_dists(sr.float().clamp(0, 1), hr)
            loss = loss + ead
            logs["ea_dists"] = ead.item()
        with torch.no_grad():
            state["real"] = (
                gen.vae.encode(batch.hr.to(z_hat.dtype) * 2 - 1).latent_dist.mode() * gen.scaling_factor
            )
        state["fake"] = z_hat.detach()
        if w.gan_weight:
            t = self.disc.sample_timesteps(z_hat.shape[0], z_hat.device)
            adv = g_loss(self.disc(z_hat, t).float(), w.gan_loss)  # unwrapped: D's gradients are discarded
            loss = loss + w.gan_weight * adv
            logs["gan"] = adv.item()
        return loss, logs

    def _discriminator_loss(self, state):
        real, fake = state["real"], state["fake"]
        b = real.shape[0]
        t = self.disc.sample_timesteps(b, real.device)
        noise = torch.randn_like(real)
        logits = self.wrapped["discriminator"](
            torch.cat([real, fake.to(real.dtype)]), torch.cat([t, t]), torch.cat([noise, noise])
        ).float()
        loss = d_loss(logits[:b], logits[b:], self.losses.gan_loss)
        return loss, {
            "d_loss": loss.item(),
            "d_real": logits[:b].mean().item(),
            "d_fake": logits[b:].mean().item(),
        }

    def generator(self):
        return self.gen


TINY_LORA = LoraSettings(rank=4, alpha=4.0)
FULL_DATA = dict(degradation="realesrgan", gt_size=512, crop_pad_size=576, val_size=512, val_count=8)
FULL_TRAIN = dict(
    max_steps=100_000,
    batch_size=4,
    lr=5e-5,
    weight_decay=1e-2,
    warmup_steps=500,
    grad_clip=1.0,
    mixed_precision="bf16",
    gradient_checkpointing=True,
    ema_decay=0.999,
    validate_every=2500,
    checkpoint_every=2500,
)
TRAIN_PRESETS = {
    # Random tiny SD UNet/VAE and SDXL-like discriminator, random-VGG DISTS: CPU, seconds per step.
    "tiny": lambda: RunConfig.build(
        "d3sr",
        D3SRConfig(
            generator=SDOneStepConfig(base="tiny", lora=TINY_LORA, vae_tile=0),
            discriminator=DiffusionDiscriminatorConfig(
                backbone="tiny-sdxl", lora=LoraSettings(4, 4.0, DISC_TARGETS), head_hidden=32
            ),
            losses=D3SRLosses(dists_weights="random"),
        ),
        dict(
            degradation="realesrgan",
            gt_size=64,
            crop_pad_size=80,
            val_size=64,
            val_count=2,
            cache_images=True,
            rescale_gt=False,
        ),
        dict(
            max_steps=20,
            batch_size=2,
            lr=1e-4,
            ema_decay=0.99,
            validate_every=0,
            checkpoint_every=10,
            log_every=1,
            sample_images=2,
        ),
    ),
    # The paper's setting as we read it: SD-Turbo generator, SDXL-base discriminator (docs/methods/d3sr.md).
    "sd-turbo": lambda: RunConfig.build("d3sr", D3SRConfig(frozen_dtype="bf16"), FULL_DATA, FULL_TRAIN),
    # The smaller option: SD 2.1-base for both the generator and the discriminator.
    "sd21": lambda: RunConfig.build(
        "d3sr",
        D3SRConfig(
            generator=SDOneStepConfig(base="sd-2-1-base"),
            discriminator=DiffusionDiscriminatorConfig(backbone="sd-2-1-base"),
            frozen_dtype="bf16",
        ),
        FULL_DATA,
        FULL_TRAIN,
    ),
}


class D3SRMethod(Method):
    def build_default(self, scale=None):
        raise WeightsNotFoundError(
            "D3SR has no released weights (the authors published none). Train one with "
            "`sr1step train --method d3sr` and pass its export folder with --weights."
        )

    def random_generator(self) -> SDOneStepGenerator:
        return random_sd_generator()

    def from_folder(self, folder: Path) -> SDOneStepGenerator:
        return SDOneStepGenerator.from_folder(folder)


D3SR = D3SRMethod(
    "d3sr",
    "D3SR: one-step SD (LoRA) trained against a large-scale diffusion discriminator, MSE + EA-DISTS",
    published_as="D3SR",
    recipe=D3SRRecipe,
    config_class=D3SRConfig,
    presets=TRAIN_PRESETS,
    default_preset="sd-turbo",
)


def parameter_report(cfg: D3SRConfig) -> dict[str, int]:
    """Parameter counts of a D3SR configuration, built on the meta device (no weights needed):
    known bases (sd-turbo, sd-2-1-base, sdxl-base, tiny) use their published configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ..nets import sd_configs as sc

    unets = {
        "sd-turbo": sc.SD21_UNET,
        "sd-2-1-base": sc.SD21_UNET,
        "sdxl-base": sc.SDXL_UNET,
        "tiny": sc.TINY_SD_UNET,
    }
    vaes = {"sd-turbo": sc.SD_VAE, "sd-2-1-base": sc.SD_VAE, "tiny": sc.TINY_SD_VAE}
    disc_unets = {**unets, "tiny-sdxl": sc.TINY_SDXL_UNET}
    g, d = cfg.generator, cfg.discriminator
    if g.base not in unets or d.backbone not in disc_unets:
        raise ValueError(
            "parameter_report knows the sd-turbo, sd-2-1-base, sdxl-base, tiny and tiny-sdxl configs only"
        )
    with torch.device("meta"):  # counts without allocating weights
        unet, vae = UNet2DConditionModel(**unets[g.base]), AutoencoderKL(**vaes[g.base])
        counts = {
            "generator_unet": sum(p.numel() for p in unet.parameters()),
            "generator_vae": sum(p.numel() for p in vae.parameters()),
        }
        add_unet_lora(unet, g.lora)
        counts["generator_lora"] = sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n)
        disc = DiffusionDiscriminator(
            d, UNet2DConditionModel(**disc_unets[d.backbone]), dict(sc.SD_SCHEDULER)
        )
    counts["generator_total"] = counts["generator_unet"] + counts["generator_vae"] + counts["generator_lora"]
    counts["discriminator_trainable"] = sum(p.numel() for p in disc.parameters() if p.requires_grad)
    counts["discriminator_backbone"] = sum(p.numel() for p in disc.parameters() if not p.requires_grad)
    return counts
