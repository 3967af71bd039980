"""Behaviours a "beats bicubic" test cannot see, each pinned against a reference computation:
which noise slice each ancestral step reads, the timestep embedding's order, the luma weights of
gray shot noise, and the outputs of the tiny and compact ResShift UNets at fixed weights and
inputs (golden values of the code checked against the official UNetModelSwin to fp32 rounding)."""

import math

import pytest
import torch

from sr1step.data.degradations import add_poisson_noise
from sr1step.diffusion.resshift import ResShiftSchedule, ResShiftScheduleConfig
from sr1step.methods.resshift import NETWORKS
from sr1step.nets.resshift_unet import ResShiftUNet, timestep_embedding


def test_each_ancestral_step_reads_its_own_noise_slice():
    sched = ResShiftSchedule(ResShiftScheduleConfig(steps=4, kappa=2.0, min_noise_level=0.2, latent=False))
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(1, 3 * 4, 4, 4, generator=g)  # a different draw in every slice

    def model_fn(x, t):  # depends on x and t, so every step's input matters
        return 0.5 * x + 0.1 * t.view(-1, 1, 1, 1).float()

    # the reference chain, written out: the prior takes slice 0, the step after call i slice i + 1
    x = sched.prior_sample(y, noise[:, :3])
    for i, step in enumerate(reversed(range(4))):
        t = torch.full((1,), step, dtype=torch.long)
        x0 = sched.predict_x0(model_fn, x, y, t)
        if step == 0:
            break
        x = sched.ancestral_step(x0, x, t, noise[:, 3 * (i + 1) : 3 * (i + 2)])
    torch.testing.assert_close(sched.sample(model_fn, y, noise), x0, atol=0, rtol=0)
    # and the slices are read: changing the last noisy step's draw changes the result
    other = noise.clone()
    other[:, 9:12] += 1
    assert not torch.equal(sched.sample(model_fn, y, other), x0)


def test_timestep_embedding_is_cosines_then_sines_of_adm_frequencies():
    t = torch.tensor([0, 3, 999])
    emb = timestep_embedding(t, 8)
    freqs = [math.exp(-math.log(10000.0) * k / 4) for k in range(4)]
    for row, step in zip(emb, t.tolist()):
        expected = [math.cos(step * f) for f in freqs] + [math.sin(step * f) for f in freqs]
        torch.testing.assert_close(row, torch.tensor(expected), atol=1e-5, rtol=0)


def test_gray_shot_noise_is_drawn_on_bt601_luma():
    x = torch.zeros(1, 3, 8, 8)
    x[:, 0], x[:, 1], x[:, 2] = 0.8, 0.2, 0.5  # distinct channels: the weights show
    scale = torch.tensor([1.0])
    out = add_poisson_noise(x, scale, torch.tensor([True]), torch.Generator().manual_seed(3))
    noise = out - x
    torch.testing.assert_close(noise[:, 0], noise[:, 2], atol=1e-6, rtol=0)  # gray: one draw
    torch.testing.assert_close(noise[:, 1], noise[:, 2], atol=1e-6, rtol=0)
    luma = 0.299 * 0.8 + 0.587 * 0.2 + 0.114 * 0.5
    q = torch.full((1, 8, 8), round(luma * 255) / 255)
    vals = 2  # one distinct value -> at least 2 levels
    expected = torch.poisson(q * vals, generator=torch.Generator().manual_seed(3)) / vals - q
    torch.testing.assert_close(noise[:, 0], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "name, size, values, mean, std",
    [
        ("tiny", 16, [-0.08013, 0.05898, 0.07573, -0.09781], 0.03632, 0.15658),
        ("compact", 32, [-0.07898, 0.14591, -0.16977, -0.16295], -0.06186, 0.20899),
    ],
)
def test_resshift_unet_outputs_are_pinned(name, size, values, mean, std):
    """Every weight drawn from one seeded generator (the zero-initialised output layers too), fixed
    x, t and LR: scale-shift conditioning, shifted windows, relative positions, skips all count."""
    cfg = NETWORKS[name].unet
    net = ResShiftUNet(cfg).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        x = torch.randn(2, cfg.in_channels, size, size, generator=g)
        lq_size = size * cfg.lq_size // cfg.image_size
        lq = torch.rand(2, 3, lq_size, lq_size, generator=g)
        out = net(x, torch.tensor([0, 3]), lq)
    at = [(0, 0, 0, 0), (0, 1, 5, 7), (1, 2, size - 1, 3), (1, 0, size // 2, size // 2)]
    torch.testing.assert_close(torch.stack([out[i] for i in at]), torch.tensor(values), atol=2e-4, rtol=0)
    assert float(out.mean()) == pytest.approx(mean, abs=2e-4)
    assert float(out.std()) == pytest.approx(std, abs=2e-4)
