"""GAN and regression SR baselines (Real-ESRGAN, BSRGAN, SwinIR, ...) through spandrel.

spandrel (MIT; the loader ComfyUI and chaiNNer use) recognises a network from its state dict
alone. sr1step reads the file itself (safetensors, or ``torch.load(weights_only=True)``: no
pickle from a download runs), lets spandrel detect and build the network, and wraps it in the
generator contract, so tiling, dtype, self-ensemble, colour fix and progress are the engine's as
for every other method. The scale comes from the network. Only single-image x-scale SR networks
are accepted: a denoiser, a face restorer or an inpainter is refused with what it is.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..contract import SRGenerator
from ..hub import ModelCard, download_card
from ..weights import WeightFileError, load_state_dict
from .base import Method

WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")

# what spandrel's purposes are, for the refusal of networks that are not x-scale SR
NOT_SR = {
    "FaceSR": "a face restoration model",
    "Restoration": "a restoration model (a denoiser, deblurrer or JPEG remover: scale 1)",
    "Inpainting": "an inpainting model",
}


class SpandrelGenerator(SRGenerator):
    """A spandrel ``ImageModelDescriptor`` behind the generator contract."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model  # registered, so .to() and parameter counts see it
        self._descriptor = descriptor
        self.scale = int(descriptor.scale)
        self.pad_multiple = max(1, int(descriptor.size_requirements.multiple_of))
        self.supports_half = bool(descriptor.supports_half)

    def forward(self, lr: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        # spandrel's call: the network's own call convention, padding to its minimum/square size
        return self._descriptor(lr)


def spandrel_descriptor(path: Path):
    """spandrel's descriptor of the network in ``path``; ValueError when it is not one it knows."""
    import spandrel

    state = load_state_dict(path)  # safetensors or weights_only torch.load; unwraps params_ema/params
    try:
        return spandrel.ModelLoader().load_from_state_dict(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError:
        known = ", ".join(sorted(a.architecture.name for a in spandrel.MAIN_REGISTRY.architectures()))
        raise ValueError(
            f"{path}: spandrel does not recognise this network (it knows {known}); a ResShift, SinSR, "
            "RSD or TAD-SR checkpoint loads with --method resshift/sinsr/rsd/tadsr"
        ) from None
    except (
        RuntimeError,
        KeyError,
        AssertionError,
        ValueError,
        IndexError,
    ) as err:  # a detected arch, odd sizes
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: spandrel could not build the network it detected ({reason})") from None


def spandrel_architecture(path: Path) -> str | None:
    """The architecture spandrel sees in ``path``, or None (for errors that suggest the method)."""
    try:
        return spandrel_descriptor(path).architecture.name
    except (ValueError, WeightFileError, OSError, RuntimeError, KeyError, ImportError):
        return None


def load_spandrel(path: Path) -> SpandrelGenerator:
    descriptor = spandrel_descriptor(path)
    arch, purpose = descriptor.architecture.name, descriptor.purpose
    if purpose in NOT_SR or descriptor.scale < 2:
        what = NOT_SR.get(purpose, "a scale-1 model")
        raise ValueError(f"{path}: a {arch} network, {what}; sr1step runs x-scale SR networks only")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ValueError(
            f"{path}: a {arch} network with {descriptor.input_channels} input and "
            f"{descriptor.output_channels} output channels; sr1step runs RGB -> RGB networks"
        )
    return SpandrelGenerator(descriptor).eval()


class SpandrelMethod(Method):
    def from_file(self, path: Path) -> SRGenerator:
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ValueError(f"{path}: expected a {', '.join(WEIGHT_SUFFIXES)} weight file")
        return load_spandrel(path)

    def from_card(self, card: ModelCard) -> SRGenerator:
        return load_spandrel(download_card(card)[card.files[0]])

    def from_folder(self, folder: Path) -> SRGenerator:
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in WEIGHT_SUFFIXES)
        if len(files) != 1:
            raise ValueError(f"{folder}: give the weight file itself (found {len(files)} weight files)")
        return load_spandrel(files[0])


SPANDREL = SpandrelMethod(
    "spandrel",
    "GAN/regression SR networks spandrel recognises (Real-ESRGAN, BSRGAN, SwinIR, ...), from a file or card",
)
