"""One-step SD super-resolution generator (D3SR; the OSEDiff family).

    lr in [0, 1] -> bicubic x scale -> VAE encode (mode, x scaling_factor) = z_L
    -> UNet(z_L, t = 999, empty-prompt embedding) = model output
    -> x0 = (z_L - sqrt(1 - abar_t) eps) / sqrt(abar_t)   (epsilon bases; v- and x0-prediction too)
    -> VAE decode -> [0, 1]

The UNet carries a LoRA (peft); the VAE is frozen (an optional encoder LoRA is an ablation
switch). No text encoder runs at inference: the empty-prompt embedding is computed once when
training starts and stored with the weights. Weight folders hold the LoRA in diffusers' format
(``pytorch_lora_weights.safetensors``); loading fuses it into the UNet for speed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import from_dict, to_dict
from ..contract import SRGenerator, read_folder_config
from ..files import write_json_atomic
from ..nets.sd_base import LoraSettings, add_vae_encoder_lora, embed_prompt, load_sd_unet, load_sd_vae
from ..weights import load_state_dict, save_safetensors

FORMAT = "sr1step-sd-onestep/1"
LORA_FILE = "pytorch_lora_weights.safetensors"
VAE_LORA_FILE = "vae_lora_weights.safetensors"


@dataclass(frozen=True)
class SDOneStepConfig:
    base: str = "sd-turbo"  # model card, a diffusers folder (unet/, vae/, scheduler/), "tiny", or "embedded"
    scale: int = 4
    timestep: int = 999
    lora: LoraSettings = field(default_factory=LoraSettings)
    vae_encoder_lora_rank: int = 0  # 0: frozen VAE (D3SR); > 0: LoRA on the encoder (ablation)
    vae_tile: int = 512  # VAE encode/decode in tiles above this many pixels (diffusers tiling)


def load_base(cfg: SDOneStepConfig, folder: Path | None = None):
    """(unet, vae, scheduler config) of the config's base; ``embedded`` = ``folder/base``."""
    if cfg.base == "embedded":
        if folder is None:
            raise ValueError("base 'embedded' needs the weight folder")
        base: str | Path = folder / "base"
    else:
        base = cfg.base
    unet, sched = load_sd_unet(base)
    return unet, load_sd_vae(base), sched


