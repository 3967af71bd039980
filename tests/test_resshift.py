"""ResShift family: schedule values, samplers, network layout, converters, generator."""

import itertools

import numpy as np
import pytest
import torch

from sr1step.diffusion.resshift import (
    ResShiftSchedule,
    ResShiftScheduleConfig,
    eta_schedule,
    respaced_timesteps,
)
from sr1step.engine import Engine, EngineOptions
from sr1step.generators.resshift import ResShiftGenerator
from sr1step.methods.resshift import NETWORKS
from sr1step.nets.autoencoders import (
    Autoencoder,
    AutoencoderConfig,
    convert_ldm_vq_state_dict,
    diffusers_to_ldm_vq_state_dict,
)
from sr1step.nets.resshift_unet import (
    ResShiftUNet,
    ResShiftUNetConfig,
    load_official_state,
    widen_input_conv,
)
from sr1step.nets.swin import relative_position_index, shifted_window_mask
from sr1step.weights import clean_state_dict

V1_SQRT_ETA = [
    0.0200,
    0.1172,
    0.1763,
    0.2336,
    0.2916,
    0.3510,
    0.4124,
    0.4759,
    0.5417,
    0.6099,
    0.6807,
    0.7540,
    0.8300,
    0.9086,
    0.9900,
]
V3_SQRT_ETA = [0.1, 0.5201, 0.76138, 0.99]
TINY_UNET = NETWORKS["tiny"].unet


# --- schedule -----------------------------------------------------------------------------------


def test_v1_schedule_values():
    s = eta_schedule(15, kappa=2.0, min_noise_level=0.04, etas_end=0.99, power=0.3)
    np.testing.assert_allclose(s, V1_SQRT_ETA, atol=1e-4)


def test_v3_schedule_values():
    s = eta_schedule(4, kappa=2.0, min_noise_level=0.2, etas_end=0.99, power=0.3)
    np.testing.assert_allclose(s, V3_SQRT_ETA, atol=1e-4)


def test_posterior_variance_and_input_scaling_table():
    sched = ResShiftSchedule(ResShiftScheduleConfig())
    # resshift.md table: posterior var (clipped at t=0) and sqrt(kappa^2 eta + 1)
    np.testing.assert_allclose(
        sched.posterior_variance.numpy()[[1, 2, 14]], [0.00155, 0.03066, 0.52067], atol=2e-5
    )
    x = torch.ones(15, 1, 1, 1)
    t = torch.arange(15)
    std = 1 / sched.scale_input(x, t).flatten()
    np.testing.assert_allclose(std.numpy()[[0, 7, 14]], [1.0008, 1.3805, 2.2182], atol=1e-4)
    # pixel-space models divide by the official ``sqrt(eta_t) * kappa * 3 + 1`` instead
    pixel = ResShiftSchedule(ResShiftScheduleConfig(steps=4, kappa=2.0, min_noise_level=0.2, latent=False))
    scale = 1 / pixel.scale_input(torch.ones(4, 1, 1, 1), torch.arange(4)).flatten()
    np.testing.assert_allclose(scale.numpy(), np.array(V3_SQRT_ETA) * 2.0 * 3 + 1, rtol=1e-5)


@pytest.mark.parametrize(
    "steps, min_noise, t, k, m, j",
    [
        (15, 0.04, 14, 0.15617, 0.91778, -0.07395),
        (15, 0.04, 1, 0.83124, 0.17070, -0.00194),
        (4, 0.2, 3, 0.40499, 0.76907, -0.17407),
        (4, 0.2, 2, 0.44240, 0.68310, -0.12549),
        (4, 0.2, 1, 0.84974, 0.19227, -0.04201),
    ],
)
def test_ddim_coefficients_match_test_vectors(steps, min_noise, t, k, m, j):
    sched = ResShiftSchedule(ResShiftScheduleConfig(steps=steps, min_noise_level=min_noise))
    assert sched.ddim_k[t].item() == pytest.approx(k, abs=1e-5)
    assert sched.ddim_m[t].item() == pytest.approx(m, abs=1e-5)
    assert sched.ddim_j[t].item() == pytest.approx(j, abs=1e-5)


