import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import natural_image
from torch import nn

from sr1step.colorfix import adain, apply_color_fix, wavelet, wavelet_lowpass
from sr1step.contract import SRGenerator
from sr1step.engine import Engine, EngineOptions
from sr1step.tiling import blend_ramp, pad_to_multiple, tile_starts


class LocalSR(SRGenerator):
    """Translation-equivariant x2 SR net with a 3-pixel receptive radius (zero padding)."""

    def __init__(self, multiple=1):
        super().__init__()
        torch.manual_seed(0)
        self.scale = 2
        self.pad_multiple = multiple
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(8, 12, 3, padding=1),
        )

    def forward(self, lr, noise=None):
        return F.pixel_shuffle(self.body(lr), 2) + F.interpolate(lr, scale_factor=2, mode="nearest")


class NoisyLatentSR(SRGenerator):
    """A latent generator: 'encode' = identity-ish conv, 'denoise' = local conv + noise, 'decode' = x2."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.scale = 2
        self.latent_ratio = 1
        self.noise_channels = 1
        self.noise_ratio = 1
        self.enc = nn.Conv2d(3, 4, 1)
        self.den = nn.Conv2d(5, 4, 3, padding=1)
        self.dec = nn.Conv2d(4, 12, 1)

    def encode(self, lr):
        return self.enc(lr)

    def denoise(self, cond, noise=None):
        return self.den(torch.cat([cond, noise], 1))

    def decode(self, z):
        return F.pixel_shuffle(self.dec(z), 2)


def _lr(h=70, w=53, seed=0):
    img = natural_image(max(h, w), seed)[:h, :w]
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def test_tile_starts_cover_and_snap():
    assert tile_starts(10, 16, 4) == [0]
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 68
    covered = np.zeros(100, bool)
    for s in starts:
        covered[s : s + 32] = True
    assert covered.all()


def test_blend_ramp_values():
    # Reference: over an overlap of 16, 0 for the outer quarter (4 px), a raised cosine over the
    # middle half (8 px, sampled at pixel centres), then 1.
    d = np.arange(16)
    ramp = np.where(d < 4, 0.0, 0.5 - 0.5 * np.cos(np.pi * np.clip((d - 4 + 0.5) / 8, 0, 1)))
    w = blend_ramp(64, 16, True, True).numpy()
    np.testing.assert_allclose(w[:16], ramp, atol=1e-6)
    np.testing.assert_allclose(w[-16:], ramp[::-1], atol=1e-6)
    assert np.all(w[16:48] == 1)
    only_end = blend_ramp(64, 16, False, True).numpy()  # an edge on the image border keeps weight 1
    assert np.all(only_end[:48] == 1) and np.allclose(only_end[-16:], ramp[::-1])


@pytest.mark.parametrize("tile, overlap, batch", [(24, 16, 1), (32, 12, 3), (20, 12, 64)])
def test_tiled_equals_untiled_for_local_model(tile, overlap, batch):
    lr = _lr()
    model = LocalSR()
    full = Engine(model, EngineOptions(tile=0)).run(lr)
    tiled = Engine(model, EngineOptions(tile=tile, tile_overlap=overlap, batch_size=batch)).run(lr)
    assert tiled.shape == full.shape == (1, 3, 140, 106)
    assert (tiled - full).abs().max().item() < 1e-4


def test_no_visible_seam_when_receptive_field_exceeds_the_margin():
    # Overlap 8 -> a 2-pixel margin, smaller than the model's 3-pixel radius: tiles are not
    # exact, and the blend must still leave no step at tile borders.
    lr = _lr(96, 96)
    full = Engine(LocalSR()).run(lr)[0]
    out = Engine(LocalSR(), EngineOptions(tile=32, tile_overlap=8)).run(lr)[0]
    assert (out - full).abs().max() > 1e-5  # really inexact, or the test would prove nothing
    jumps = (out[:, 1:, :] - out[:, :-1, :]).abs().amax(dim=(0, 2))  # between adjacent output rows
    ref_jumps = (full[:, 1:, :] - full[:, :-1, :]).abs().amax(dim=(0, 2))
    edges = sorted(
        {2 * s - 1 for s in tile_starts(96, 32, 8)[1:]}
        | {2 * (s + 32) - 1 for s in tile_starts(96, 32, 8)[:-1]}
    )
    assert (jumps[edges] - ref_jumps[edges]).abs().max() < 0.01


def test_padding_to_multiple_and_unpad():
    lr = _lr(37, 29)
    model = LocalSR(multiple=16)
    out = Engine(model, EngineOptions(tile=0)).run(lr)
    assert out.shape == (1, 3, 74, 58)
    tiled = Engine(model, EngineOptions(tile=16, tile_overlap=12)).run(lr)  # margin 3 = the model's radius
    torch.testing.assert_close(tiled, out, atol=1e-4, rtol=0)
    x, (h, w) = pad_to_multiple(torch.zeros(1, 3, 5, 3), 8)  # too small for reflect -> replicate
    assert x.shape == (1, 3, 8, 8) and (h, w) == (5, 3)


def test_latent_tiling_matches_untiled_and_noise_is_seeded():
    lr = _lr(48, 40)
    model = NoisyLatentSR()
    full = Engine(model, EngineOptions(tile=0, seed=3)).run(lr)
    tiled = Engine(model, EngineOptions(tile=16, tile_overlap=8, tile_space="latent", seed=3)).run(lr)
    assert (tiled - full).abs().max().item() < 1e-4
    other_seed = Engine(model, EngineOptions(tile=0, seed=4)).run(lr)
    assert (other_seed - full).abs().max().item() > 1e-3
    pixel_tiled = Engine(model, EngineOptions(tile=16, tile_overlap=8, tile_space="pixel", seed=3)).run(lr)
    assert (pixel_tiled - full).abs().max().item() < 1e-4


def test_engine_validates_options():
    with pytest.raises(ValueError, match="latent"):
        Engine(LocalSR(), EngineOptions(tile_space="latent"))
    with pytest.raises(ValueError, match="overlap"):
        Engine(LocalSR(), EngineOptions(tile=16, tile_overlap=16))
    with pytest.raises(ValueError, match="ensemble must be 1, 2, 4 or 8"):
        EngineOptions(ensemble=3)


def _orientations(n):
    """(do, undo) pairs of the first n self-ensemble orientations, written with rot90: the mirror
    (n >= 2), the other flip and the half turn (n >= 4), then the quarter turns (n = 8)."""
    group = [(r, m) for m in (False, True) for r in range(4)]  # r quarter turns of x, mirrored first
    wanted = {2: [(0, False), (0, True)], 4: [(0, False), (0, True), (2, False), (2, True)]}
    for r, m in wanted.get(n, group):
        yield (
            lambda x, r=r, m=m: torch.rot90(x.flip(-1) if m else x, r, (-2, -1)),
            lambda y, r=r, m=m: (lambda z: z.flip(-1) if m else z)(torch.rot90(y, -r, (-2, -1))),
        )


@pytest.mark.parametrize("n", [2, 4, 8])
def test_self_ensemble_is_the_mean_over_orientations_whole_and_tiled(n):
    lr = _lr(40, 29)
    model = LocalSR()  # random convolutions: no symmetry, so every orientation's output differs
    with torch.no_grad():
        expected = torch.stack([undo(model(do(lr))) for do, undo in _orientations(n)]).mean(0).clamp(0, 1)
    single = Engine(model).run(lr)
    whole = Engine(model, EngineOptions(ensemble=n)).run(lr)
    tiled = Engine(model, EngineOptions(ensemble=n, tile=24, tile_overlap=16, batch_size=2)).run(lr)
    assert (whole - expected).abs().max().item() < 1e-5
    assert (tiled - expected).abs().max().item() < 1e-4
    assert (single - expected).abs().max().item() > 1e-3


def test_self_ensemble_turns_the_noise_with_the_image():
    class NoiseOnly(SRGenerator):  # output = the HR-resolution noise: any misalignment would blur it
        scale, noise_channels, noise_ratio = 2, 3, 2

        def forward(self, lr, noise=None):
            return 0.5 + 0.1 * noise

    lr = _lr(24, 18)
    single = Engine(NoiseOnly(), EngineOptions(seed=3)).run(lr)
    assert single.std() > 0.05
    for tile in (0, 8):
        out = Engine(NoiseOnly(), EngineOptions(seed=3, ensemble=8, tile=tile, tile_overlap=4)).run(lr)
        assert (out - single).abs().max().item() < 1e-6


def test_output_clamped_and_float32():
    lr = _lr(16, 16) * 4 - 2
    out = Engine(LocalSR()).run(lr)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1


def test_bf16_runs_on_cpu():
    lr = _lr(16, 16)
    out = Engine(LocalSR(), EngineOptions(dtype="bf16")).run(lr)
    ref = Engine(LocalSR()).run(lr)
    assert (out - ref).abs().max() < 0.05


def test_colour_fix_takes_its_colours_from_the_bicubic_upscaled_input():
    class Grey(SRGenerator):
        scale, pad_multiple = 2, 1

        def forward(self, lr, noise=None):
            return torch.full((lr.shape[0], 3, 2 * lr.shape[2], 2 * lr.shape[3]), 0.5)

    lr = _lr(40, 36)
    out = Engine(Grey(), EngineOptions(color_fix="wavelet")).run(lr)
    ref = F.interpolate(lr, scale_factor=2, mode="bicubic").clamp(0, 1)
    torch.testing.assert_close(out, wavelet_lowpass(ref).clamp(0, 1), atol=1e-5, rtol=0)


def test_adain_matches_reference_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 32, 32, generator=g)
    ref = torch.rand(1, 3, 32, 32, generator=g) * 0.3 + 0.5
    out = adain(content, ref)
    torch.testing.assert_close(out.mean(dim=(2, 3)), ref.mean(dim=(2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3)), ref.std(dim=(2, 3)), atol=1e-3, rtol=0)


def test_wavelet_takes_low_from_reference_and_high_from_content():
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = (0.5 + 0.3 * torch.sin(x / 20)).expand(1, 3, 64, 64)
    texture = 0.1 * torch.sign(torch.sin(x * math.pi / 2 + 0.1))[None, None].expand(1, 3, 64, 64)
    content = smooth + 0.2 + texture  # colour shifted by 0.2, with texture
    out = wavelet(content, smooth)
    # Low frequencies now follow the reference, the texture stays.
    assert (wavelet_lowpass(out) - wavelet_lowpass(smooth)).abs().mean() < 0.02

    # Against an independent numpy a-trous blur (explicit shifts, replicate borders).
    def np_lowpass(img, levels=5):
        k = np.array([1.0, 2.0, 1.0]) / 4
        low = img.astype(np.float64)
        for i in range(levels):
            d = 2**i
            p = np.pad(low, ((0, 0), (d, d), (d, d)), mode="edge")
            h, w = low.shape[1:]
            low = sum(
                k[a] * k[b] * p[:, a * d : a * d + h, b * d : b * d + w] for a in range(3) for b in range(3)
            )
        return low

    c, r = content[0].numpy(), smooth[0].numpy()
    expected = c - np_lowpass(c) + np_lowpass(r)
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5)
    assert torch.equal(apply_color_fix(content, smooth, "none"), content)
    with pytest.raises(ValueError):
        apply_color_fix(content, smooth, "bogus")


def test_a_whole_multi_step_image_reports_each_network_call():
    from sr1step.generators.resshift import ResShiftGenerator
    from sr1step.methods.resshift import NETWORKS

    torch.manual_seed(0)
    gen = ResShiftGenerator(NETWORKS["tiny"])
    calls = []
    Engine(gen).run(torch.rand(1, 3, 16, 16), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)] and gen.on_step is None


@pytest.mark.parametrize("tile, overlap, batch", [(24, 16, 1), (32, 12, 3), (16, 8, 5)])
def test_streamed_bands_equal_the_whole_tiled_output(tile, overlap, batch):
    from sr1step.tiling import TileInput, tiled_apply

    x = _lr(70, 53)
    model = LocalSR()
    kw = dict(out_ratio=2, tile=tile, overlap=overlap, batch_size=batch)
    with torch.no_grad():
        whole = tiled_apply(model, [TileInput(x)], **kw)
        bands = []
        assert (
            tiled_apply(model, [TileInput(x)], sink=lambda y0, y1, r: bands.append((y0, y1, r.clone())), **kw)
            is None
        )
    # bands arrive in order, without gaps, and cover every row once
    assert [b[0] for b in bands] == [0] + [b[1] for b in bands[:-1]] and bands[-1][1] == 140
    assert len(bands) == len(tile_starts(70, tile, overlap))
    streamed = torch.cat([b[2] for b in bands], dim=2)
    assert streamed.shape == whole.shape and (streamed - whole).abs().max() < 1e-6
    # the separable normaliser is the old per-pixel weight sum (a constant image stays constant)
    ones = tiled_apply(
        lambda t: torch.ones(t.shape[0], 1, 2 * t.shape[2], 2 * t.shape[3]), [TileInput(x)], **kw
    )
    assert (ones - 1).abs().max() < 1e-6


def test_engine_stream_writes_the_run_output_in_bands():
    lr = _lr(70, 53)
    engine = Engine(LocalSR(), EngineOptions(tile=24, tile_overlap=8))
    full = engine.run(lr)
    rows = []
    engine.stream(lr, lambda y0, y1, r: rows.append((y0, y1, r)))
    assert len(rows) > 1 and rows[-1][1] == 140  # streamed, padding rows cropped
    assert torch.equal(torch.cat([r for _, _, r in rows], dim=2), full)
    whole = []  # a colour fix needs the whole image: one band
    Engine(LocalSR(), EngineOptions(tile=24, tile_overlap=8, color_fix="adain")).stream(
        lr, lambda *a: whole.append(a)
    )
    assert len(whole) == 1 and whole[0][:2] == (0, 140)


def test_cpu_auto_dtype_is_bf16_only_with_native_support(monkeypatch):
    from sr1step import devices

    cpu = torch.device("cpu")
    monkeypatch.delenv("SR1STEP_CPU_BF16")
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert devices.resolve_dtype("auto", cpu) == torch.bfloat16
    assert devices.resolve_dtype("auto", cpu, supports_half=False) == torch.float32
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx512f", "avx2"}))  # emulated: slower
    assert devices.resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setenv("SR1STEP_CPU_BF16", "1")
    assert devices.resolve_dtype("auto", cpu) == torch.bfloat16
    assert devices.resolve_dtype("fp32", cpu) == torch.float32


def test_compile_option_wraps_the_named_networks(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    model = LocalSR()
    model.compiled_modules = ("body",)
    body = model.body
    Engine(model, EngineOptions(compile=True))
    assert compiled == [body]
    Engine(LocalSR(), EngineOptions())
    assert compiled == [body]


def test_noise_field_crops_agree_with_the_whole_field_and_are_standard_normal():
    from sr1step.tiling import NoiseField

    field = NoiseField((2, 3, 150, 130), seed=5, block=32)
    whole = field.full()
    assert whole.shape == (2, 3, 150, 130) and whole.dtype == torch.float32
    for y0, y1, x0, x1 in [(0, 150, 0, 130), (7, 45, 31, 97), (63, 65, 0, 1), (140, 170, 120, 140)]:
        torch.testing.assert_close(field.crop(y0, y1, x0, x1), whole[..., y0:y1, x0:x1], rtol=0, atol=0)
    assert abs(whole.mean().item()) < 0.02 and abs(whole.std().item() - 1) < 0.02
    # blocks, batch items and channels are independent draws, not copies of one block
    a, b = whole[0, 0, :32, :32].flatten(), whole[0, 0, :32, 32:64].flatten()
    for other in (b, whole[1, 0, :32, :32].flatten(), whole[0, 1, :32, :32].flatten()):
        assert abs(torch.corrcoef(torch.stack([a, other]))[0, 1].item()) < 0.15
    # a pixel's value is its position's, whatever the field's size; another seed changes it
    torch.testing.assert_close(NoiseField((2, 3, 40, 40), seed=5, block=32).full(), whole[..., :40, :40])
    assert (NoiseField((2, 3, 40, 40), seed=6, block=32).full() - whole[..., :40, :40]).abs().mean() > 0.5
    # image 0 of a batch gets the same noise at any batch size
    torch.testing.assert_close(NoiseField((1, 3, 40, 40), seed=5, block=32).full()[0], whole[0, :, :40, :40])


def test_tiled_runs_draw_only_their_tiles_noise(monkeypatch):
    """Memory is bounded by the tile for stochastic generators too: no image-sized noise draw."""
    lr = _lr(160, 144)
    model = NoisyLatentSR()
    full = Engine(model, EngineOptions(tile=0, seed=3)).run(lr)
    draws = []
    real_randn = torch.randn

    def recording_randn(*args, **kwargs):
        out = real_randn(*args, **kwargs)
        draws.append(out.numel())
        return out

    monkeypatch.setattr(torch, "randn", recording_randn)
    engine = Engine(model, EngineOptions(tile=32, tile_overlap=8, tile_space="pixel", seed=3))
    rows = []
    engine.stream(lr, lambda y0, y1, r: rows.append(r))
    assert draws and max(draws) <= 64 * 64  # one block; the image's field is 160 x 144
    torch.testing.assert_close(torch.cat(rows, dim=2), full, atol=1e-4, rtol=0)
