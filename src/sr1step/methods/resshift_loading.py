"""Loading ResShift-family weights: official ``.pth`` checkpoints (keys checked, noise inputs
detected), model cards, teachers for distillation."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError, apply_overrides
from ..contract import WeightFolderError
from ..generators.resshift import ResShiftConfig, ResShiftGenerator
from ..hub import ModelCard, WeightsNotFoundError, download_card, get_card
from ..nets.autoencoders import convert_ldm_vq_state_dict
from ..nets.resshift_unet import (
    load_official_state,
)
from ..weights import WeightFileError, describe_mismatch, load_state_dict
from .resshift_presets import VQ_CARD, network_config

FAMILY = ("resshift", "sinsr", "rsd", "tadsr")  # card methods whose files are ResShift networks


def guess_network(path: Path) -> str:
    """Official file names carry the step count (``_s15_`` / ``_s4``); SinSR, RSD and TAD-SR
    files are v1 (15-step) students."""
    m = re.search(r"_s(\d+)", path.name)
    if m and int(m[1]) == 4:
        return "realsr-v3"
    return "realsr-v1"


def with_noise_input(cfg: ResShiftConfig, channels: int) -> ResShiftConfig:
    """The network with ``channels`` extra N(0, I) input channels (RSD's student takes one)."""
    if channels not in (0, 1):
        raise ValueError(f"a ResShift-family network takes 0 or 1 noise input channels, not {channels}")
    unet = dataclasses.replace(cfg.unet, extra_in_channels=channels)
    return dataclasses.replace(cfg, unet=unet, noise_input=channels == 1)


def generator_from_official(
    unet_path: Path, vq_file: Callable[[], Path | None], cfg: ResShiftConfig
) -> ResShiftGenerator:
    """Build a generator from official ``.pth`` files (loaded with ``weights_only=True``). The
    number of input channels of the checkpoint's first conv decides whether the network has a
    noise input (RSD's released student does), whatever ``cfg`` says. ``vq_file`` is asked for
    the autoencoder only once the UNet file has proved to be one."""
    state = load_state_dict(unet_path)
    first = state.get("input_blocks.0.0.weight")
    if first is not None:
        u = cfg.unet
        cfg = with_noise_input(cfg, first.shape[1] - u.in_channels - u.lq_channels)
    gen = ResShiftGenerator(cfg)
    try:
        load_official_state(gen.unet, state)
    except RuntimeError:  # another network's file
        mismatch = describe_mismatch(gen.unet.state_dict(), state)
        raise WeightFileError(f"{unet_path}: not a checkpoint of this ResShift network: {mismatch}") from None
    if gen.autoencoder.vq is not None:
        vq_path = vq_file()
        if vq_path is None:
            raise WeightsNotFoundError("this model needs the VQ-f4 autoencoder (model resshift-vq-f4)")
        levels = len(cfg.autoencoder.ch_mult)
        gen.autoencoder.vq.load_state_dict(
            convert_ldm_vq_state_dict(load_state_dict(vq_path), levels), strict=True
        )
    return gen.eval()


def _vq_file(card: ModelCard | None = None) -> Path | None:
    """The autoencoder file a model needs: its card's first requirement (default: the VQ-f4)."""
    name = (card.requires[0] if card.requires else None) if card is not None else VQ_CARD
    return None if name is None else _card_file(name)


def _card_file(name: str) -> Path:
    """The (first) file of a single-file model card, downloaded or found locally."""
    card = get_card(name)
    return download_card(card)[card.files[0]]


def load_teacher(spec: str) -> ResShiftGenerator:
    """A frozen ResShift-family model to distill: a card of any family member, one of our
    ResShift-family weight folders, or an official checkpoint file."""
    from ..hub import REPO_SPEC, load_cards, resolve_weights

    path = Path(spec).expanduser()
    if not spec:
        raise ConfigError(
            "distillation needs a teacher: --teacher MODEL (a card name, weight folder or file)"
        )
    if spec not in load_cards() and not path.exists() and not REPO_SPEC.match(spec):
        raise ConfigError(
            f"teacher {spec!r} does not exist (not a file, a folder, a model name or a Hub repo)"
        )
    from .resshift import RESSHIFT  # the family's loaders (resshift.py imports this module)

    target = resolve_weights(spec)
    if isinstance(target, ModelCard):
        if target.method not in FAMILY:
            family = ", ".join(FAMILY)
            raise ConfigError(
                f"teacher {spec!r} is a {target.method} model, not a ResShift-family one ({family})"
            )
        gen = RESSHIFT.from_card(target)
    elif target.is_dir():
        try:
            gen = ResShiftGenerator.from_folder(target)
        except WeightFolderError as err:
            raise ConfigError(f"teacher {spec!r} is not a ResShift-family model: {err}") from None
    else:
        gen = RESSHIFT.from_file(target)
    return gen.requires_grad_(False).eval()


def card_config(card: ModelCard) -> ResShiftConfig:
    cfg = network_config(card.preset or "realsr-v1")
    if card.params:
        cfg = apply_overrides(cfg, card.params)
    return cfg


def _weights_file(spec: str) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_file() else _card_file(spec)
