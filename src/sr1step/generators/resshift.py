"""ResShift-family generator: the official ResShift/SinSR/TAD-SR/RSD inference in one module.

    lr in [0, 1] -> y = 2 lr - 1 -> z_y = Enc(bicubic_up(y)) -> x_T = z_y + kappa sqrt(eta_T) eps
    -> reverse chain of the UNet (x0-prediction, LR concatenated) -> Dec(x0) -> [0, 1]

``steps`` network calls per image: the full chain (ResShift), a respaced one (``--steps``), or 1
(the one-step students: SinSR, TAD-SR, RSD). Weight folders hold ``config.json`` +
``unet.safetensors`` (+ ``autoencoder.safetensors``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import from_dict, to_dict
from ..contract import SRGenerator, read_folder_config
from ..diffusion.resshift import ResShiftSchedule, ResShiftScheduleConfig
from ..files import write_json_atomic
from ..nets.autoencoders import Autoencoder, AutoencoderConfig
from ..nets.resshift_unet import ResShiftUNet, ResShiftUNetConfig
from ..weights import load_state_dict, save_safetensors

FORMAT = "sr1step-resshift/1"


@dataclass(frozen=True)
class ResShiftConfig:
    unet: ResShiftUNetConfig = field(default_factory=ResShiftUNetConfig)
    schedule: ResShiftScheduleConfig = field(default_factory=ResShiftScheduleConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    scale: int = 4
    sampler: Literal["ancestral", "ddim"] = "ancestral"
    steps: int | None = None  # network calls per image; None = the whole chain, 1 = one step
    noise_input: bool = False  # RSD student: one extra N(0, I) input channel

    def with_steps(self, steps: int | None) -> ResShiftConfig:
        return dataclasses.replace(self, steps=steps)


class ResShiftGenerator(SRGenerator):
    compiled_modules = ("unet",)

    def __init__(self, cfg: ResShiftConfig):
        super().__init__()
        u, ae = cfg.unet, cfg.autoencoder
        if u.lq_size != u.image_size:
            raise ValueError("ResShiftGenerator supports UNets whose LR input has the latent's size (x4 SR)")
        if u.in_channels != ae.latent_channels or u.out_channels != ae.latent_channels:
            raise ValueError(
                f"UNet channels ({u.in_channels}/{u.out_channels}) must equal the latent "
                f"channels ({ae.latent_channels})"
            )
        if cfg.noise_input != (u.extra_in_channels == 1):
            raise ValueError("noise_input needs unet.extra_in_channels = 1 (and only then)")
        if cfg.scale % ae.factor:
            raise ValueError(f"scale {cfg.scale} is not a multiple of the autoencoder factor {ae.factor}")
        self.unet = ResShiftUNet(u)
        self.autoencoder = Autoencoder(ae)
        self.scale = cfg.scale
        self.latent_ratio = cfg.scale // ae.factor
        multiple = u.size_multiple
        self.pad_multiple = multiple // self.latent_ratio if multiple % self.latent_ratio == 0 else multiple
        self.noise_ratio = self.latent_ratio
        self.prefer_pixel_tiles = ae.image_space
        self.set_sampling(cfg)

    def set_sampling(self, cfg: ResShiftConfig) -> None:
        """Switch schedule/sampler/steps (same networks): e.g. ``--steps`` or a one-step student."""
        if (cfg.unet, cfg.autoencoder, cfg.scale) != (self.unet.config, self.autoencoder.config, self.scale):
            raise ValueError("set_sampling changes sampling settings only, not the networks")
        self.config = cfg
        self.schedule = ResShiftSchedule(cfg.schedule)
        self.steps = cfg.steps or self.schedule.num_steps
        draws = self.steps if cfg.sampler == "ancestral" else 1
        self.noise_channels = cfg.autoencoder.latent_channels * draws + (1 if cfg.noise_input else 0)

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> cond = [z_y, LR at latent size] (B, C + 3, h*r, w*r)."""
        y = lr * 2 - 1
        up = F.interpolate(y.float(), scale_factor=self.scale, mode="bicubic").to(y.dtype)
        z_y = self.autoencoder.encode(up)
        lq = y if self.latent_ratio == 1 else up
        return torch.cat([z_y, lq], dim=1)

    def denoise(self, cond: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config.unet.in_channels
        z_y, lq = cond[:, :c], cond[:, c:]
        if noise is None:
            raise ValueError("ResShift generators need a noise tensor (the engine draws it from the seed)")
        noise_map = noise[:, -1:] if self.config.noise_input else None

        def model_fn(x, t):
            return self.unet(x, t, lq, noise_map)

        clip = self.config.autoencoder.image_space
        return self.schedule.sample(
            model_fn,
            z_y,
            noise,
            sampler=self.config.sampler,
            clip=clip,
            steps=self.steps,
            on_step=self.on_step,
        )

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return (self.autoencoder.decode(latent) + 1) / 2

    # --- weight folders ------------------------------------------------------------------------

    def save_folder(self, folder: str | Path, method: str, info: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors(self.unet.state_dict(), folder / "unet.safetensors")
        if self.autoencoder.vq is not None:
            save_safetensors(self.autoencoder.vq.state_dict(), folder / "autoencoder.safetensors")
        meta = {"format": FORMAT, "method": method, "generator": to_dict(self.config)}
        write_json_atomic({**meta, **(info or {})}, folder / "config.json")
        return folder

    @classmethod
    def from_folder(cls, folder: str | Path) -> ResShiftGenerator:
        folder = Path(folder)
        gen = cls(from_dict(ResShiftConfig, read_folder_config(folder, FORMAT)["generator"]))
        gen.unet.load_state_dict(load_state_dict(folder / "unet.safetensors"), strict=True)
        if gen.autoencoder.vq is not None:
            gen.autoencoder.vq.load_state_dict(
                load_state_dict(folder / "autoencoder.safetensors"), strict=True
            )
        return gen.eval()
