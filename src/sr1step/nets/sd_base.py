"""Stable Diffusion base networks for the SD-based methods: loading, LoRA, prompt embeddings.

A base is a model card (files from the Hub at a pinned revision), a diffusers-layout folder
(``unet/``, ``vae/``, ``scheduler/``, optionally ``text_encoder/`` + ``tokenizer/``), or a tiny
random architecture (``tiny`` = SD 2.x-like, ``tiny-sdxl`` = SDXL-like) for CPU tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .sd_configs import SD21_UNET, SD_SCHEDULER, SD_VAE, TINY_SD_UNET, TINY_SD_VAE, TINY_SDXL_UNET

# Bases built with random weights: tiny ones for tests, and the full SD 2.1 / SD-Turbo architecture
# (``random-sd21``) for speed measurements without downloads.
RANDOM_BASES = {"tiny": TINY_SD_UNET, "tiny-sdxl": TINY_SDXL_UNET, "random-sd21": SD21_UNET}

DEFAULT_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "conv", "conv_in", "conv_out",
)  # fmt: skip
VAE_ENCODER_TARGETS = (
    "conv1",
    "conv2",
    "conv_shortcut",
    "conv",
    "conv_in",
    "conv_out",
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
)


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: float = 16.0
    targets: tuple[str, ...] = DEFAULT_TARGETS


def diffusers_root(name: str) -> Path:
    """A diffusers-layout folder: ``name`` itself, or the local snapshot of the model card ``name``."""
    root = Path(name).expanduser()
    if root.is_dir():
        return root
    from ..hub import get_card, snapshot_folder

    return snapshot_folder(get_card(name))


def _variant_kwargs(sub: Path) -> dict:
    """``from_pretrained`` kwargs for a model subfolder that holds only the fp16 variant."""
    plain = sub / "diffusion_pytorch_model.safetensors"
    return (
        {}
        if plain.exists() or not (sub / "diffusion_pytorch_model.fp16.safetensors").exists()
        else {"variant": "fp16"}
    )


def load_sd_unet(base: str | Path):
    """(UNet2DConditionModel, scheduler config dict) of a base."""
    from diffusers import UNet2DConditionModel

    if str(base) in RANDOM_BASES:
        return UNet2DConditionModel(**RANDOM_BASES[str(base)]), dict(SD_SCHEDULER)
    root = diffusers_root(str(base))
    unet = UNet2DConditionModel.from_pretrained(
        root, subfolder="unet", local_files_only=True, **_variant_kwargs(root / "unet")
    )
    sched_path = root / "scheduler" / "scheduler_config.json"
    return unet, json.loads(sched_path.read_text()) if sched_path.exists() else dict(SD_SCHEDULER)


def load_sd_vae(base: str | Path):
    from diffusers import AutoencoderKL

    if str(base) in RANDOM_BASES:
        return AutoencoderKL(**(SD_VAE if str(base) == "random-sd21" else TINY_SD_VAE))
    root = diffusers_root(str(base))
    return AutoencoderKL.from_pretrained(
        root, subfolder="vae", local_files_only=True, **_variant_kwargs(root / "vae")
    )


def embed_prompt(base: str | Path, prompt: str, dim: int) -> torch.Tensor:
    """(1, 77, dim) text embedding of ``prompt`` with the base's CLIP text encoder, computed once;
    random bases get a fixed seeded stand-in."""
    if str(base) in RANDOM_BASES:
        g = torch.Generator().manual_seed(len(prompt))
        return torch.randn(1, 77, dim, generator=g) * 0.5
    from transformers import CLIPTextModel, CLIPTokenizer

    root = diffusers_root(str(base))
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    encoder = CLIPTextModel.from_pretrained(root / "text_encoder", local_files_only=True)
    ids = tokenizer(
        [prompt],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        return encoder(ids)[0].float()


def add_unet_lora(unet, lora: LoraSettings) -> None:
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            init_lora_weights="gaussian",
            target_modules=list(lora.targets),
        )
    )


def add_vae_encoder_lora(vae, rank: int) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    vae.requires_grad_(False)
    names = [
        n
        for n, _ in vae.named_modules()
        if n == "quant_conv" or (n.startswith("encoder.") and n.split(".")[-1] in VAE_ENCODER_TARGETS)
    ]
    cfg = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=names)
    inject_adapter_in_model(cfg, vae)


_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.(?P<adapter>[^.]+)\.weight$")


@torch.no_grad()
def merge_peft_lora(model: torch.nn.Module, state: dict[str, torch.Tensor], alpha: float) -> int:
    """Fold peft-named LoRA tensors (``<module>.lora_A.<adapter>.weight`` / ``lora_B``) into the
    plain weights of ``model``: ``W += alpha / rank * B @ A`` (a conv's k x k A composed with its
    1x1 B). ``<module>.base_layer.*`` tensors replace the module's own (fully trained layers).
    Every tensor must find its module; returns the number of merged adapters."""
    modules = dict(model.named_modules())
    pairs: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if ".base_layer." in key:
            module, param = key.split(".base_layer.")
            target = getattr(modules.get(module), param, None)
            if target is None:
                raise KeyError(f"{key}: the base model has no {module}.{param}")
            target.copy_(value)
            continue
        m = _LORA_KEY.match(key)
        if m is None:
            raise KeyError(f"{key}: not a peft LoRA tensor (<module>.lora_A|B.<adapter>.weight)")
        pairs.setdefault((m["module"], m["adapter"]), {})[m["ab"]] = value
    for (module, adapter), ab in pairs.items():
        layer = modules.get(module)
        if layer is None or not hasattr(layer, "weight"):
            raise KeyError(f"{module}: LoRA module of adapter {adapter!r} not found in the base model")
        if set(ab) != {"A", "B"}:
            raise KeyError(f"{module}: adapter {adapter!r} has lora_{''.join(ab)} only")
        a, b = ab["A"].float(), ab["B"].float()
        rank = a.shape[0]
        if a.dim() == 4:  # conv: A is (r, in, k, k), B is (out, r, 1, 1)
            delta = torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
        else:
            delta = b @ a
        layer.weight += (alpha / rank * delta).to(layer.weight.dtype)
    return len(pairs)
