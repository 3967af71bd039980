"""The pieces of sr1step's compact default: the space-to-depth autoencoder, its network, the mild
training degradation with a clean share, bundled cards and how upscale picks the default."""

import dataclasses
import json
import shutil

import pytest
import torch
from conftest import natural_image

from sr1step.api import load_engine
from sr1step.config import ConfigError
from sr1step.data.degradations import (
    MILD_REALESRGAN,
    BicubicDegradation,
    RealESRGANConfig,
    RealESRGANDegradation,
)
from sr1step.generators.resshift import ResShiftGenerator
from sr1step.hub import WeightsNotFoundError, card_status, converted_dir, load_cards
from sr1step.methods.resshift import NETWORKS
from sr1step.nets.autoencoders import Autoencoder, AutoencoderConfig
from sr1step.registry import DEFAULT_MODEL, METHODS, method_for


def _hr(b, size, seed=0):
    return torch.stack([torch.from_numpy(natural_image(size, seed + i)).permute(2, 0, 1) for i in range(b)])


def test_unshuffle_autoencoder_is_a_lossless_space_to_depth():
    ae = Autoencoder(AutoencoderConfig(kind="unshuffle", unshuffle=4))
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (2, 48, 8, 12) and ae.factor == 4 and ae.config.latent_channels == 48
    assert torch.equal(ae.decode(z), x)
    # channel c*16 + i*4 + j of latent pixel (y, x) is image pixel (4y + i, 4x + j) of colour c
    assert z[1, 2 * 16 + 1 * 4 + 3, 5, 7] == x[1, 2, 4 * 5 + 1, 4 * 7 + 3]
    assert ae.config.image_space and not AutoencoderConfig().image_space


def test_compact_network_runs_at_the_lr_resolution():
    cfg = NETWORKS["compact"]
    gen = ResShiftGenerator(cfg).eval()
    assert gen.latent_ratio == 1 and gen.scale == 4
    seen = []
    gen.unet.register_forward_hook(lambda m, args, out: seen.append((args[0].shape, args[2].shape)))
    lr = torch.rand(1, 3, 32, 32)
    noise = torch.randn(1, gen.noise_channels, 32, 32)
    with torch.no_grad():
        out = gen(lr, noise)
    assert out.shape == (1, 3, 128, 128)
    assert seen[0] == ((1, 48, 32, 32), (1, 3, 32, 32))  # latent and LR at the LR size
    assert len(seen) == cfg.schedule.steps
    assert out.min() >= 0 and out.max() <= 1  # image-space latents are clipped while sampling
    n = sum(p.numel() for p in gen.parameters())
    assert 4.5e6 < n < 5.5e6  # 5.0 M: 10 MB in fp16, as shipped


def test_clean_share_gives_exact_bicubic_pairs():
    hr = _hr(32, 64)
    g = torch.Generator().manual_seed(3)
    bicubic = BicubicDegradation(4)(hr)
    out = RealESRGANDegradation(dataclasses.replace(MILD_REALESRGAN, bicubic_prob=0.5))(hr, g)
    clean = [torch.equal(out[i], bicubic[i]) for i in range(len(hr))]
    assert 6 <= sum(clean) <= 26  # about half, and the others are degraded
    all_clean = RealESRGANDegradation(dataclasses.replace(MILD_REALESRGAN, bicubic_prob=1.0))(hr, g)
    assert torch.equal(all_clean, bicubic)
    # without a clean share the random stream is the one the official settings always drew
    a = RealESRGANDegradation(RealESRGANConfig())(hr[:4], torch.Generator().manual_seed(5))
    g2 = torch.Generator().manual_seed(5)
    b = RealESRGANDegradation(dataclasses.replace(RealESRGANConfig(), bicubic_prob=0.0))(hr[:4], g2)
    assert torch.equal(a, b)


def test_mild_setting_is_milder_than_the_papers():
    hr = _hr(16, 64, seed=10)
    clean = BicubicDegradation(4)(hr)
    no_clean = dataclasses.replace(MILD_REALESRGAN, bicubic_prob=0.0)
    mild = RealESRGANDegradation(no_clean)(hr, torch.Generator().manual_seed(0))
    full = RealESRGANDegradation()(hr, torch.Generator().manual_seed(0))
    assert 0 < (mild - clean).abs().mean() < (full - clean).abs().mean()


def _bundle(tmp_path, monkeypatch, with_folder=True):
    """A bundled card (and its folder) in a user card directory."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "my-default.toml").write_text(
        'name = "my-default"\nmethod = "sinsr"\nsummary = "test"\nscale = 4\nlicense = "MIT"\n'
        'commercial_use = true\nsource_url = "bundled"\nfiles = ["config.json", "unet.safetensors"]\n'
        "bundled = true\n"
    )
    monkeypatch.setenv("SR1STEP_CARDS", str(cards))
    if with_folder:
        torch.manual_seed(0)
        gen = ResShiftGenerator(NETWORKS["tiny"])
        gen.save_folder(cards / "my-default", "resshift")
    return cards


def test_bundled_card_loads_from_its_folder(tmp_path, monkeypatch):
    cards = _bundle(tmp_path, monkeypatch)
    card = load_cards()["my-default"]
    assert converted_dir(card) == cards / "my-default" and card_status(card) == "bundled"
    engine = load_engine(None, "my-default")
    assert type(engine.generator) is ResShiftGenerator and engine.generator.steps == 1  # sinsr: one step


def test_bundled_card_without_its_folder_says_reinstall(tmp_path, monkeypatch):
    _bundle(tmp_path, monkeypatch, with_folder=False)
    card = load_cards()["my-default"]
    assert card_status(card) == "missing"
    with pytest.raises(WeightsNotFoundError, match="reinstall"):
        load_engine(None, "my-default")


def test_method_comes_from_the_card_or_the_folder(tmp_path, monkeypatch):
    method, weights = method_for(None, None)
    assert weights == DEFAULT_MODEL and method is METHODS[load_cards()[DEFAULT_MODEL].method]
    assert method_for("bicubic", None) == (METHODS["bicubic"], None)
    folder = tmp_path / "export"
    ResShiftGenerator(NETWORKS["tiny"]).save_folder(folder, "tadsr")
    assert method_for(None, str(folder))[0] is METHODS["tadsr"]
    (folder / "config.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ConfigError, match="give --method"):
        method_for(None, str(folder))
    shutil.rmtree(folder)
    with pytest.raises(ConfigError, match="give --method"):
        method_for(None, str(tmp_path / "weights.pth"))


def test_random_weights_build_the_released_architectures():
    from sr1step.generators.sd_onestep import random_sd_generator
    from sr1step.nets.sd_base import RANDOM_BASES
    from sr1step.nets.sd_configs import SD21_UNET

    gen = METHODS["sinsr"].load_generator("random")
    assert gen.steps == 1 and gen.config.unet.model_channels == 160 and gen.autoencoder.vq is not None
    rsd = METHODS["rsd"].load_generator("random")
    assert rsd.config.noise_input and rsd.config.unet.extra_in_channels == 1  # the released student
    assert METHODS["bicubic"].load_generator("random").scale == 4
    assert RANDOM_BASES["random-sd21"] is SD21_UNET  # what d3sr/osediff `--weights random` build
    tiny = random_sd_generator("tiny")
    assert tiny.steps == 1 and tiny.scale == 4
    with pytest.raises(ValueError, match="no random-weight architecture"):
        from sr1step.methods.base import Method

        Method("x", "y").load_generator("random")
