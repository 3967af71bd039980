"""Degradation pipeline: kernels, stages move the image the expected way, seeds reproduce."""

import math

import cv2
import numpy as np
import pytest
import torch
from conftest import natural_image

from sr1step.data.degradations import (
    BicubicDegradation,
    PairPool,
    RealESRGANConfig,
    RealESRGANDegradation,
    add_gaussian_noise,
    add_poisson_noise,
    anisotropic_kernel,
    filter2d,
    random_kernel,
    sinc_kernel,
)
from sr1step.data.jpeg import jpeg, quant_tables


def _hr(b=2, size=64):
    return torch.stack([torch.from_numpy(natural_image(size, s)).permute(2, 0, 1) for s in range(b)])


def _highfreq(x):
    """Energy of the Laplacian-like residual, away from the borders."""
    return (x - torch.nn.functional.avg_pool2d(x, 3, 1, 1))[..., 2:-2, 2:-2].pow(2).mean().item()


@pytest.mark.parametrize("kind", ["gaussian", "generalized", "plateau"])
def test_kernels_sum_to_one_and_are_centred(kind):
    k = anisotropic_kernel(21, 2.0, 1.0, 0.7, kind, beta=1.5)
    assert k.shape == (21, 21) and k.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert k.argmax().item() == 10 * 21 + 10 and torch.all(k >= 0)
    # point symmetric
    assert torch.allclose(k, k.flip(0).flip(1))


def test_anisotropic_orientation_and_isotropy():
    iso = anisotropic_kernel(15, 2.0, 2.0, 0.3)
    assert torch.allclose(iso, iso.T, atol=1e-12)
    wide = anisotropic_kernel(15, 3.0, 0.5, 0.0)  # elongated along x (columns)
    assert wide[7, :].sum() > wide[:, 7].sum()
    rot = anisotropic_kernel(15, 3.0, 0.5, math.pi / 2)
    assert torch.allclose(rot, wide.T, atol=1e-10)


def test_gaussian_kernel_matches_closed_form():
    k = anisotropic_kernel(11, 1.5, 1.5, 0.0)
    r = torch.arange(11, dtype=torch.float64) - 5
    g1 = torch.exp(-(r**2) / (2 * 1.5**2))
    ref = torch.outer(g1, g1)
    assert torch.allclose(k, ref / ref.sum(), atol=1e-12)


def test_sinc_kernel_is_lowpass():
    k = sinc_kernel(21, math.pi / 3)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-9)
    spectrum = torch.fft.fftshift(torch.fft.fft2(k)).abs()
    centre, corner = spectrum[10, 10].item(), spectrum[0, 0].item()
    assert centre == pytest.approx(1.0, abs=1e-6) and corner < 0.1


