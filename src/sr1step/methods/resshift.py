"""ResShift (multi-step) and SinSR (one step): the ResShift family as upscale methods.

Network presets name the official configurations; official ``.pth`` files load directly (keys
checked with ``strict=True``) or are converted once with ``sr1step models convert``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..diffusion.resshift import ResShiftScheduleConfig
from ..config import apply_overrides, from_dict, unknown_name_error
from ..generators.resshift import FORMAT, ResShiftConfig, ResShiftGenerator
from ..hub import ModelCard, WeightsNotFoundError, converted_dir, download_card, get_card
from ..nets.autoencoders import AutoencoderConfig, convert_ldm_vq_state_dict
from ..nets.resshift_unet import ResShiftUNetConfig, load_official_state
from ..weights import load_state_dict
from .base import Method, read_folder_config

VQ_CARD = "resshift-vq-f4"

# Official configurations (configs/*.yaml of zsyOAOA/ResShift) and tiny test networks.
PRESETS: dict[str, ResShiftConfig] = {
    # realsr_swinunet_realesrgan256.yaml (v1, v2): 15 steps, sqrt(eta_1) = 0.02
    "realsr-v1": ResShiftConfig(schedule=ResShiftScheduleConfig(steps=15, min_noise_level=0.04)),
    # realsr_swinunet_realesrgan256_journal.yaml (v3) and bicx4_swinunet_lpips.yaml: 4 steps
    "realsr-v3": ResShiftConfig(schedule=ResShiftScheduleConfig(steps=4, min_noise_level=0.2)),
    # A tiny pixel-space network (no autoencoder) for CPU tests and demos.
    "tiny": ResShiftConfig(
        unet=ResShiftUNetConfig(
            image_size=16,
            model_channels=32,
            num_res_blocks=(1, 1),
            attention_resolutions=(16, 8),
            channel_mult=(1, 2),
            num_head_channels=16,
            swin_embed_dim=32,
            window_size=4,
            mlp_ratio=2.0,
            lq_size=16,
        ),
        schedule=ResShiftScheduleConfig(steps=4, min_noise_level=0.2, latent=False),
        autoencoder=AutoencoderConfig(kind="pixel"),
    ),
    # The same tiny UNet on a tiny VQ-f4 (the production latent path).
    "tiny-vq": ResShiftConfig(
        unet=ResShiftUNetConfig(
            image_size=16,
            model_channels=32,
            num_res_blocks=(1, 1),
            attention_resolutions=(16, 8),
            channel_mult=(1, 2),
            num_head_channels=16,
            swin_embed_dim=32,
            window_size=4,
            mlp_ratio=2.0,
            lq_size=16,
        ),
        schedule=ResShiftScheduleConfig(steps=4, min_noise_level=0.2),
        autoencoder=AutoencoderConfig(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=256, tile=64),
    ),
}


def preset_config(name: str) -> ResShiftConfig:
    if name not in PRESETS:
        raise unknown_name_error("ResShift preset", name, list(PRESETS))
    return PRESETS[name]


def guess_preset(path: Path) -> str:
    """Official file names carry the step count (``_s15_`` / ``_s4``); SinSR files are 15-step."""
    m = re.search(r"_s(\d+)", path.name)
    if m and int(m[1]) == 4:
        return "realsr-v3"
    return "realsr-v1"


def generator_from_official(
    unet_path: Path, vq_path: Path | None, cfg: ResShiftConfig
) -> ResShiftGenerator:
    """Build a generator from official ``.pth`` files (loaded with ``weights_only=True``)."""
    gen = ResShiftGenerator(cfg)
    load_official_state(gen.unet, load_state_dict(unet_path))
    if gen.autoencoder.vq is not None:
        if vq_path is None:
            raise WeightsNotFoundError("this model needs the VQ-f4 autoencoder (model resshift-vq-f4)")
        levels = len(cfg.autoencoder.ch_mult)
        gen.autoencoder.vq.load_state_dict(convert_ldm_vq_state_dict(load_state_dict(vq_path), levels), strict=True)
    return gen.eval()


def _vq_file(card: ModelCard | None = None) -> Path | None:
    """The autoencoder file a model needs: its card's first requirement (default: the VQ-f4)."""
    name = (card.requires[0] if card.requires else None) if card is not None else VQ_CARD
    if name is None:
        return None
    vq = get_card(name)
    return download_card(vq)[vq.files[0]]


def card_config(card: ModelCard) -> ResShiftConfig:
    cfg = preset_config(card.preset or "realsr-v1")
    if card.params:
        cfg = apply_overrides(cfg, card.params)
    return cfg


def convert_resshift_card(card: ModelCard, files: dict[str, Path], out: Path) -> None:
    """Converter for ResShift-family cards: official UNet + VQ files -> an sr1step folder."""
    gen = generator_from_official(files[card.files[0]], _vq_file(card), card_config(card))
    gen.save_folder(out, card.method, {"source": card.source_url, "license": card.license, "model": card.name})


class ResShift(Method):
    name = "resshift"
    summary = "ResShift (NeurIPS 2023 / TPAMI 2024): residual-shifting diffusion, 4 or 15 steps"
    default_model = "resshift-realsr-x4-v3"
    card_methods = ("resshift",)
    multistep = True
    one_step = False

    @classmethod
    def configure(cls, cfg: ResShiftConfig) -> ResShiftConfig:
        """One-step methods always run the single prediction at t = T-1."""
        return cfg.with_steps(1) if cls.one_step else cfg

    @classmethod
    def from_card(cls, card: ModelCard) -> ResShiftGenerator:
        folder = converted_dir(card)
        if (folder / "config.json").is_file():
            return cls.from_folder(folder)
        files = download_card(card)
        return generator_from_official(files[card.files[0]], _vq_file(card), cls.configure(card_config(card)))

    @classmethod
    def from_folder(cls, folder: Path) -> ResShiftGenerator:
        config = read_folder_config(folder)
        if config.get("format") != FORMAT:
            raise ValueError(f"{folder} is not a ResShift-family weight folder (format {config.get('format')!r})")
        cfg = from_dict(ResShiftConfig, config["generator"])
        return ResShiftGenerator.from_folder(folder, cls.configure(cfg))

    @classmethod
    def from_file(cls, path: Path) -> ResShiftGenerator:
        if path.suffix not in (".pth", ".pt", ".ckpt", ".safetensors"):
            raise ValueError(f"{path}: expected an official .pth checkpoint or a weight folder")
        return generator_from_official(path, _vq_file(), cls.configure(preset_config(guess_preset(path))))

    @classmethod
    def with_steps(cls, gen: ResShiftGenerator, steps: int) -> ResShiftGenerator:
        if cls.one_step:
            return super().with_steps(gen, steps)
        total = gen.config.schedule.steps
        if not 1 <= steps <= total:
            raise ValueError(f"--steps must be between 1 and {total} for this model")
        schedule = dataclasses.replace(gen.config.schedule, sample_steps=steps)
        gen.set_sampling(dataclasses.replace(gen.config, schedule=schedule, steps=None))
        return gen


class SinSR(ResShift):
    name = "sinsr"
    summary = "SinSR (CVPR 2024): ResShift distilled to one step"
    default_model = "sinsr-v1"
    card_methods = ("sinsr",)
    multistep = False
    one_step = True
