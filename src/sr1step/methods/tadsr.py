"""TAD-SR (He et al., 2024): time-aware distillation of ResShift into one step.

Official code: ``LearningHx/TAD-SR`` (read for facts; this is our own implementation). Every
choice is a field of ``TADSRConfig``; docs/methods/tadsr.md lists them with the official values.

Networks: the frozen teacher, which is also the discriminator's backbone (its encoder level and
middle-block features at a noisy input); the student, a copy of the teacher run once at t = T-1,
all parameters trained; the time-aware discriminator heads on the teacher's features.

Each step: the discriminator first (hinge; real = noisy HR latent, fake = noisy student latent
at the same t_d and noise), then the student:
    L_G = w_mse * MSE(z0_student, z0_teacher DDIM) + w_hfsd * HFSD + w_gan * (-mean D(fake))
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..diffusion.resshift import ResShiftSchedule
from ..nets.resshift_unet import timestep_embedding
from ..training.config import RunConfig
from ..training.recipe import Phase
from .resshift import ResShiftDistillation, ResShiftFamily
from .resshift_presets import COMPACT_DATA, COMPACT_DISTILL, TINY_DATA, real_variant


@dataclass(frozen=True)
class TADSRConfig:
    """The [model] section of a TAD-SR distillation run."""

    teacher: str = "resshift-realsr-x4-v1"  # card, weight folder or official file of a ResShift-family model
    teacher_steps: int = 0  # deterministic (DDIM) steps of the teacher's target; 0 = its whole chain
    mse_weight: float = 1.0
    hfsd_weight: float = 1.0
    hfsd_timesteps: tuple[int, ...] = (
        0,
        1,
        2,
    )  # t_h is drawn uniformly from these (the smallest noise levels)
    hfsd_target: Literal["teacher", "hr"] = (
        "teacher"  # the second noised point: the teacher's output or the HR latent
    )
    gan_weight: float = 0.02
    disc_max_timestep: int = 13  # t_d ~ U{0..disc_max_timestep} (T - 2 for v1)
    disc_embed_dim: int = 160  # timestep embedding of the FiLM layers
    disc_c_dim: int = 64  # projection conditioning of the heads
    official_uniform_noise: bool = False  # official code: torch.rand_like (U[0, 1)) noise in HFSD and D
    official_double_scaling: bool = False  # official code: the teacher's HFSD input is scaled twice
    disc_lr: float = 0.0  # 0 = train.lr


class SpectralConv1d(nn.Conv1d):
    """A Conv1d whose weight is divided by its exact largest singular value at every call (no
    power-iteration state, so checkpoints hold parameters only)."""

    def forward(self, x):
        w = self.weight
        sigma = torch.linalg.matrix_norm(w.flatten(1).float(), ord=2).to(w.dtype)
        return self._conv_forward(x, w / sigma, self.bias)


class DiscHead(nn.Module):
    """Token-wise head (StyleGAN-T/ADD style): 1x1 block, a residual k=9 block with circular
    padding, then a projection onto a conditioning map."""

    def __init__(self, channels: int, c_dim: int, cmap_dim: int = 64):
        super().__init__()

        def block(k):
            conv = SpectralConv1d(channels, channels, k, padding=k // 2, padding_mode="circular")
            return nn.Sequential(conv, nn.GroupNorm(4, channels), nn.LeakyReLU(0.2))

        self.first, self.residual = block(1), block(9)
        self.cls = SpectralConv1d(channels, cmap_dim, 1)
        self.cmap = nn.Linear(c_dim, cmap_dim)
        self.cmap_dim = cmap_dim

    def forward(self, tokens: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.first(tokens)
        h = (h + self.residual(h)) / math.sqrt(2)
        return (self.cls(h) * self.cmap(c)[:, :, None]).sum(1) / math.sqrt(self.cmap_dim)


class LevelHead(nn.Module):
    """One feature level: GroupNorm -> FiLM (timestep) -> SiLU -> zero-init conv -> DiscHead."""

    def __init__(self, channels: int, embed_dim: int, c_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(32, channels), channels)
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, 2 * channels))
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.head = DiscHead(channels, c_dim)

    def forward(self, feature: torch.Tensor, emb: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv(F.silu(self.norm(feature) * (1 + scale) + shift))
        return self.head(h.flatten(2), c)


class TimeAwareDiscriminator(nn.Module):
    """``forward(features, t)``: per-level logits of the teacher's encoder features, concatenated."""

    def __init__(self, channels: list[int], embed_dim: int = 160, c_dim: int = 64):
        super().__init__()
        self.embed_dim, self.c_dim = embed_dim, c_dim
        self.levels = nn.ModuleList(LevelHead(ch, embed_dim, c_dim) for ch in channels)

    def forward(self, features: list[torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        dtype = features[0].dtype
        emb = timestep_embedding(t, self.embed_dim).to(dtype)
        c = timestep_embedding(t, self.c_dim).to(dtype)
        return torch.cat([lvl(f, emb, c) for lvl, f in zip(self.levels, features)], dim=1)


def hfsd_gradient(
    schedule: ResShiftSchedule, teacher_x0, x_student, x_target, z_y, t, scale_twice: bool = False
) -> torch.Tensor:
    """TAD-SR's high-frequency score distillation direction: the teacher's noise estimate at the
    noised student output minus at the noised target (same noise, same small t), NaN -> 0.

    ``teacher_x0(x_scaled, t)`` is the teacher's x0 prediction from an already scaled input."""
    with torch.no_grad():
        eps = []
        for x_t in (x_student, x_target):
            inp = schedule.scale_input(x_t, t)
            if scale_twice:
                inp = schedule.scale_input(inp, t)
            eps.append(schedule.eps_from_x0(x_t, z_y, t, teacher_x0(inp, t)))
        return torch.nan_to_num(eps[0] - eps[1])


class TADSRRecipe(ResShiftDistillation):
    def __init__(self, run: RunConfig):
        super().__init__(run, noise_channels=0)
        cfg: TADSRConfig = run.model
        T = self.schedule.num_steps
        if any(not 0 <= t < T for t in cfg.hfsd_timesteps) or not cfg.hfsd_timesteps:
            raise ConfigError(f"model.hfsd_timesteps must be chain indices in 0..{T - 1}")
        if not 0 <= cfg.disc_max_timestep < T:
            raise ConfigError(f"model.disc_max_timestep must be in 0..{T - 1}")
        if not 0 <= cfg.teacher_steps <= T:
            raise ConfigError(f"model.teacher_steps must be in 0..{T} (0 = the whole chain)")
        self.cfg = cfg
        self.phases = (Phase("discriminator", "discriminator"), Phase("generator", "generator"))
        self.phase_lrs = {"discriminator": cfg.disc_lr} if cfg.disc_lr else {}
        self.disc = TimeAwareDiscriminator(self.teacher.feature_channels, cfg.disc_embed_dim, cfg.disc_c_dim)
        target = dataclasses.replace(self.teacher_config.schedule, sample_steps=cfg.teacher_steps or None)
        self.target_schedule = ResShiftSchedule(target)
        self.hfsd_t = torch.tensor(cfg.hfsd_timesteps)

    def networks(self):
        return {"generator": self.student.unet, "discriminator": self.disc}

    # --- pieces ---------------------------------------------------------------------------------

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(like) if self.cfg.official_uniform_noise else torch.randn_like(like)

    def teacher_target(self, z_y, lq, prior_noise):
        """The teacher's deterministic (DDIM) multi-step output from the student's own x_T."""
        s = self.target_schedule

        def model_fn(x, t):
            return self.teacher(x, t, lq)

        clip = self.teacher_config.autoencoder.image_space
        with torch.no_grad():
            return s.sample(model_fn, z_y, prior_noise, sampler="ddim", clip=clip)

    def student_x0(self, net, z_y, lq, prior_noise):
        s = self.schedule
        t = torch.full((z_y.shape[0],), s.num_steps - 1, dtype=torch.long, device=z_y.device)
        return self.x0(net, s.prior_sample(z_y, prior_noise), t, z_y, lq)

    def teacher_features(self, x0, z_y, lq, t, noise):
        s = self.schedule
        x_t = s.scale_input(s.q_sample(x0, z_y, t, noise), t)
        return self.teacher.encoder_features(x_t, s.model_timesteps(t), lq)

    def _prepare(self, batch, state):
        """Latents, prior noise and the teacher's target, once per micro-batch (cached in ``state``)."""
        if "z_y" not in state:
            z_y, lq, z0 = self.latents(batch)
            noise = torch.randn_like(z_y)
            state.update(z_y=z_y, lq=lq, z0=z0, prior_noise=noise, target=self.teacher_target(z_y, lq, noise))
        return state

    # --- losses ---------------------------------------------------------------------------------

    def loss(self, phase, batch, state):
        st = self._prepare(batch, state)
        if phase == "discriminator":
            return self._discriminator_loss(st)
        return self._student_loss(st)

    def _discriminator_loss(self, st):
        z_y, lq, z0 = st["z_y"], st["lq"], st["z0"]
        b = z0.shape[0]
        with torch.no_grad():
            fake = self.student_x0(self.student.unet, z_y, lq, st["prior_noise"])
            t_d = torch.randint(0, self.cfg.disc_max_timestep + 1, (b,), device=z0.device)
            noise = self._noise(z0)
            feats = self.teacher_features(torch.cat([z0, fake]), torch.cat([z_y, z_y]), torch.cat([lq, lq]),
                                          torch.cat([t_d, t_d]), torch.cat([noise, noise]))  # fmt: skip
        logits = self.wrapped["discriminator"](feats, torch.cat([t_d, t_d])).float()
        loss = F.relu(1 - logits[:b]).mean() + F.relu(1 + logits[b:]).mean()
        return loss, {
            "d_loss": loss.item(),
            "d_real": logits[:b].mean().item(),
            "d_fake": logits[b:].mean().item(),
        }

    def _student_loss(self, st):
        cfg, s = self.cfg, self.schedule
        z_y, lq, z0, target = st["z_y"], st["lq"], st["z0"], st["target"]
        z0_s = self.student_x0(self.wrapped["generator"], z_y, lq, st["prior_noise"])
        logs, loss = {}, z0_s.new_zeros(())
        if cfg.mse_weight:
            mse = F.mse_loss(z0_s.float(), target.float())
            loss = loss + cfg.mse_weight * mse
            logs["mse"] = mse.item()
        if cfg.hfsd_weight:
            b = z0_s.shape[0]
            t_h = self.hfsd_t.to(z0_s.device)[torch.randint(len(self.hfsd_t), (b,), device=z0_s.device)]
            noise = self._noise(z0_s)
            reference = target if cfg.hfsd_target == "teacher" else z0
            x_s = s.q_sample(z0_s.detach(), z_y, t_h, noise)
            x_r = s.q_sample(reference, z_y, t_h, noise)

            def teacher_x0(x, t):
                return s.x0_from_output(self.teacher(x, s.model_timesteps(t), lq), z_y)

            g = hfsd_gradient(s, teacher_x0, x_s, x_r, z_y, t_h, cfg.official_double_scaling)
            hfsd = (g * z0_s.float()).mean()
            loss = loss + cfg.hfsd_weight * hfsd
            logs["hfsd"] = hfsd.item()
        if cfg.gan_weight:
            t_d = torch.randint(0, cfg.disc_max_timestep + 1, (z0_s.shape[0],), device=z0_s.device)
            feats = self.teacher_features(z0_s, z_y, lq, t_d, self._noise(z0_s))
            adv = (
                -self.disc(feats, t_d).float().mean()
            )  # unwrapped: the discriminator's gradients are discarded
            loss = loss + cfg.gan_weight * adv
            logs["gan"] = adv.item()
        return loss, logs


TRAIN_PRESETS = {
    # configs/TAD-SR.yaml: ImageNet 256 crops, Real-ESRGAN degradation, batch 8; AdamW 5e-5, wd 0,
    # 5k linear warm-up, EMA 0.999, 30k iterations.
    "tadsr": lambda: RunConfig.build(
        "tadsr",
        TADSRConfig(),
        dict(degradation="realesrgan", gt_size=256, crop_pad_size=300, val_size=256),
        dict(
            max_steps=30_000,
            batch_size=8,
            lr=5e-5,
            weight_decay=0.0,
            warmup_steps=5000,
            ema_decay=0.999,
            validate_every=1000,
            checkpoint_every=1000,
        ),
    ),
    # A tiny pixel-space teacher (T = 4): student at t = 3, t_h = 0, t_d in 0..2, a small
    # discriminator, batch 2 at 64 px, bicubic degradation (the tiny teacher's own).
    "tiny": lambda: RunConfig.build(
        "tadsr",
        TADSRConfig(teacher="", hfsd_timesteps=(0,), disc_max_timestep=2, disc_embed_dim=32, disc_c_dim=16),
        TINY_DATA,
        dict(
            max_steps=300,
            batch_size=2,
            lr=5e-5,
            weight_decay=0.0,
            ema_decay=0.99,
            validate_every=100,
            checkpoint_every=100,
            log_every=10,
            sample_images=4,
        ),
    ),
    # sr1step's embedded default, student stage (benchmarks/default_model.py): the compact teacher
    # (T = 4), t_h = 0, t_d in 0..2, a small discriminator, batch 4 at 256 px on the teacher's data.
    "compact": lambda: RunConfig.build(
        "tadsr",
        TADSRConfig(
            teacher="runs/compact-teacher/export",
            hfsd_timesteps=(0,),
            disc_max_timestep=2,
            disc_embed_dim=64,
            disc_c_dim=32,
        ),
        COMPACT_DATA,
        COMPACT_DISTILL,
    ),
    # The same recipe for the blind real-world teacher, on its data.
    "real": lambda: real_variant(TRAIN_PRESETS["compact"]()),
}

TADSR = ResShiftFamily(
    "tadsr",
    "TAD-SR: ResShift distilled to one step with time-aware distillation (MSE, HFSD, time-aware GAN)",
    default_model="tadsr-x4",
    one_step=True,
    recipe=TADSRRecipe,
    config_class=TADSRConfig,
    presets=TRAIN_PRESETS,
    default_preset="tadsr",
    needs_teacher=True,
)