def test_random_kernels_are_seeded_and_normalised():
    cfg = RealESRGANConfig()
    a = [random_kernel(torch.Generator().manual_seed(5), cfg) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        k = random_kernel(g, cfg, second=bool(_ % 2))
        assert k.shape == (21, 21) and k.sum().item() == pytest.approx(1.0, abs=1e-9)


def test_blur_lowers_high_frequency_energy():
    x = _hr()
    k = anisotropic_kernel(21, 2.0, 2.0, 0.0)[None].repeat(2, 1, 1)
    y = filter2d(x, k)
    assert y.shape == x.shape
    assert _highfreq(y) < 0.3 * _highfreq(x)
    # a pulse kernel is the identity
    pulse = torch.zeros(2, 21, 21, dtype=torch.float64)
    pulse[:, 10, 10] = 1
    torch.testing.assert_close(filter2d(x, pulse), x)


def test_noise_raises_variance_and_gray_noise_is_shared():
    x = torch.full((2, 3, 32, 32), 0.5)
    g = torch.Generator().manual_seed(0)
    y = add_gaussian_noise(x, torch.tensor([10 / 255, 10 / 255]), torch.tensor([False, True]), g)
    assert (y - x).std().item() == pytest.approx(10 / 255, rel=0.1)
    assert not torch.allclose(y[0, 0], y[0, 1])
    assert torch.allclose(y[1, 0], y[1, 1])
    z = add_poisson_noise(
        _hr(), torch.tensor([3.0, 3.0], dtype=torch.float64), torch.tensor([False, False]), g
    )
    assert (z - _hr()).abs().mean() > 0


def test_jpeg_is_lossy_and_close_to_libjpeg():
    img = natural_image(64, 3)
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    psnr = lambda a, b: 10 * np.log10(1 / np.mean((a - b) ** 2))
    errors = []
    for q in (30, 90):
        ours = jpeg(t, torch.tensor([float(q)]))[0].permute(1, 2, 0).numpy()
        ok, buf = cv2.imencode(
            ".jpg",
            cv2.cvtColor((img * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, q],
        )
        ref = cv2.cvtColor(cv2.imdecode(buf, 1), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        assert psnr(ours, ref) > 38, q  # agrees with libjpeg
        errors.append(psnr(ours, img))
    assert errors[0] < errors[1] < 60  # lossy, and more so at low quality
    luma, chroma = quant_tables(torch.tensor([50.0]))
    assert luma[0, 0, 0] == 16 and chroma[0, 0, 0] == 17  # quality 50 = the Annex K tables


def test_realesrgan_pipeline_shapes_range_determinism():
    deg = RealESRGANDegradation()
    x = _hr(3, 64)
    a = deg(x, torch.Generator().manual_seed(7))
    b = deg(x, torch.Generator().manual_seed(7))
    c = deg(x, torch.Generator().manual_seed(8))
    assert a.shape == (3, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, (a * 255).round() / 255)  # quantised to 8 bits
    # degraded LR is further from the clean bicubic LR than the bicubic LR is from itself
    clean = BicubicDegradation(4)(x)
    assert (a - clean).abs().mean() > 0.005


def test_realesrgan_config_holds_official_ranges():
    cfg = RealESRGANConfig()
    assert cfg.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert (
        cfg.resize_range == (0.15, 1.5) and cfg.noise_range == (1.0, 30.0) and cfg.jpeg_range == (30.0, 95.0)
    )
    assert cfg.second_order_prob == 0.5 and cfg.final_sinc_prob == 0.8 and cfg.noise_range2 == (1.0, 25.0)


def test_bicubic_degradation():
    x = _hr(1, 64)
    lr = BicubicDegradation(4)(x)
    assert lr.shape == (1, 3, 16, 16)
    ref = torch.nn.functional.interpolate(x, size=(16, 16), mode="bicubic", antialias=True)
    assert (lr - ref.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6


def test_pair_pool_mixes_batches_and_keeps_pairs_aligned():
    g = torch.Generator().manual_seed(0)
    pool, twin = PairPool(6), PairPool(6)
    seen = []
    for step in range(12):
        hr = torch.full((2, 1, 4, 4), float(step)) + torch.tensor([0.0, 0.5]).view(2, 1, 1, 1)
        lr = hr[..., :2, :2] * 10  # the LR of a pair is tied to its HR
        out_hr, out_lr = pool(hr, lr, g)
        assert torch.equal(out_lr, out_hr[..., :2, :2] * 10)
        if step < 3:  # filling: batches pass through
            assert torch.equal(out_hr, hr)
        else:  # full: pairs leave from the queue, drawn from earlier steps, each once
            assert out_hr.max() < step
            seen += out_hr[:, 0, 0, 0].tolist()
        if step == 5:
            twin.load_state_dict(pool.state_dict())
            g_twin = torch.Generator()
            g_twin.set_state(g.get_state())
        if step > 5:  # a pool restored from its state continues identically
            assert torch.equal(twin(hr, lr, g_twin)[0], out_hr)
    assert len(set(seen)) == len(seen) == 18
    with pytest.raises(ValueError, match="multiple of the batch size"):
        PairPool(5)(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2), g)


# --- faithfulness to the official data pipeline (BasicSR / ResShift) ---------------------------


def reference_poisson_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """BasicSR's generate_poisson_noise_pt for one colour image (H, W, 3) in [0, 1], scale 1."""
    q = np.clip(np.round(img * 255), 0, 255) / 255
    vals = 2 ** np.ceil(np.log2(len(np.unique(q))))
    return rng.poisson(q * vals) / vals - q


@pytest.mark.parametrize("size", [64, 300])
def test_poisson_noise_strength_matches_basicsr(size):
    img = cv2.resize(natural_image(64, 3), (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    ref_std = reference_poisson_noise(img, np.random.default_rng(0)).std()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    ours = (
        add_poisson_noise(x, torch.tensor([1.0]), torch.tensor([False]), torch.Generator().manual_seed(0)) - x
    )
    assert 0.03 < ref_std < 0.06  # 8-bit images have at most 256 values: vals <= 256
    assert ours.std().item() == pytest.approx(ref_std, rel=0.05)


def test_noise_is_clipped_to_the_unit_range():
    deg = RealESRGANDegradation()
    x = torch.cat([torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16)])
    for seed, gauss_p in ((0, 1.0), (1, 0.0)):  # Gaussian, then Poisson
        g = torch.Generator().manual_seed(seed)
        out = deg._noise(x, g, torch.Generator().manual_seed(seed), gauss_p, (30.0, 30.0), (3.0, 3.0), 0.0)
        assert out.min() >= 0 and out.max() <= 1 and (out - x).abs().max() > 0


def _support(kernel: torch.Tensor) -> int:
    rows = (kernel.abs() > 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_kernel_sizes_follow_the_official_ranges():
    # Wide isotropic Gaussians only: every tap of the support is non-zero, so the support is the size.
    iso = dict(kernel_list=("iso",), kernel_prob=(1.0,), kernel_list2=("iso",), kernel_prob2=(1.0,))
    cfg = RealESRGANConfig(
        sinc_prob=0.0, sinc_prob2=0.0, blur_sigma=(3.0, 3.0), blur_sigma2=(1.5, 1.5), **iso
    )
    g = torch.Generator().manual_seed(0)
    first = {_support(random_kernel(g, cfg)) for _ in range(400)}
    second = {_support(random_kernel(g, cfg, second=True)) for _ in range(400)}
    assert first == set(range(3, 20, 2)) and second == set(range(3, 14, 2))
    assert RealESRGANConfig().kernel_sizes == tuple(range(3, 21, 2))  # range(3, blur_kernel_size=21, 2)
    assert RealESRGANConfig().kernel_sizes2 == tuple(range(3, 15, 2))  # range(3, blur_kernel_size2=15, 2)


@pytest.mark.parametrize("rescale, expected", [(True, 400 / 600), (False, 100 / 600)])
def test_hr_crops_rescale_the_picture_as_resshift_does(tmp_path, rescale, expected):
    from sr1step.data.datasets import HRCrops
    from sr1step.imageio import save_png

    ramp = np.tile(np.linspace(0, 1, 600, dtype=np.float32)[None, :, None], (400, 1, 3))  # value = x / 600
    save_png(tmp_path / "ramp.png", ramp)
    crops = HRCrops([tmp_path / "ramp.png"], 100, seed=0, flip=False, rescale=rescale)
    for i in range(3):
        row = crops[i][0, 50].numpy()
        assert row[-1] - row[0] == pytest.approx(expected * 99 / 100, abs=0.02)


def test_hr_crops_are_mirrored_half_of_the_time_only_with_flip(tmp_path):
    from sr1step.data.datasets import HRCrops
    from sr1step.imageio import save_png

    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], (64, 1, 3))  # = the whole crop
    save_png(tmp_path / "ramp.png", ramp)
    for flip in (True, False):
        crops = HRCrops([tmp_path / "ramp.png"], 64, seed=0, flip=flip)
        mirrored = [bool(crops[i][0, 0, 0] > crops[i][0, 0, -1]) for i in range(200)]
        assert (0.35 < np.mean(mirrored) < 0.65) if flip else not any(mirrored)


def test_hr_crops_take_all_eight_orientations_with_rotate_and_keep_the_stream_without(tmp_path):
    from sr1step.data.datasets import HRCrops
    from sr1step.imageio import save_png

    # A 64 px picture with four distinct corner values: its orientation is readable from them.
    corners = np.zeros((64, 64, 3), np.float32)
    corners[:32, :32], corners[:32, 32:], corners[32:, :32], corners[32:, 32:] = 0.1, 0.4, 0.7, 1.0
    save_png(tmp_path / "corners.png", corners)

    def orientations(crops):
        return {
            tuple(round(v, 1) for v in crops[i][0, [0, 0, -1, -1], [0, -1, 0, -1]].tolist())
            for i in range(200)
        }

    assert len(orientations(HRCrops([tmp_path / "corners.png"], 64, seed=0, rotate=True))) == 8  # 4 turns x 2
    assert orientations(HRCrops([tmp_path / "corners.png"], 64, seed=0)) == {
        (0.1, 0.4, 0.7, 1.0),
        (0.4, 0.1, 1.0, 0.7),
    }
    # The orientation is drawn after the crop and the horizontal flip, so rotate=True keeps the
    # stream of crops (and rotate=False, the default, the stream of runs before the option).
    noise = np.random.default_rng(0).random((96, 120, 3), dtype=np.float32)
    save_png(tmp_path / "noise.png", noise)
    plain, rotated = (HRCrops([tmp_path / "noise.png"], 48, seed=5, rotate=r) for r in (False, True))
    for i in range(20):
        r = rotated[i]
        undone = [r, r.flip(1), r.transpose(1, 2), r.transpose(1, 2).flip(1)]
        assert any(torch.equal(plain[i], u) for u in undone)


def test_jpeg_qualities_are_drawn_from_each_stage_range(monkeypatch):
    from sr1step.data import degradations

    calls = []
    real_jpeg = degradations.jpeg
    monkeypatch.setattr(degradations, "jpeg", lambda x, q: calls.append(q.clone()) or real_jpeg(x, q))
    cfg = RealESRGANConfig(jpeg_range=(40.0, 50.0), jpeg_range2=(80.0, 90.0), second_order_prob=1.0)
    hr = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for seed in range(3):
        calls.clear()
        RealESRGANDegradation(cfg)(hr, torch.Generator().manual_seed(seed))
        assert len(calls) == 2  # the first order's, then the final one (the second order has none)
        for q, (lo, hi) in zip(calls, [(40, 50), (80, 90)]):
            assert q.shape == (4,) and torch.all((q >= lo) & (q <= hi)) and q.unique().numel() == 4


@pytest.mark.parametrize("prob, stages", [(0.0, 1), (1.0, 2)])
def test_the_second_order_runs_with_its_probability(monkeypatch, prob, stages):
    from sr1step.data import degradations

    draws = []
    real = degradations._resize_factor
    monkeypatch.setattr(degradations, "_resize_factor", lambda *a: draws.append(a[1]) or real(*a))
    cfg = RealESRGANConfig(second_order_prob=prob)
    hr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for seed in range(4):
        draws.clear()
        RealESRGANDegradation(cfg)(hr, torch.Generator().manual_seed(seed))
        assert len(draws) == stages  # one random resize per order


def test_the_second_resize_is_relative_to_the_lr_size(monkeypatch):
    from sr1step.data import degradations

    sizes = []
    real = degradations.random_resize
    monkeypatch.setattr(
        degradations, "random_resize", lambda x, g, size: sizes.append(size) or real(x, g, size)
    )
    keep = (0.0, 0.0, 1.0)  # up, down, keep: both orders keep their size
    cfg = RealESRGANConfig(second_order_prob=1.0, resize_prob=keep, resize_prob2=keep)
    RealESRGANDegradation(cfg)(torch.rand(1, 3, 64, 96), torch.Generator().manual_seed(0))
    assert sizes[0] == (64, 96) and sizes[1] == (16, 24)  # first order at HR size, second at LR size


def test_each_image_of_a_batch_is_blurred_with_its_own_kernel():
    x = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1
    shift = torch.zeros(3, 3)
    shift[1, 0] = 1  # takes each pixel's left neighbour
    out = filter2d(x, torch.stack([identity, shift]))
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1, :, :, 1:], x[1, :, :, :-1])
