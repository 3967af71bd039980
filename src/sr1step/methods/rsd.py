"""RSD (Selikhanovych et al., ICML 2026): ResShift distilled into one step through a fake ResShift.

The official repository cannot train (its ``models/`` package and loss code are missing); this
recipe follows the paper's argument, and docs/methods/rsd.md derives each term and lists every
choice the paper leaves open.

Networks: the frozen teacher (any ResShift-family model); the student, a copy of the teacher with
one extra zero-initialised N(0, I) input channel (so at step 0 it is the teacher's one-step
prediction), all parameters trained; the fake model, another copy of the teacher trained on the
student's outputs, with a discriminator head on its encoder (middle block) features.

Each step: ``fake_steps`` fake updates on fresh batches (student fixed), then one student update:
    L_G = w_dm * DM + w_p * perceptual(decode(one-step output), HR) + w_gan * GAN_G
where DM pushes the student's output x0 at a training node t_n along (fake - teacher) x0
predictions at z_s ~ q(z_s | z_tn, x0), s < t_n, normalised per sample (SiD/DMD).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..losses import d_loss, g_loss
from ..nets.resshift_unet import GroupNorm32, ResShiftUNet
from ..training.config import RunConfig
from ..training.recipe import Phase
from .resshift import ResShiftDistillation, ResShiftFamily
from .resshift_presets import COMPACT_DATA, COMPACT_DISTILL, TINY_DATA, real_variant


@dataclass(frozen=True)
class RSDConfig:
    """The [model] section of an RSD distillation run."""

    teacher: str = "resshift-realsr-x4-v1"  # card, weight folder or official file of a ResShift-family model
    nodes: tuple[int, ...] = (14, 11, 7, 3)  # teacher-chain indices the student is trained at (T-1 first)
    fake_steps: int = 5  # fake-model updates per student update, each on a fresh batch
    dm_weight: float = 1.0  # distribution matching (the paper's L_theta)
    sid_normalization: bool = True  # divide by mean |x0_student - x0_teacher| per sample (detached)
    perceptual: Literal["lpips", "lpips-vgg", "mse"] = "lpips"  # "mse": no downloaded weights (tiny)
    perceptual_weight: float = 2.0
    gan_weight: float = 3e-3  # both the fake model's discriminator loss and the student's generator loss
    gan_loss: Literal["non-saturating", "hinge"] = "non-saturating"
    fake_lr: float = 0.0  # 0 = train.lr


class FakeResShift(nn.Module):
    """A ResShift UNet trained on the student's outputs, with a GAN head on its middle features.

    ``forward(x, t, lq, gan_x=None, gan_t=None)`` returns (UNet output, logits of ``gan_x`` or None),
    so one call of the DDP-wrapped module covers both losses of the fake phase."""

    def __init__(self, unet: ResShiftUNet, with_head: bool):
        super().__init__()
        self.unet = unet
        ch = unet.feature_channels[-1]
        self.head = (
            nn.Sequential(
                GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, 1, 1)
            )
            if with_head
            else None
        )

    def logits(self, x: torch.Tensor, t: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return self.head(self.unet.encoder_features(x, t, lq)[-1])

    def forward(self, x, t, lq, gan_x=None, gan_t=None, gan_lq=None):
        logits = self.logits(gan_x, gan_t, gan_lq) if gan_x is not None else None
        return self.unet(x, t, lq), logits

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()


class RSDRecipe(ResShiftDistillation):
    def __init__(self, run: RunConfig):
        super().__init__(run, noise_channels=1)
        cfg: RSDConfig = run.model
        T = self.schedule.num_steps
        if not cfg.nodes or any(not 1 <= n <= T - 1 for n in cfg.nodes):
            raise ConfigError(f"model.nodes must be chain indices in 1..{T - 1}, got {list(cfg.nodes)}")
        self.cfg = cfg
        fake_phase = Phase("fake", "fake", repeats=cfg.fake_steps, fresh_batch=True)
        self.phases = (fake_phase, Phase("generator", "generator"))
        self.phase_lrs = {"fake": cfg.fake_lr} if cfg.fake_lr else {}
        fake_unet = ResShiftUNet(self.teacher_config.unet)
        fake_unet.load_state_dict(copy.deepcopy(self.teacher.state_dict()))
        self.fake = FakeResShift(fake_unet, with_head=cfg.gan_weight > 0)
        self.nodes = torch.tensor(cfg.nodes)
        self.perceptual = None
        if cfg.perceptual_weight > 0 and cfg.perceptual != "mse":
            from ..metrics import create_metric

            self.perceptual = create_metric(cfg.perceptual, as_loss=True).requires_grad_(False)

    def networks(self):
        return {"generator": self.student.unet, "fake": self.fake}

    def frozen_modules(self):
        return [*super().frozen_modules(), self.perceptual]

    def _student_inputs(self, z_y, z0):
        """Inputs of the student's two predictions per sample: one step from the prior (inference)
        and one at a random training node t_n with z_tn ~ q(z_tn | z0 of HR)."""
        b, s = z_y.shape[0], self.schedule
        t_prior = torch.full((b,), s.num_steps - 1, dtype=torch.long, device=z_y.device)
        t_node = self.nodes.to(z_y.device)[torch.randint(len(self.nodes), (b,), device=z_y.device)]
        x_prior = s.prior_sample(z_y, torch.randn_like(z_y))
        x_node = s.q_sample(z0, z_y, t_node, torch.randn_like(z0))
        return torch.cat([x_prior, x_node]), torch.cat([t_prior, t_node])

    def _student(self, net, z_y, lq, z0):
        x, t = self._student_inputs(z_y, z0)
        noise_map = torch.randn(x.shape[0], 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        x0 = self.x0(net, x, t, torch.cat([z_y, z_y]), torch.cat([lq, lq]), noise_map)
        b = z_y.shape[0]
        return x0[:b], x0[b:], x[b:], t[b:]

    def _noisy(self, x0, z_y, t, noise):
        return self.schedule.scale_input(self.schedule.q_sample(x0, z_y, t, noise), t)

    # --- losses ---------------------------------------------------------------------------------

    def loss(self, phase, batch, state):
        if phase == "fake":
            return self._fake_loss(batch)
        return self._student_loss(batch)

    def _fake_loss(self, batch):
        """ResShift's x0 regression on re-noised student outputs (the fake model learns the
        student's distribution) + the discriminator loss on the fake model's encoder."""
        z_y, lq, z0 = self.latents(batch)
        s, b = self.schedule, z_y.shape[0]
        student = self.student.unet
        with torch.no_grad():
            student.eval()  # the student is fixed while the fake model learns its outputs
            x0_one, x0_node, _, _ = self._student(student, z_y, lq, z0)
            student.train(self.training)
        t = torch.randint(0, s.num_steps, (b,), device=z_y.device)
        x_t = s.q_sample(x0_node, z_y, t, torch.randn_like(x0_node))
        gan = {}
        if self.fake.head is not None:
            t_d = torch.randint(0, s.num_steps, (b,), device=z_y.device)
            noise = torch.randn_like(z0)
            real, fake = self._noisy(z0, z_y, t_d, noise), self._noisy(x0_one, z_y, t_d, noise)
            gan = dict(
                gan_x=torch.cat([real, fake]),
                gan_t=s.model_timesteps(torch.cat([t_d, t_d])),
                gan_lq=torch.cat([lq, lq]),
            )
        out, logits = self.wrapped["fake"](s.scale_input(x_t, t), s.model_timesteps(t), lq, **gan)
        mse = F.mse_loss(s.x0_from_output(out, z_y).float(), x0_node.float())
        logs = {"fake_mse": mse.item()}
        loss = mse
        if logits is not None:
            dl = d_loss(logits[:b].float(), logits[b:].float(), self.cfg.gan_loss)
            loss = loss + self.cfg.gan_weight * dl
            logs["d_loss"] = dl.item()
        return loss, logs

    def distribution_matching(self, x0_node, x_node, t_node, z_y, lq):
        """The student-side term of the paper's L_theta, DMD-style: a draw z_s of the student's
        chain below the node, the fake and teacher x0 predictions there, and a loss whose gradient
        on x0_node is (fake - teacher), normalised per sample."""
        s = self.schedule
        with torch.no_grad():
            t_s = (torch.rand(t_node.shape, device=t_node.device) * t_node).long()  # U{0..t_n - 1}
            z_s = s.jump_sample(x_node, x0_node.detach(), z_y, t_node, t_s, torch.randn_like(x0_node))
            f_fake = self.x0(self.fake.unet, z_s, t_s, z_y, lq)
            f_teacher = self.x0(self.teacher, z_s, t_s, z_y, lq)
            grad = f_fake - f_teacher
            if self.cfg.sid_normalization:
                grad = grad / ((x0_node - f_teacher).abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)
        return 0.5 * F.mse_loss(x0_node.float(), (x0_node - grad).detach().float())

    def _student_loss(self, batch):
        cfg = self.cfg
        z_y, lq, z0 = self.latents(batch)
        x0_one, x0_node, x_node, t_node = self._student(self.wrapped["generator"], z_y, lq, z0)
        logs, loss = {}, x0_one.new_zeros(())
        if cfg.dm_weight:
            dm = self.distribution_matching(x0_node, x_node, t_node, z_y, lq)
            loss = loss + cfg.dm_weight * dm
            logs["dm"] = dm.item()
        if cfg.perceptual_weight:
            image = (self.student.autoencoder.decode(x0_one).clamp(-1, 1) + 1) / 2
            if self.perceptual is None:
                perc = F.mse_loss(image.float(), batch.hr.float())
            else:
                perc = self.perceptual(image.float(), batch.hr.float()).mean()
            loss = loss + cfg.perceptual_weight * perc
            logs[cfg.perceptual] = perc.item()
        if self.fake.head is not None:
            t_d = torch.randint(0, self.schedule.num_steps, (z_y.shape[0],), device=z_y.device)
            x = self._noisy(x0_one, z_y, t_d, torch.randn_like(x0_one))
            gl = g_loss(self.fake.logits(x, self.schedule.model_timesteps(t_d), lq).float(), cfg.gan_loss)
            loss = loss + cfg.gan_weight * gl  # through the unwrapped fake: its gradients are discarded
            logs["g_gan"] = gl.item()
        return loss, logs


TRAIN_PRESETS = {
    # configs/RSD.yaml: ImageNet 256 crops, Real-ESRGAN degradation; AdamW 5e-5 (0.9, 0.95), no
    # schedule, EMA 0.999, batch 64 (one GPU: 16 x 4 accumulation; 4 GPUs: grad_accum = 1), fp32.
    "rsd": lambda: RunConfig.build(
        "rsd",
        RSDConfig(),
        dict(degradation="realesrgan", gt_size=256, crop_pad_size=300, val_size=256),
        dict(
            max_steps=3000,
            batch_size=16,
            grad_accum=4,
            lr=5e-5,
            betas=(0.9, 0.95),
            weight_decay=0.0,
            ema_decay=0.999,
            validate_every=500,
            checkpoint_every=200,
            seed=123456,
        ),
    ),
    # A tiny pixel-space teacher (`sr1step train -m resshift -p tiny`, or a random one in tests):
    # 2 nodes, 2 fake steps, batch 2 at 64 px, MSE instead of LPIPS (no downloaded weights).
    "tiny": lambda: RunConfig.build(
        "rsd",
        RSDConfig(teacher="", nodes=(3, 1), fake_steps=2, perceptual="mse", perceptual_weight=1.0),
        TINY_DATA,
        dict(
            max_steps=300,
            batch_size=2,
            lr=5e-5,
            betas=(0.9, 0.95),
            ema_decay=0.99,
            validate_every=100,
            checkpoint_every=100,
            log_every=10,
            sample_images=4,
        ),
    ),
    # sr1step's embedded default, student stage (benchmarks/default_model.py): the compact teacher
    # (T = 4), 3 nodes, 2 fake steps, batch 4 at 256 px on the teacher's data, MSE perceptual term
    # at weight 1000: at weight 1 the DM gradient is ~80x the MSE's and the student stays at its
    # teacher's PSNR; at 200-1000 it rose 0.01-0.06 dB above it, and the shipped student (1950
    # iterations, the last 450 with data.rotate: STUDENT_STAGES of the script) 0.09 dB.
    "compact": lambda: RunConfig.build(
        "rsd",
        RSDConfig(
            teacher="runs/compact-teacher/export",
            nodes=(3, 2, 1),
            fake_steps=2,
            perceptual="mse",
            perceptual_weight=1000.0,
        ),
        COMPACT_DATA,
        {**COMPACT_DISTILL, "lr": 1e-4, "betas": (0.9, 0.95)},
    ),
    # The student of the blind teacher (sr1step-real-x4's recipe) on REAL_DATA, with a weaker pull
    # to the HR than the fidelity model's so that distribution matching and the GAN head can restore
    # texture (200 and 50 were measured; neither beat the teacher's one step: docs/default-model.md).
    "real": lambda: real_variant(TRAIN_PRESETS["compact"](), perceptual_weight=200.0),
}

RSD = ResShiftFamily(
    "rsd",
    "RSD (ICML 2026): ResShift distilled to one step through a fake ResShift (noise input channel)",
    default_model="rsd-x4",
    published_as="RSD",
    one_step=True,
    recipe=RSDRecipe,
    config_class=RSDConfig,
    presets=TRAIN_PRESETS,
    default_preset="rsd",
    needs_teacher=True,
)
