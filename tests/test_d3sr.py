"""D3SR: one-step SD generator, diffusion discriminator, EA-DISTS, training, export/upscale."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import natural_image
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.generators.sd_onestep import LORA_FILE, SDOneStepConfig, SDOneStepGenerator, load_base
from sr1step.losses import EADISTS, d_loss, g_loss, sobel_magnitude
from sr1step.methods.d3sr import D3SR, D3SRConfig, D3SRRecipe, parameter_report
from sr1step.nets.diffusion_discriminator import DiffusionDiscriminator, DiffusionDiscriminatorConfig
from sr1step.nets.sd_base import add_unet_lora
from sr1step.training.config import resolve_run_config
from sr1step.training.trainer import Trainer

runner = CliRunner()


def img(seed=0, size=64):
    return torch.from_numpy(natural_image(size, seed)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def ea_dists():
    torch.manual_seed(0)
    return EADISTS("random")


def tiny_generator(seed=0):
    torch.manual_seed(seed)
    cfg = SDOneStepConfig(base="tiny", vae_tile=0)
    unet, vae, sched = load_base(cfg)
    add_unet_lora(unet, cfg.lora)
    with torch.no_grad():
        for n, p in unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    return SDOneStepGenerator(cfg, unet, vae, sched, torch.randn(1, 77, 32))


# --- losses --------------------------------------------------------------------------------------


def test_sobel_magnitude_on_a_step_edge():
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0
    mag = sobel_magnitude(x)
    assert mag.shape == (1, 3, 8, 8)
    # |gx| = 4 on both sides of the step, normalised by 4*sqrt(2); 0 (up to eps) away from it
    torch.testing.assert_close(mag[0, 0, 2, 3], torch.tensor(4 / (4 * 2**0.5)), atol=1e-4, rtol=0)
    assert mag[0, 0, 2, 0].item() < 1e-3


def test_sobel_sees_bt601_luma_and_no_edge_at_the_image_border():
    from sr1step.losses import luminance

    for channel, weight in enumerate((0.299, 0.587, 0.114)):
        x = torch.zeros(1, 3, 2, 2)
        x[:, channel] = 1.0
        torch.testing.assert_close(luminance(x), torch.full((1, 1, 2, 2), weight))
    flat = sobel_magnitude(torch.full((1, 3, 6, 6), 0.7))
    assert flat.max().item() < 1e-3  # replicate padding: a flat image has no edges, borders included


def test_ea_dists_zero_for_identical_and_grows_with_blur(ea_dists):
    x = img(1)
    assert abs(ea_dists(x, x).item()) < 1e-6
    blurred = F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    very = F.avg_pool2d(x, 11, 1, 5, count_include_pad=False)
    a, b = ea_dists(blurred, x).item(), ea_dists(very, x).item()
    assert 0 < a < b


def test_ea_dists_edge_term_sees_edges(ea_dists):
    x = img(2)
    blurred = F.avg_pool2d(x, 7, 1, 3, count_include_pad=False)
    edge_only = EADISTS.__new__(EADISTS)
    torch.nn.Module.__init__(edge_only)
    edge_only.dists, edge_only.image_weight, edge_only.edge_weight = ea_dists.dists, 0.0, 1.0
    brighter = (x + 0.05).clamp(0, 1)  # same edges
    assert edge_only(blurred, x).item() > edge_only(brighter, x).item()


def test_gan_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert d_loss(real, fake, "hinge").item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
    assert g_loss(fake, "hinge").item() == pytest.approx(0.75)
    assert d_loss(real, fake, "non-saturating").item() == pytest.approx(
        float(F.softplus(-real).mean() + F.softplus(fake).mean())
    )
    # softplus(2) = 2.126928, softplus(-0.5) = 0.474077
    assert g_loss(fake, "non-saturating").item() == pytest.approx((2.126928 + 0.474077) / 2, abs=1e-6)
    with pytest.raises(ValueError):
        g_loss(fake, "wgan")


# --- generator -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_one_step_x0_matches_diffusers_scheduler(prediction):
    from diffusers import DDPMScheduler

    from sr1step.nets.sd_configs import SD_SCHEDULER

    gen = tiny_generator()
    gen.prediction_type = prediction
    sched = DDPMScheduler.from_config({**SD_SCHEDULER, "prediction_type": prediction})
    z, out = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    ref = sched.step(out, 999, z).pred_original_sample
    torch.testing.assert_close(gen.x0_from_output(out, z), ref, atol=1e-4, rtol=1e-4)
    assert gen.sqrt_abar == pytest.approx(0.068265, abs=1e-5)  # sqrt(abar_999) of the SD 2.x schedule


def test_generator_contract_and_latent_tiling():
    from sr1step.engine import Engine, EngineOptions

    gen = tiny_generator()
    assert gen.latent_ratio == 0.5 and gen.pad_multiple == 4 and gen.steps == 1 and gen.noise_channels == 0
    lr = img(3, 20)
    out = Engine(gen).run(lr)
    assert out.shape == (1, 3, 80, 80)
    # One tile covering the image is the untiled run; smaller tiles run the denoiser per latent tile.
    whole = Engine(gen, EngineOptions(tile=20, tile_overlap=4, tile_space="latent")).run(lr)
    torch.testing.assert_close(whole, out, atol=1e-5, rtol=0)
    calls = []
    denoise = gen.denoise
    gen.denoise = lambda z, noise=None: calls.append(z.shape[-1]) or denoise(z, noise)
    engine = Engine(gen, EngineOptions(tile=8, tile_overlap=4, tile_space="latent"))
    tiled = engine.run(lr)
    assert len(calls) == engine.num_tiles(20, 20) == 16 and set(calls) == {4}  # 8 LR px = 4 latent px
    assert tiled.shape == out.shape


def test_lora_save_load_fuse_round_trip(tmp_path):
    gen = tiny_generator(1).eval()
    folder = gen.save_folder(tmp_path / "w", "d3sr")
    with safe_open(str(folder / LORA_FILE), "pt") as f:
        keys = list(f.keys())
        assert f.metadata().get("lora_adapter_metadata")
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert (folder / "base" / "unet" / "config.json").is_file()  # tiny random base travels along
    loaded = D3SR.load_generator(str(folder))
    assert not any("lora" in n for n, _ in loaded.unet.named_parameters())  # fused
    lr = img(4, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lr), gen(lr), atol=1e-4, rtol=1e-4)


def test_d3sr_without_weights_says_so():
    from sr1step.hub import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="no released weights"):
        D3SR.load_generator(None)


# --- discriminator ---------------------------------------------------------------------------------------


def test_discriminator_scores_per_position_and_trains_only_lora_and_head():
    torch.manual_seed(0)
    d = DiffusionDiscriminator(DiffusionDiscriminatorConfig(backbone="tiny", head_hidden=16))
    assert len(d.unet.up_blocks) == 0 and d.unet.conv_out is None
    trainable = {n for n, p in d.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    z = torch.randn(2, 4, 16, 16)
    t = torch.tensor([20, 900])
    logits = d(z, t)
    assert logits.shape == (2, 1, 8, 8)  # one score per mid-block position
    from diffusers import DDPMScheduler

    from sr1step.nets.sd_configs import SD_SCHEDULER

    noise = torch.randn_like(z)
    ref = DDPMScheduler.from_config(SD_SCHEDULER).add_noise(z, noise, t)
    torch.testing.assert_close(d.add_noise(z, t, noise), ref, atol=1e-5, rtol=1e-5)
    tt = d.sample_timesteps(20_000, "cpu")
    assert tt.min() == 20 and tt.max() == 980  # U{t_min..t_max}, both ends included


# --- training ---------------------------------------------------------------------------------------------


def tiny_run(steps, **train):
    import json

    overrides = [
        f"train.max_steps={steps}",
        'train.device="cpu"',
        "train.checkpoint_every=2",
        "train.log_every=1",
        "data.gt_size=32",
        "data.crop_pad_size=40",
        "data.val_size=32",
        "data.val_count=1",
    ]
    overrides += [f"train.{k}={json.dumps(v)}" for k, v in train.items()]
    return resolve_run_config(D3SR.presets["tiny"](), D3SRConfig, None, overrides)


def test_gradients_reach_lora_only():
    run = tiny_run(1)
    torch.manual_seed(0)
    recipe = D3SRRecipe(run)
    recipe.bind(recipe.networks())
    from sr1step.training.recipe import Batch

    hr = img(5, 32)
    batch = Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="area"))
    loss, logs = recipe.loss("generator", batch, {})
    loss.backward()
    assert {"mse", "ea_dists", "gan"} <= set(logs)
    for name, p in recipe.gnet.named_parameters():
        if p.requires_grad:
            assert "lora_" in name
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    # LoRA starts with B = 0, so at the first step only the B matrices receive a gradient
    lora_b = [p.grad.abs().sum().item() for n, p in recipe.gnet.named_parameters() if "lora_B" in n]
    assert sum(g > 0 for g in lora_b) > 0.5 * len(lora_b)
    assert all(p.grad is None for p in recipe.gen.vae.parameters())


def test_losses_are_weighted_and_real_latents_scaled_and_noised_like_fakes():
    from sr1step.training.recipe import Batch

    hr = img(5, 32)
    batch = Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="area"))
    for weight in (1.0, 3.0):
        torch.manual_seed(0)
        recipe = D3SRRecipe(tiny_run(1))
        recipe.losses = replace(recipe.losses, mse_weight=weight, gan_weight=0.0)
        recipe.bind(recipe.networks())
        state = {}
        with torch.no_grad():
            loss, logs = recipe.loss("generator", batch, state)
        assert loss.item() - logs["ea_dists"] == pytest.approx(weight * logs["mse"], rel=1e-5)
    # the discriminator's real samples are the HR's latents in the generator's scaled space
    gen = recipe.gen
    z = gen.vae.encode(hr * 2 - 1).latent_dist.mode() * gen.scaling_factor
    torch.testing.assert_close(state["real"], z)
    seen = []
    real_forward = recipe.wrapped["discriminator"].forward
    recipe.wrapped["discriminator"].forward = lambda x, t, n: seen.append((t, n)) or real_forward(x, t, n)
    recipe.loss("discriminator", batch, state)
    (t, noise), b = seen[0], hr.shape[0]
    assert torch.equal(t[:b], t[b:]) and torch.equal(noise[:b], noise[b:])  # real and fake noised alike


def test_the_pixel_term_is_the_mean_squared_error_and_the_gan_term_is_weighted():
    from sr1step.training.recipe import Batch

    hr = img(6, 32)
    batch = Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="area"))
    torch.manual_seed(0)
    recipe = D3SRRecipe(tiny_run(1))
    recipe.losses = replace(recipe.losses, mse_weight=1.0, gan_weight=0.5)
    recipe.bind(recipe.networks())
    with torch.no_grad():
        loss, logs = recipe.loss("generator", batch, {})
        sr = recipe.gen.decode(recipe.wrapped["generator"](batch.lr)).float()
    assert logs["mse"] == pytest.approx(((sr - hr) ** 2).mean().item(), rel=1e-5)
    assert logs["mse"] != pytest.approx((sr - hr).abs().mean().item(), rel=1e-3)
    rest = loss.item() - logs["mse"] - logs["ea_dists"]
    assert rest == pytest.approx(0.5 * logs["gan"], rel=1e-4, abs=1e-6)


def test_tiny_training_changes_lora_resumes_and_exports(tmp_path):
    from safetensors.torch import load_file

    straight = Trainer(tiny_run(4), D3SR.build_recipe, tmp_path / "a", log=lambda m: None)
    before = {
        n: p.detach().clone() for n, p in straight.nets["generator"].named_parameters() if p.requires_grad
    }
    d_before = {
        n: p.detach().clone() for n, p in straight.nets["discriminator"].named_parameters() if p.requires_grad
    }
    result = straight.fit()
    assert all(np.isfinite(list(h.values())).all() for h in result.history)
    after = {n: p.detach() for n, p in straight.nets["generator"].named_parameters() if p.requires_grad}
    assert any(not torch.equal(before[n], after[n]) for n in before)
    d_after = {n: p.detach() for n, p in straight.nets["discriminator"].named_parameters() if p.requires_grad}
    assert any(not torch.equal(d_before[n], d_after[n]) for n in d_before)
    ckpt = load_file(
        str(tmp_path / "a" / "checkpoints" / "checkpoint-0000004" / "networks" / "generator.safetensors")
    )
    assert ckpt and all("lora_" in k for k in ckpt)  # frozen base weights are not checkpointed

    Trainer(tiny_run(2), D3SR.build_recipe, tmp_path / "b", log=lambda m: None).fit()
    resumed = Trainer(tiny_run(4), D3SR.build_recipe, tmp_path / "b", log=lambda m: None).fit(resume="latest")
    wa = load_file(str(result.export_dir / LORA_FILE))
    wb = load_file(str(resumed.export_dir / LORA_FILE))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    src = tmp_path / "lr.png"
    Image.fromarray((natural_image(24) * 255).astype(np.uint8)).save(src)
    up = runner.invoke(
        app,
        [
            "upscale",
            str(src),
            str(tmp_path / "up"),
            "--method",
            "d3sr",
            "--weights",
            str(result.export_dir),
            "--tile",
            "16",
            "--tile-overlap",
            "4",
        ],
    )
    assert up.exit_code == 0, up.output
    assert Image.open(tmp_path / "up" / "lr.png").size == (96, 96)


def test_full_preset_parameter_counts():
    report = parameter_report(D3SR.presets["sd-turbo"]().model)
    assert report["generator_unet"] == 865_910_724 and report["generator_vae"] == 83_653_863
    assert report["generator_lora"] == 16_222_848
    assert report["generator_total"] == pytest.approx(966.3e6, rel=1e-3)  # the paper's total
    assert report["discriminator_backbone"] == 1_243_367_040  # SDXL UNet without its up blocks
    assert report["discriminator_trainable"] == 23_220_224 + 1280 * 512 + 512 + 512 + 1


def test_cli_d3sr_presets(tmp_path):
    result = runner.invoke(
        app, ["train", "--method", "d3sr", "--output", str(tmp_path / "o"), "--print-config"]
    )
    assert (
        result.exit_code == 0
        and 'base = "sd-turbo"' in result.output
        and 'backbone = "sdxl-base"' in result.output
    )


def test_vae_encoder_lora_ablation_trains_and_round_trips(tmp_path):
    run = resolve_run_config(
        tiny_run(1),
        D3SRConfig,
        None,
        ["model.generator.vae_encoder_lora_rank=2", "model.losses.gan_weight=0.0"],
    )
    torch.manual_seed(0)
    recipe = D3SRRecipe(run)
    recipe.bind(recipe.networks())
    vae_lora = [p for n, p in recipe.gen.vae.named_parameters() if "lora_" in n]
    assert vae_lora and all(p.requires_grad for p in vae_lora)
    assert all(not p.requires_grad for n, p in recipe.gen.vae.named_parameters() if "lora_" not in n)
    from sr1step.training.recipe import Batch

    hr = img(6, 32)
    loss, _ = recipe.loss("generator", Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="area")), {})
    loss.backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in recipe.gen.vae.named_parameters()
        if "lora_B" in n
    )
    with torch.no_grad():
        for n, p in recipe.gen.vae.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    folder = recipe.export(tmp_path / "w", "d3sr", {})
    loaded = D3SR.load_generator(str(folder))
    lr = img(7, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lr), recipe.gen.eval()(lr), atol=1e-4, rtol=1e-4)


def test_the_discriminator_is_taught_that_hr_latents_are_real_and_outputs_fake():
    from sr1step.losses import d_loss
    from sr1step.training.recipe import Batch

    hr = img(6, 32)
    batch = Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="area"))
    torch.manual_seed(0)
    recipe = D3SRRecipe(tiny_run(1))
    recipe.bind(recipe.networks())
    state = {}
    with torch.no_grad():
        recipe.loss("generator", batch, state)
    seen = []
    disc = recipe.wrapped["discriminator"]
    real_forward = disc.forward
    disc.forward = lambda x, t, n: seen.append((x, t, n)) or real_forward(x, t, n)
    with torch.no_grad():
        loss, logs = recipe.loss("discriminator", batch, state)
        x, t, n = seen[0]
        b = hr.shape[0]
        assert torch.equal(x[:b], state["real"]) and torch.equal(x[b:], state["fake"].to(x.dtype))
        real_logits = real_forward(state["real"], t[:b], n[:b]).float()
        fake_logits = real_forward(state["fake"].to(x.dtype), t[b:], n[b:]).float()
    expected = d_loss(real_logits, fake_logits, recipe.losses.gan_loss)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["d_real"] == pytest.approx(real_logits.mean().item(), rel=1e-5, abs=1e-6)
    swapped = d_loss(fake_logits, real_logits, recipe.losses.gan_loss)
    assert abs(swapped.item() - expected.item()) > 1e-4  # the test can tell the halves apart