class SDOneStepGenerator(SRGenerator):
    compiled_modules = ("unet",)

    def __init__(self, cfg: SDOneStepConfig, unet, vae, scheduler_config: dict, prompt_embeds: torch.Tensor):
        super().__init__()
        from diffusers import DDPMScheduler

        self.config = cfg
        self.unet, self.vae = unet, vae
        for name, p in vae.named_parameters():  # the VAE is frozen, except an encoder LoRA if one was added
            if "lora_" not in name:
                p.requires_grad_(False)
        self.register_buffer("prompt_embeds", prompt_embeds.detach().clone())
        sched = DDPMScheduler.from_config(scheduler_config)
        abar = sched.alphas_cumprod[cfg.timestep].double()
        self.prediction_type = sched.config.prediction_type
        self.sqrt_abar, self.sqrt_one_minus = float(abar.sqrt()), float((1 - abar).sqrt())
        self.scheduler_config = dict(scheduler_config)
        self.scale = cfg.scale
        vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        unet_factor = 2 ** (len(unet.config.block_out_channels) - 1)
        if vae_factor % cfg.scale and cfg.scale % vae_factor:
            raise ValueError(f"scale {cfg.scale} and VAE factor {vae_factor} do not divide each other")
        self.latent_ratio = cfg.scale / vae_factor  # latent pixels per LR pixel (0.5 at x4)
        self.pad_multiple = max(1, round(vae_factor * unet_factor / cfg.scale))
        self.scaling_factor = vae.config.scaling_factor
        self.steps = 1
        if cfg.vae_tile:
            self.vae.enable_tiling()
            self.vae.tile_sample_min_size = cfg.vae_tile
            self.vae.tile_latent_min_size = cfg.vae_tile // vae_factor

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        up = F.interpolate((lr * 2 - 1).float(), scale_factor=self.scale, mode="bicubic").to(lr.dtype)
        return self.vae.encode(up).latent_dist.mode() * self.scaling_factor

    def denoise(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.full((z.shape[0],), self.config.timestep, device=z.device, dtype=torch.long)
        emb = self.prompt_embeds.to(z.dtype).expand(z.shape[0], -1, -1)
        out = self.unet(z, t, encoder_hidden_states=emb).sample
        return self.x0_from_output(out, z)

    def x0_from_output(self, out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        a, s = self.sqrt_abar, self.sqrt_one_minus
        if self.prediction_type == "epsilon":
            return (z - s * out) / a
        if self.prediction_type == "v_prediction":
            return a * z - s * out
        return out  # "sample"

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return (self.vae.decode(latent / self.scaling_factor).sample + 1) / 2

    # --- weight folders ------------------------------------------------------------------------

    def save_folder(self, folder: str | Path, method: str, info: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        if cfg.base in ("tiny", "embedded"):  # random base networks travel with the weights
            self.save_base(folder / "base")
            cfg = dataclasses.replace(cfg, base="embedded")
        self.unet.save_lora_adapter(str(folder), weight_name=LORA_FILE, upcast_before_saving=True)
        if cfg.vae_encoder_lora_rank:
            from peft import get_peft_model_state_dict

            save_safetensors(get_peft_model_state_dict(self.vae), folder / VAE_LORA_FILE)
        save_safetensors({"prompt_embeds": self.prompt_embeds}, folder / "prompt_embeds.safetensors")
        meta = {"format": FORMAT, "method": method, "generator": to_dict(cfg)}
        write_json_atomic({**meta, **(info or {})}, folder / "config.json")
        return folder

    def save_base(self, folder: Path) -> None:
        """The base networks without LoRA layers (used for random tiny bases)."""
        for name, model in (("unet", self.unet), ("vae", self.vae)):
            state = {
                k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora_" not in k
            }
            (folder / name).mkdir(parents=True, exist_ok=True)
            save_safetensors(state, folder / name / "diffusion_pytorch_model.safetensors")
            write_json_atomic(dict(model.config), folder / name / "config.json")
        (folder / "scheduler").mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.scheduler_config, folder / "scheduler" / "scheduler_config.json")

    @classmethod
    def from_folder(cls, folder: str | Path, fuse: bool = True) -> SDOneStepGenerator:
        folder = Path(folder)
        cfg = from_dict(SDOneStepConfig, read_folder_config(folder, FORMAT)["generator"])
        unet, vae, sched = load_base(cfg, folder)
        unet.load_lora_adapter(str(folder), weight_name=LORA_FILE, prefix=None, use_safetensors=True)
        if cfg.vae_encoder_lora_rank:
            from peft import set_peft_model_state_dict

            add_vae_encoder_lora(vae, cfg.vae_encoder_lora_rank)
            set_peft_model_state_dict(vae, load_state_dict(folder / VAE_LORA_FILE))
        if fuse:
            unet.fuse_lora()
            unet.unload_lora()
            if cfg.vae_encoder_lora_rank:
                from peft.tuners.tuners_utils import BaseTunerLayer

                for module in vae.modules():
                    if isinstance(module, BaseTunerLayer):
                        module.merge()
        prompt = load_state_dict(folder / "prompt_embeds.safetensors")["prompt_embeds"]
        return cls(cfg, unet, vae, sched, prompt).eval()


def random_sd_generator(base: str = "random-sd21") -> SDOneStepGenerator:
    """The one-step SD architecture (SD 2.1 / SD-Turbo UNet and VAE) with random weights, LoRA
    merged: D3SR's and OSEDiff's inference network, for speed measurements."""
    torch.manual_seed(0)
    cfg = SDOneStepConfig(base=base)
    unet, vae, sched = load_base(cfg)
    prompt = embed_prompt(base, "", unet.config.cross_attention_dim)
    return SDOneStepGenerator(cfg, unet, vae, sched, prompt).eval()