def test_q_sample_prior_and_eps_inverse():
    sched = ResShiftSchedule(ResShiftScheduleConfig())
    g = torch.Generator().manual_seed(0)
    x0, y, eps = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    t = torch.tensor([0, 9])
    eta = torch.tensor([0.02, 0.60991]) ** 2
    expected = x0 + eta.view(-1, 1, 1, 1) * (y - x0) + 2.0 * eta.sqrt().view(-1, 1, 1, 1) * eps
    xt = sched.q_sample(x0, y, t, eps)
    torch.testing.assert_close(xt, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(sched.eps_from_x0(xt, y, t, x0), eps, atol=1e-4, rtol=0)
    torch.testing.assert_close(sched.prior_sample(y, eps), y + 1.98 * eps, atol=1e-5, rtol=0)


def test_deterministic_sampler_reproduces_closed_form():
    """A network that always predicts c: every DDIM state lies on the closed-form path
    x_t = c + eta_t (y - c) + sqrt(eta_t / eta_T) (x_T - c - eta_T (y - c))."""
    sched = ResShiftSchedule(ResShiftScheduleConfig())
    g = torch.Generator().manual_seed(1)
    c, y, eps = (torch.randn(1, 3, 8, 8, generator=g) for _ in range(3))
    states = []

    def fixed_point(x, t):
        states.append((int(t[0]), x))
        return c

    out = sched.sample(fixed_point, y, eps, sampler="ddim")
    torch.testing.assert_close(out, c)
    x_T = sched.prior_sample(y, eps)
    eta = sched.etas.float()
    for t_model, x_scaled in states:
        t = torch.tensor([t_model])
        x_t = x_scaled * torch.sqrt(eta[t_model] * 4 + 1)
        closed = (
            c + eta[t_model] * (y - c) + torch.sqrt(eta[t_model] / eta[-1]) * (x_T - c - eta[-1] * (y - c))
        )
        torch.testing.assert_close(x_t, closed, atol=1e-5, rtol=0)
        assert sched.model_timesteps(t).item() == t_model
    assert [t for t, _ in states] == list(range(14, -1, -1))


def test_ancestral_sampler_uses_posterior_and_noise():
    sched = ResShiftSchedule(ResShiftScheduleConfig(steps=4, min_noise_level=0.2))
    y = torch.zeros(1, 3, 2, 2)
    noise = torch.ones(1, 12, 2, 2)
    seen = []

    def model(x, t):
        seen.append(x * (sched.etas[int(t)].float() * 4 + 1).sqrt())
        return torch.zeros_like(x)

    sched.sample(model, y, noise)
    # x_3 = 1.98; x_2 = coef1 * x_3 + sqrt(var) * 1 with x0 = 0
    x3 = 1.98
    var = sched.posterior_log_variance_clipped.exp()
    x2 = (sched.etas_prev[3] / sched.etas[3]).item() * x3 + var[3].sqrt().item()
    assert seen[0].mean().item() == pytest.approx(x3, abs=1e-5)
    assert seen[1].mean().item() == pytest.approx(x2, abs=1e-5)


def test_respacing_matches_official_rule():
    assert respaced_timesteps(15, 5) == [0, 3, 6, 9, 12]
    assert respaced_timesteps(15, 15) == list(range(15))
    sched = ResShiftSchedule(ResShiftScheduleConfig(sample_steps=5))
    assert sched.num_steps == 5 and sched.timesteps == [0, 3, 6, 9, 12]
    np.testing.assert_allclose(sched.sqrt_etas.numpy(), np.array(V1_SQRT_ETA)[[0, 3, 6, 9, 12]], atol=1e-4)
    with pytest.raises(ValueError):
        ResShiftSchedule(ResShiftScheduleConfig(sample_steps=16))


def test_respacing_truncates_like_the_official_rule():
    # int(15 / 4 * i): 3.75 -> 3, 7.5 -> 7, 11.25 -> 11 (rounding would give 4, 8)
    assert respaced_timesteps(15, 4) == [0, 3, 7, 11]


def test_a_respaced_chain_feeds_the_network_the_trained_chain_indices():
    sched = ResShiftSchedule(ResShiftScheduleConfig(sample_steps=4))
    calls = []
    sched.sample(
        lambda x, t: calls.append(int(t[0])) or x * 0,
        torch.zeros(1, 3, 2, 2),
        torch.zeros(1, 3 * 4, 2, 2),
    )
    assert calls == [11, 7, 3, 0]  # the trained chain's indices, last first; never 3, 2, 1, 0


def test_clipped_prediction_is_clamped_to_the_latent_range():
    sched = ResShiftSchedule(ResShiftScheduleConfig())
    t = torch.tensor([14])
    out = torch.tensor([-2.0, -0.5, 0.5, 2.0]).view(1, 1, 2, 2)
    x0 = sched.predict_x0(lambda x, tt: out, torch.zeros_like(out), torch.zeros_like(out), t, clip=True)
    assert x0.flatten().tolist() == [-1.0, -0.5, 0.5, 1.0]
    assert torch.equal(sched.predict_x0(lambda x, tt: out, out * 0, out * 0, t), out)


def test_a_residual_network_predicts_y_minus_x0():
    sched = ResShiftSchedule(ResShiftScheduleConfig(predict="residual"))
    y, out = torch.full((1, 3, 2, 2), 0.25), torch.full((1, 3, 2, 2), 0.75)
    x0 = sched.predict_x0(lambda x, t: out, torch.zeros_like(y), y, torch.tensor([14]))
    torch.testing.assert_close(x0, y - out)  # x0 = y - (y - x0)


def test_one_step_is_prediction_at_last_index():
    sched = ResShiftSchedule(ResShiftScheduleConfig())
    calls = []
    out = sched.sample(
        lambda x, t: calls.append(int(t[0])) or x * 0 + 5,
        torch.zeros(1, 3, 2, 2),
        torch.zeros(1, 3, 2, 2),
        steps=1,
    )
    assert calls == [14] and torch.all(out == 5)


# --- network -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_unet():
    torch.manual_seed(0)
    return ResShiftUNet(ResShiftUNetConfig())


def test_full_config_parameter_count_and_keys(full_unet):
    sd = full_unet.state_dict()
    assert sum(p.numel() for p in full_unet.parameters()) == 118_593_583
    assert len(sd) == 564
    assert sd["input_blocks.0.0.weight"].shape == (160, 6, 3, 3)
    assert sd["out.2.weight"].shape == (3, 160, 3, 3)
    assert sd["time_embed.0.weight"].shape == (640, 160)
    assert sd["input_blocks.1.1.blocks.0.attn.relative_position_bias_table"].shape == (225, 6)
    assert sd["input_blocks.1.1.blocks.1.mlp.fc1.weight"].shape == (768, 192, 1, 1)
    assert sum(k.endswith("relative_position_index") for k in sd) == 18
    masks = [k for k in sd if k.endswith("attn_mask")]
    assert len(masks) == 6 and all(".blocks.1." in k for k in masks)


def test_relative_position_index_bruteforce():
    ws = 4
    idx = relative_position_index(ws)
    for (i, (hi, wi)), (j, (hj, wj)) in itertools.product(
        enumerate(itertools.product(range(ws), range(ws))), repeat=2
    ):
        assert idx[i, j] == (hi - hj + ws - 1) * (2 * ws - 1) + (wi - wj + ws - 1)


def test_shifted_window_mask_matches_official_semantics():
    """Derived by hand: the official label image marks rows only ([0,H-ws) -> 6, [H-ws, H-s) -> 7,
    [H-s, H) -> 8) and its windows are flattened column-major, so token (a, b) of window (i, j)
    carries the label of row i*ws + b."""
    h, w, ws, s = 16, 8, 4, 2

    def label(row):
        return 6 if row < h - ws else (7 if row < h - s else 8)

    mask = shifted_window_mask(h, w, ws, s)
    n_w = w // ws
    assert mask.shape == ((h // ws) * n_w, ws * ws, ws * ws)
    for win in range(mask.shape[0]):
        i = win // n_w
        labels = [label(i * ws + b) for a in range(ws) for b in range(ws)]
        for p, q in itertools.product(range(ws * ws), repeat=2):
            assert mask[win, p, q] == (0.0 if labels[p] == labels[q] else -100.0)


@pytest.mark.parametrize("size", [16, 32])
def test_tiny_unet_shapes_and_size_multiple(size):
    net = ResShiftUNet(TINY_UNET).eval()
    x, lq = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
    assert net(x, torch.tensor([0, 3]), lq).shape == (2, 3, size, size)
    assert TINY_UNET.size_multiple == 8


def test_gradient_checkpointing_gives_the_same_gradients(monkeypatch):
    import sr1step.nets.resshift_unet as unet_mod

    torch.manual_seed(0)
    net = ResShiftUNet(TINY_UNET).train()
    x, lq, t = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.tensor([0, 3])

    def grads():
        net.zero_grad()
        net(x, t, lq).square().mean().backward()
        return [p.grad.clone() for p in net.parameters()]

    plain = grads()
    calls = []
    monkeypatch.setattr(
        unet_mod, "checkpoint", lambda *a, **k: calls.append(1) or torch.utils.checkpoint.checkpoint(*a, **k)
    )
    net.enable_gradient_checkpointing()
    checkpointed = grads()
    assert calls  # blocks really ran under checkpointing
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b)


def test_extra_input_channel_is_zero_initialised():
    torch.manual_seed(0)
    base = ResShiftUNet(TINY_UNET).eval()
    wide_cfg = ResShiftUNetConfig(**{**TINY_UNET.__dict__, "extra_in_channels": 1})
    wide = ResShiftUNet(wide_cfg).eval()
    wide.load_state_dict(widen_input_conv(base.state_dict(), 1))
    assert wide.input_blocks[0][0].weight.shape[1] == 7
    x, lq, noise = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16), torch.randn(1, 1, 16, 16)
    t = torch.tensor([3])
    torch.testing.assert_close(wide(x, t, lq, noise), base(x, t, lq))
    fresh = ResShiftUNet(wide_cfg)
    assert torch.all(fresh.input_blocks[0][0].weight[:, -1] == 0)


def test_official_state_loading_strips_wrappers_and_is_strict():
    net = ResShiftUNet(TINY_UNET)
    sd = net.state_dict()
    wrapped = {"state_dict": {f"module._orig_mod.{k}": v.clone() for k, v in sd.items()}}
    other = ResShiftUNet(TINY_UNET)
    load_official_state(other, clean_state_dict(wrapped))
    assert all(torch.equal(other.state_dict()[k], v) for k, v in sd.items())
    broken = dict(sd)
    broken.pop("out.2.weight")
    with pytest.raises(RuntimeError, match="out.2.weight"):
        load_official_state(other, broken)


# --- autoencoder -----------------------------------------------------------------------------------


def test_vq_f4_full_config_parameter_count():
    ae = Autoencoder(AutoencoderConfig())
    assert sum(p.numel() for p in ae.parameters()) == 55_322_782
    assert ae.vq.quantize.embedding.weight.shape == (8192, 3)


def test_vq_converter_is_an_exact_bijection():
    cfg = NETWORKS["tiny-vq"].autoencoder
    ae = Autoencoder(cfg)
    ours = ae.vq.state_dict()
    official = diffusers_to_ldm_vq_state_dict(ours)
    assert len(official) == len(ours)
    assert (
        "encoder.down.0.block.0.norm1.weight" in official and "decoder.up.2.block.0.conv1.weight" in official
    )
    assert official["encoder.mid.attn_1.q.weight"].dim() == 4
    back = convert_ldm_vq_state_dict(official)
    assert back.keys() == ours.keys() and all(torch.equal(back[k], ours[k]) for k in ours)
    with pytest.raises(KeyError, match="unexpected"):
        convert_ldm_vq_state_dict({"encoder.something.weird": torch.zeros(1)})


def test_vq_decode_quantises_and_tiling_is_close():
    torch.manual_seed(0)
    cfg = AutoencoderConfig(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=64, tile=0)
    ae = Autoencoder(cfg).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        z = ae.encode(x)
        assert z.shape == (1, 3, 16, 16)
        # decoding snaps to the codebook: z and its nearest code decode identically
        codes = ae.vq.quantize.embedding.weight
        flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
        nearest = codes[official_codes(flat, codes)].reshape(1, 16, 16, 3).permute(0, 3, 1, 2)
        torch.testing.assert_close(ae.decode(z), ae.decode(nearest + 0.0), atol=1e-4, rtol=0)
        # Large latents decode tile by tile (bounded memory); one tile covering all is the plain decode.
        calls = []
        tiled = Autoencoder(
            AutoencoderConfig(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=64, tile=8, tile_overlap=4)
        ).eval()
        tiled.load_state_dict(ae.state_dict())
        decode = tiled.vq.decode
        tiled.vq.decode = lambda q, **kw: calls.append(q.shape[-2:]) or decode(q, **kw)
        assert tiled.decode(z).shape == x.shape
        assert len(calls) == 9 and all(tuple(c) == (8, 8) for c in calls)
        whole = Autoencoder(
            AutoencoderConfig(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=64, tile=16)
        ).eval()
        whole.load_state_dict(ae.state_dict())
        torch.testing.assert_close(whole.decode(z), ae.decode(z), atol=0, rtol=0)


def official_codes(flat: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Codebook indices as the official VectorQuantizer2 computes them: z^2 + e^2 - 2 z.e."""
    d = (
        torch.sum(flat**2, dim=1, keepdim=True)
        + torch.sum(codes**2, dim=1)
        - 2 * torch.einsum("bd,dn->bn", flat, codes.t())
    )
    return d.argmin(1)


def test_vq_quantiser_breaks_near_ties_as_the_official_code():
    # A codebook at its initial scale (+-1/n) and latents of unit scale: many codes are nearly
    # equidistant, and torch.cdist (diffusers' quantiser) picks another code than the official
    # formula at some positions; ours must pick the official one everywhere.
    torch.manual_seed(0)
    ae = Autoencoder(
        AutoencoderConfig(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=8192, tile=0)
    ).eval()
    codes = ae.vq.quantize.embedding.weight.detach()
    with torch.no_grad():
        codes.uniform_(-1 / 8192, 1 / 8192)
    z = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 3
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    official = official_codes(flat, codes)
    assert (torch.cdist(flat, codes).argmin(1) != official).sum() > 0  # the near-ties are real
    with torch.no_grad():
        picked = ae.quantize(z).permute(0, 2, 3, 1).reshape(-1, 3)
    torch.testing.assert_close(picked, codes[official], atol=1e-6, rtol=0)


# --- generator -----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "tiny-vq"])
def test_generator_contract_odd_sizes(preset):
    from sr1step.tiling import pad_to_multiple

    torch.manual_seed(0)
    gen = ResShiftGenerator(NETWORKS[preset])
    lr = torch.rand(1, 3, 13, 21, generator=torch.Generator().manual_seed(5))
    out = Engine(gen, EngineOptions(seed=1)).run(lr)
    assert out.shape == (1, 3, 52, 84) and out.min() >= 0 and out.max() <= 1
    # The same seed repeats the image; another seed draws another noise field.
    torch.testing.assert_close(Engine(gen, EngineOptions(seed=1)).run(lr), out, atol=0, rtol=0)
    assert (Engine(gen, EngineOptions(seed=2)).run(lr) - out).abs().max() > 1e-3
    # An odd size is the crop of the run on the input padded as the engine pads it.
    padded, _ = pad_to_multiple(lr, gen.pad_multiple)
    assert padded.shape[-2:] != lr.shape[-2:]
    full = Engine(gen, EngineOptions(seed=1)).run(padded)
    torch.testing.assert_close(out, full[..., :52, :84], atol=1e-6, rtol=0)


def test_generator_steps_and_noise_channels():
    gen = ResShiftGenerator(NETWORKS["tiny"])
    assert gen.steps == 4 and gen.noise_channels == 12
    import dataclasses

    gen.set_sampling(dataclasses.replace(NETWORKS["tiny"], steps=1))
    assert gen.steps == 1 and gen.noise_channels == 3
    gen.set_sampling(dataclasses.replace(NETWORKS["tiny"], sampler="ddim"))
    assert gen.steps == 4 and gen.noise_channels == 3
    with pytest.raises(ValueError, match="networks"):
        gen.set_sampling(NETWORKS["tiny-vq"])


def test_generator_folder_roundtrip(tmp_path):
    torch.manual_seed(0)
    gen = ResShiftGenerator(NETWORKS["tiny-vq"]).eval()
    gen.save_folder(tmp_path / "w", "resshift")
    from sr1step.methods.resshift import RESSHIFT

    loaded = RESSHIFT.load_generator(str(tmp_path / "w"))
    lr = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(
        Engine(loaded, EngineOptions(seed=2)).run(lr), Engine(gen, EngineOptions(seed=2)).run(lr)
    )
    fewer = RESSHIFT.load_generator(str(tmp_path / "w"), steps=2)
    assert fewer.steps == 2 and fewer.schedule.timesteps == [0, 2]


def test_jump_sample_one_step_is_the_posterior_and_gaps_compose():
    sched = ResShiftSchedule(ResShiftScheduleConfig())
    g = torch.Generator().manual_seed(0)
    x0, y, x_t = (torch.randn(3, 3, 4, 4, generator=g) for _ in range(3))
    t, s = torch.tensor([14, 5, 1]), torch.tensor([13, 4, 0])
    mean = sched.jump_sample(x_t, x0, y, t, s, torch.zeros_like(x_t))
    torch.testing.assert_close(mean, sched.posterior_mean(x0, x_t, t), atol=1e-5, rtol=1e-5)
    std = sched.jump_sample(x_t, x0, y, t, s, torch.ones_like(x_t)) - mean
    torch.testing.assert_close(
        std[:, 0, 0, 0] ** 2, sched.posterior_variance[t].float(), atol=1e-6, rtol=1e-4
    )
    # Two posterior steps 14 -> 13 -> 12 have the distribution of one jump 14 -> 12 (mean and variance).
    n = 200_000
    xt, x0b, yb = (
        x_t[:1, :1, :1, :1].expand(n, 1, 1, 1),
        x0[:1, :1, :1, :1].expand(n, 1, 1, 1),
        y[:1, :1, :1, :1].expand(n, 1, 1, 1),
    )
    t14, t13, t12 = (torch.full((n,), k) for k in (14, 13, 12))
    mid = sched.jump_sample(xt, x0b, yb, t14, t13, torch.randn(n, 1, 1, 1, generator=g))
    two = sched.jump_sample(mid, x0b, yb, t13, t12, torch.randn(n, 1, 1, 1, generator=g))
    one = sched.jump_sample(xt, x0b, yb, t14, t12, torch.randn(n, 1, 1, 1, generator=g))
    assert abs(two.mean() - one.mean()) < 0.01 and abs(two.std() / one.std() - 1) < 0.01


def test_respacing_to_one_step_is_the_one_step_prediction(tmp_path):
    from typer.testing import CliRunner

    from sr1step.cli import app
    from sr1step.methods.resshift import RESSHIFT

    torch.manual_seed(0)
    gen = ResShiftGenerator(NETWORKS["tiny"]).eval()
    folder = gen.save_folder(tmp_path / "w", "resshift")
    respaced = RESSHIFT.load_generator(str(folder), steps=1)
    assert respaced.steps == 1 and respaced.schedule.timesteps == [3]  # t = T-1, not the official [0]
    one = RESSHIFT.load_generator(str(folder))
    one.set_sampling(one.config.with_steps(1))
    lr, noise = torch.rand(1, 3, 16, 16), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(respaced(lr, noise), one(lr, noise), atol=0, rtol=0)
    np_img = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(np_img).save(tmp_path / "in.png")
    cmd = [
        "upscale",
        str(tmp_path / "in.png"),
        str(tmp_path / "o"),
        "-m",
        "resshift",
        "-w",
        str(folder),
        "--steps",
        "1",
    ]
    assert CliRunner().invoke(app, cmd).exit_code == 0
