"""The Python API: one Upscaler, called on PIL images, numpy arrays and tensors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import natural_image
from PIL import Image

import sr1step


@pytest.fixture(scope="module")
def up():
    return sr1step.Upscaler("bicubic", device="cpu")


def reference(rgb: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    return F.interpolate(x, scale_factor=4, mode="bicubic").clamp(0, 1)[0].permute(1, 2, 0).numpy()


def test_numpy_in_numpy_out_with_its_dtype_and_layout(up):
    rgb = natural_image(16, 1)
    out = up(rgb)
    assert out.dtype == np.float32 and out.shape == (64, 64, 3)
    np.testing.assert_allclose(out, reference(rgb), atol=1e-5)
    u8 = (rgb * 255 + 0.5).astype(np.uint8)
    out8 = up(u8)
    assert out8.dtype == np.uint8 and out8.shape == (64, 64, 3)
    assert (
        np.abs(out8.astype(int) - (reference(u8 / 255.0).astype(np.float32) * 255 + 0.5).astype(int)).max()
        <= 1
    )
    u16 = (rgb * 65535).astype(np.uint16)
    assert up(u16).dtype == np.uint16
    gray = u8[:, :, 0]
    assert up(gray).shape == (64, 64)
    rgba = np.dstack([u8, np.full((16, 16), 200, np.uint8)])
    out_rgba = up(rgba)
    assert out_rgba.shape == (64, 64, 4) and abs(int(out_rgba[..., 3].mean()) - 200) <= 1


def test_pil_in_pil_out_with_its_mode(up):
    im = Image.fromarray((natural_image(12, 2) * 255).astype(np.uint8))
    for mode in ("RGB", "RGBA", "L"):
        out = up(im.convert(mode))
        assert isinstance(out, Image.Image) and out.mode == mode and out.size == (48, 48)


def test_tensor_in_tensor_out_single_and_batch(up):
    x = torch.from_numpy(natural_image(8, 3)).permute(2, 0, 1)
    out = up(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 32, 32) and out.dtype == torch.float32
    torch.testing.assert_close(
        out, torch.from_numpy(reference(natural_image(8, 3))).permute(2, 0, 1), atol=1e-5, rtol=0
    )
    assert up(torch.stack([x, x])).shape == (2, 3, 32, 32)


def test_other_output_scales_and_bad_inputs(up):
    import cv2

    up2 = sr1step.Upscaler("bicubic", scale=2.5, device="cpu")
    rgb = natural_image(16, 1)
    assert up2(rgb).shape == (40, 40, 3)
    # a scale the model lacks: its x4 output resized, area down (x2.5), Lanczos up (x5.5)
    native = up(rgb)
    area = cv2.resize(native, (40, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(up2(rgb), area, atol=1e-6)
    up55 = sr1step.Upscaler("bicubic", scale=5.5, device="cpu")
    lanczos = np.clip(cv2.resize(native, (88, 88), interpolation=cv2.INTER_LANCZOS4), 0, 1)
    np.testing.assert_allclose(up55(rgb), lanczos, atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        sr1step.Upscaler("bicubic", scale=0)
    with pytest.raises(TypeError):
        up2("photo.jpg")
    with pytest.raises(ValueError, match="dtype"):
        up2(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueError, match="colour fix"):
        sr1step.Upscaler("bicubic", color_fix="sepia")


def test_integer_outputs_are_rounded_not_truncated(up):
    u8 = (natural_image(16, 4) * 255 + 0.5).astype(np.uint8)
    expected = np.round(reference(u8 / 255.0).astype(np.float64) * 255).astype(int)
    as_array = up(u8).astype(int)
    as_tensor = up(torch.from_numpy(u8).permute(2, 0, 1)).permute(1, 2, 0).numpy().astype(int)
    for out in (as_array, as_tensor):
        assert np.abs(out - expected).max() <= 1  # float rounding at exact halves
        assert (out == expected).mean() > 0.99  # truncation would miss about half the pixels


def test_alpha_of_a_wide_image_is_upscaled_with_it(up):
    rgba = np.zeros((12, 20, 4), np.uint8)
    rgba[..., :3] = (natural_image(20, 5)[:12] * 255).astype(np.uint8)
    rgba[:, :10, 3] = 255  # opaque left half, transparent right half
    out = up(rgba)
    assert out.shape == (48, 80, 4)
    assert out[:, :36, 3].min() >= 250 and out[:, 44:, 3].max() <= 5
