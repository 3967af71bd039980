"""OSEDiff (Wu et al., NeurIPS 2024): SD 2.1-base with LoRA, one step at t = 999, inference.

The release (``osediff.pkl``) is a ``torch.save`` dict, read with ``weights_only=True``:
``state_dict_unet`` / ``state_dict_vae`` hold peft-named LoRA tensors of the UNet adapters
(``default_encoder``, ``default_decoder``, ``default_others``) and of the VAE encoder, plus the
fully trained ``conv_in`` as ``conv_in.base_layer.*``; ``rank_unet`` / ``rank_vae`` their ranks.
The official code leaves ``lora_alpha`` at peft's default 8, so each adapter adds
``8 / rank * B @ A``; sr1step folds them into the base weights once at load time, which is what the
official ``--merge_and_unload_lora`` does.

The SD pipeline is the one D3SR uses (``generators/sd_onestep.py``). Differences from the official
inference, all documented in docs/methods/osediff.md: the prompt is fixed (card ``params.prompt``,
empty by default) instead of DAPE's tags; the VAE posterior's mode is used instead of one sample
(deterministic output); the LR is upsampled with torch's bicubic instead of PIL's.
"""

from __future__ import annotations

from pathlib import Path

from ..generators.sd_onestep import SDOneStepConfig, SDOneStepGenerator, random_sd_generator
from ..hub import ModelCard, WeightsNotFoundError, download_card
from ..nets.sd_base import embed_prompt, load_sd_unet, load_sd_vae, merge_peft_lora
from ..weights import WeightFileError, load_torch_file
from .base import Method

DEFAULT_BASE = "sd-2-1-base"
PEFT_DEFAULT_ALPHA = 8.0  # LoraConfig(r=rank) without lora_alpha, as the official code builds it


def osediff_generator(
    release: Path, base: str, *, prompt: str = "", lora_alpha: float = PEFT_DEFAULT_ALPHA
) -> SDOneStepGenerator:
    """The official ``osediff.pkl`` on the SD base ``base`` (card name or diffusers folder)."""
    data = load_torch_file(release)
    if not isinstance(data, dict) or "state_dict_unet" not in data:
        raise WeightFileError(
            f"{release}: not an OSEDiff release file (no 'state_dict_unet'; keys: {sorted(data)[:5]})"
        )
    unet, scheduler = load_sd_unet(base)
    vae = load_sd_vae(base)
    merge_peft_lora(unet, data["state_dict_unet"], lora_alpha)
    merge_peft_lora(vae, data.get("state_dict_vae", {}), lora_alpha)
    prompt_embeds = embed_prompt(base, prompt, unet.config.cross_attention_dim)
    cfg = SDOneStepConfig(base=str(base), scale=4, timestep=999, vae_encoder_lora_rank=0)
    return SDOneStepGenerator(cfg, unet, vae, scheduler, prompt_embeds).eval()


class OSEDiffMethod(Method):
    def from_card(self, card: ModelCard) -> SDOneStepGenerator:
        if not card.requires:
            raise ValueError(f"model card {card.name!r} must name its SD base in `requires`")
        release = download_card(card)[card.files[0]]
        params = card.params
        return osediff_generator(
            release,
            card.requires[0],
            prompt=params.get("prompt", ""),
            lora_alpha=params.get("lora_alpha", PEFT_DEFAULT_ALPHA),
        )

    def from_file(self, path: Path) -> SDOneStepGenerator:
        if path.suffix not in (".pkl", ".pth", ".pt"):
            raise ValueError(f"{path}: expected the official osediff.pkl")
        return osediff_generator(path, DEFAULT_BASE)

    def random_generator(self) -> SDOneStepGenerator:
        return random_sd_generator()

    def build_default(self, scale=None):
        raise WeightsNotFoundError("OSEDiff needs --weights osediff-x4 (or the path of osediff.pkl)")


OSEDIFF = OSEDiffMethod(
    "osediff",
    "OSEDiff (NeurIPS 2024): SD 2.1-base with LoRA, one step (the official release, inference)",
    default_model="osediff-x4",
    published_as="OSEDiff-s1",
)
