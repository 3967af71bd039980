"""The ResShift family: ResShift (multi-step), SinSR, RSD and TAD-SR (one step) as upscale methods.

One method class parameterised by data: the members differ only in their name, default model,
published row and whether they run the single prediction at t = T-1. Which network a weight
file holds (step count, an RSD noise input channel) comes from the card, the folder's
config.json, or the checkpoint itself. ``NETWORKS`` names the official configurations; official
``.pth`` files load directly (keys checked with ``strict=True``) or convert once with
``sr1step models convert``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..generators.resshift import ResShiftConfig, ResShiftGenerator
from ..hub import ModelCard, converted_dir, download_card, get_card
from ..nets.autoencoders import convert_ldm_vq_state_dict
from ..nets.resshift_unet import (
    narrow_input_conv,
    widen_input_conv,
)
from ..training.config import RunConfig
from ..training.recipe import Batch, Recipe
from ..weights import load_state_dict
from .base import Method
from .resshift_loading import (  # noqa: F401 - FAMILY, generator_from_official, with_noise_input: re-exported
    FAMILY,
    _vq_file,
    _weights_file,
    card_config,
    generator_from_official,
    guess_network,
    load_teacher,
    with_noise_input,
)
from .resshift_presets import NETWORKS, TRAIN_PRESETS, ResShiftTraining, network_config  # noqa: F401


class ResShiftDistillation(Recipe):
    """What the ResShift-family distillation recipes share (RSD, TAD-SR): the frozen teacher on
    its full chain, a one-step student initialised from it (plus ``noise_channels`` zero-weight
    N(0, I) inputs), the shared frozen autoencoder, and latents of a batch. ``run.model`` has a
    ``teacher`` field."""

    def __init__(self, run: RunConfig, noise_channels: int = 0):
        super().__init__()
        spec = run.model.teacher
        teacher = load_teacher(spec)
        if run.data.scale != teacher.scale:
            raise ConfigError(f"data.scale ({run.data.scale}) must equal the teacher's ({teacher.scale})")
        if teacher.config.noise_input:
            raise ConfigError(f"teacher {spec!r} is an RSD student (noise input); use a multi-step model")
        # Distillation works on the teacher's own, full chain (no respacing).
        schedule = dataclasses.replace(teacher.config.schedule, sample_steps=None)
        teacher.set_sampling(dataclasses.replace(teacher.config, schedule=schedule, steps=None))
        self.teacher_config = teacher.config
        self.schedule = teacher.schedule
        self.teacher = teacher.unet.requires_grad_(False).eval()
        self.student = ResShiftGenerator(with_noise_input(teacher.config, noise_channels).with_steps(1))
        # New input channels get zero weights: at step 0 the student is the teacher's one-step prediction.
        state = teacher.unet.state_dict()
        self.student.unet.load_state_dict(
            widen_input_conv(state, noise_channels) if noise_channels else state
        )
        self.student.autoencoder = teacher.autoencoder.requires_grad_(False).eval()  # shared, frozen

    def generator(self):
        return self.student

    def frozen_modules(self) -> list[nn.Module]:
        return [self.teacher, self.student.autoencoder]

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in self.frozen_modules():
            if frozen is not None:
                frozen.eval()
        return self

    def latents(self, batch: Batch):
        """(z_y: latent of the bicubic-upsampled LR, lq: the UNet's LR input, z0: latent of HR)."""
        with torch.no_grad():
            cond = self.student.encode(batch.lr)
            c = self.student.config.unet.in_channels
            z0 = self.student.autoencoder.encode(batch.hr * 2 - 1)
        return cond[:, :c], cond[:, c:], z0

    def x0(self, net, x_t, t, z_y, lq, noise_map=None):
        """A network's x0 prediction at x_t (its input scaled and its output converted as trained)."""
        s = self.schedule
        extra = () if noise_map is None else (noise_map,)
        return s.x0_from_output(net(s.scale_input(x_t, t), s.model_timesteps(t), lq, *extra), z_y)


class ResShiftRecipe(Recipe):
    """x0-prediction MSE in latent space at t ~ U{0..T-1} (+ optional LPIPS), as ResShift trains."""

    def __init__(self, run: RunConfig):
        super().__init__()
        cfg: ResShiftTraining = run.model
        if run.data.scale != cfg.network.scale:
            raise ValueError(
                f"data.scale ({run.data.scale}) must equal the network scale ({cfg.network.scale})"
            )
        self.gen = ResShiftGenerator(dataclasses.replace(cfg.network, steps=None))
        if cfg.init_weights:
            init = load_teacher(cfg.init_weights)  # any family member's weights
            state = init.state_dict()
            if init.config.noise_input:  # from an RSD student: its noise channel is dropped
                u = cfg.network.unet
                state = narrow_input_conv(state, u.in_channels + u.lq_channels)
            self.gen.load_state_dict(state)
        else:
            if self.gen.autoencoder.vq is not None and cfg.autoencoder_weights != "random":
                state = load_state_dict(_weights_file(cfg.autoencoder_weights))
                if any(k.startswith("encoder.down.") for k in state):  # official layout
                    state = convert_ldm_vq_state_dict(state, len(cfg.network.autoencoder.ch_mult))
                self.gen.autoencoder.vq.load_state_dict(state, strict=True)
            if cfg.network.schedule.predict == "residual":
                # From scratch with the residual parameterisation: a zero output conv starts at bicubic.
                torch.nn.init.zeros_(self.gen.unet.out[2].weight)
                torch.nn.init.zeros_(self.gen.unet.out[2].bias)
        self.gen.autoencoder.requires_grad_(False).eval()
        self.lpips_weight = cfg.lpips_weight
        self.lpips = None
        if cfg.lpips_weight > 0:
            from ..metrics import create_metric

            self.lpips = create_metric({"vgg": "lpips-vgg", "alex": "lpips"}[cfg.lpips_net], as_loss=True)
            self.lpips.requires_grad_(False)

    def networks(self):
        return {"generator": self.gen.unet}

    def train(self, mode: bool = True):
        super().train(mode)
        self.gen.autoencoder.eval()  # frozen, always in eval mode
        return self

    def loss(self, phase, batch, state):
        gen, sched = self.gen, self.gen.schedule
        y = batch.lr * 2 - 1
        with torch.no_grad():
            up = F.interpolate(y, scale_factor=gen.scale, mode="bicubic")
            z0 = gen.autoencoder.encode(batch.hr * 2 - 1)
            z_y = gen.autoencoder.encode(up)
        lq = y if gen.latent_ratio == 1 else up
        t = torch.randint(0, sched.num_steps, (z0.shape[0],), device=z0.device)
        x_t = sched.q_sample(z0, z_y, t, torch.randn_like(z0))
        out = self.wrapped["generator"](sched.scale_input(x_t, t), sched.model_timesteps(t), lq)
        pred = sched.x0_from_output(out, z_y)
        mse = F.mse_loss(pred.float(), z0.float())
        logs = {"mse": mse.item()}
        loss = mse
        if self.lpips is not None:
            image = gen.autoencoder.decode(pred).clamp(-1, 1)
            lp = self.lpips((image + 1) / 2, batch.hr).mean()
            loss = loss + self.lpips_weight * lp
            logs["lpips"] = lp.item()
        return loss, logs

    def generator(self):
        return self.gen


@dataclass
class ResShiftFamily(Method):
    """A member of the ResShift family; ``one_step`` members run only the prediction at t = T-1."""

    one_step: bool = False

    def configure(self, cfg: ResShiftConfig) -> ResShiftConfig:
        return cfg.with_steps(1) if self.one_step else cfg

    def from_card(self, card: ModelCard) -> ResShiftGenerator:
        folder = converted_dir(card)
        if (folder / "config.json").is_file():
            return self.from_folder(folder)
        files = download_card(card)
        return generator_from_official(
            files[card.files[0]], lambda: _vq_file(card), self.configure(card_config(card))
        )

    def random_generator(self) -> ResShiftGenerator:
        torch.manual_seed(0)
        return ResShiftGenerator(self.configure(card_config(get_card(self.default_model)))).eval()

    def from_folder(self, folder: Path) -> ResShiftGenerator:
        gen = ResShiftGenerator.from_folder(folder)
        gen.set_sampling(self.configure(gen.config))
        return gen

    def from_file(self, path: Path) -> ResShiftGenerator:
        if path.suffix not in (".pth", ".pt", ".ckpt", ".safetensors"):
            raise ValueError(f"{path}: expected an official .pth checkpoint or a weight folder")
        return generator_from_official(path, _vq_file, self.configure(network_config(guess_network(path))))

    def with_steps(self, gen: ResShiftGenerator, steps: int) -> ResShiftGenerator:
        if self.one_step:
            return super().with_steps(gen, steps)
        total = gen.config.schedule.steps
        if not 1 <= steps <= total:
            raise ValueError(f"--steps must be between 1 and {total} for this model")
        schedule = dataclasses.replace(gen.config.schedule, sample_steps=steps)
        gen.set_sampling(dataclasses.replace(gen.config, schedule=schedule, steps=None))
        return gen

    def convert_card(self, card: ModelCard, files: dict[str, Path], out: Path) -> None:
        gen = generator_from_official(files[card.files[0]], lambda: _vq_file(card), card_config(card))
        gen.save_folder(
            out, card.method, {"source": card.source_url, "license": card.license, "model": card.name}
        )


RESSHIFT = ResShiftFamily(
    "resshift",
    "ResShift (NeurIPS 2023 / TPAMI 2024): residual-shifting diffusion, 4 or 15 steps",
    default_model="resshift-realsr-x4-v3",
    published_as="ResShift-s15",
    recipe=ResShiftRecipe,
    config_class=ResShiftTraining,
    presets=TRAIN_PRESETS,
    default_preset="realsr-v3",
)
SINSR = ResShiftFamily(
    "sinsr",
    "SinSR (CVPR 2024): ResShift distilled to one step",
    default_model="sinsr-v1",
    published_as="SinSR-s1",
    one_step=True,
)
# RSD (methods/rsd.py) and TAD-SR (methods/tadsr.py) are family members with distillation recipes.
