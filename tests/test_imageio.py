import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import natural_image
from PIL import Image

from sr1step.files import write_atomic
from sr1step.imageio import (
    ImageReadError,
    apply_orientation,
    encode_image,
    output_extension,
    read_image,
    save_image,
)


def _u8(img):
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_rgb_png_roundtrip(tmp_path):
    img = natural_image(32)
    path = tmp_path / "a.png"
    Image.fromarray(_u8(img)).save(path)
    loaded = read_image(path)
    assert loaded.rgb.shape == (32, 32, 3) and loaded.bit_depth == 8 and not loaded.grayscale
    assert loaded.alpha is None and loaded.ext == ".png"
    np.testing.assert_allclose(loaded.rgb, _u8(img) / 255.0, atol=1e-6)


def test_sixteen_bit_rgb_png_kept(tmp_path):
    img = natural_image(16)
    arr16 = (img * 65535).astype(np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), cv2.cvtColor(arr16, cv2.COLOR_RGB2BGR))
    loaded = read_image(path)
    assert loaded.bit_depth == 16
    np.testing.assert_allclose(loaded.rgb, arr16 / 65535.0, atol=1e-6)
    out = tmp_path / "out.png"
    save_image(out, loaded.rgb, loaded)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (16, 16, 3)
    np.testing.assert_array_equal(cv2.cvtColor(back, cv2.COLOR_BGR2RGB), arr16)


def test_sixteen_bit_gray_png_stays_gray(tmp_path):
    gray = (np.linspace(0, 1, 20 * 10).reshape(10, 20) * 65535).astype(np.uint16)
    path = tmp_path / "g16.png"
    cv2.imwrite(str(path), gray)
    loaded = read_image(path)
    assert loaded.grayscale and loaded.bit_depth == 16 and loaded.rgb.shape == (10, 20, 3)
    out = tmp_path / "g16_out.png"
    save_image(out, loaded.rgb, loaded)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.ndim == 2 and back.dtype == np.uint16
    np.testing.assert_allclose(back.astype(int), gray.astype(int), atol=1)


def test_rgba_alpha_separate_and_png_forced(tmp_path):
    img = _u8(natural_image(8))
    alpha = np.tile(np.linspace(0, 255, 8).astype(np.uint8), (8, 1))
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([img, alpha])).save(path)
    loaded = read_image(path)
    assert loaded.alpha is not None
    np.testing.assert_allclose(loaded.alpha, alpha / 255.0, atol=1e-6)
    assert output_extension(loaded, "jpg") == ".png"  # JPEG cannot hold alpha
    assert output_extension(loaded, "webp") == ".webp"
    assert output_extension(loaded, "tif") == ".tif"


def test_gray_jpeg_stays_gray(tmp_path):
    gray = _u8(natural_image(24)[:, :, 0])
    path = tmp_path / "g.jpg"
    Image.fromarray(gray).save(path, quality=95)
    loaded = read_image(path)
    assert loaded.grayscale and loaded.ext == ".jpg"
    out = tmp_path / "g_out.jpg"
    save_image(out, loaded.rgb, loaded)
    assert Image.open(out).mode == "L"


def test_exif_orientation_applied(tmp_path):
    # A 2-row x 3-col image, stored with orientation 6 (rotate 90 CW to display).
    arr = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 0], [255, 255, 255], [128, 128, 128]]], np.uint8
    )
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=100, subsampling=0)
    loaded = read_image(path)
    assert loaded.rgb.shape[:2] == (3, 2)  # upright: 3 rows, 2 columns
    expected = apply_orientation(arr, 6) / 255.0
    np.testing.assert_allclose(loaded.rgb, expected, atol=0.08)
    # And Pillow's own transpose agrees.
    from PIL import ImageOps

    ref = np.asarray(ImageOps.exif_transpose(Image.open(path))) / 255.0
    np.testing.assert_allclose(loaded.rgb, ref, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=exif)
    from PIL import ImageOps

    ref = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    np.testing.assert_array_equal(apply_orientation(arr, orientation), ref)


def test_icc_profile_carried(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "icc.png"
    Image.fromarray(_u8(natural_image(8))).save(path, icc_profile=icc)
    loaded = read_image(path)
    assert loaded.icc_profile == icc
    for ext in ("png", "jpg", "webp", "tif"):
        out = tmp_path / f"out.{ext}"
        save_image(out, loaded.rgb, loaded)
        assert Image.open(out).info.get("icc_profile") == icc, ext


def test_icc_profile_in_sixteen_bit_png():
    icc = b"fake-icc-profile-bytes" * 10
    data = encode_image(natural_image(4), ".png", bit_depth=16, icc_profile=icc)
    im = Image.open(io.BytesIO(data))
    assert im.info.get("icc_profile") == icc
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_tiff_webp_bmp_read(tmp_path):
    img = _u8(natural_image(12))
    for name in ("a.tif", "a.webp", "a.bmp"):
        Image.fromarray(img).save(tmp_path / name, **({"lossless": True} if name.endswith("webp") else {}))
        loaded = read_image(tmp_path / name)
        np.testing.assert_allclose(loaded.rgb, img / 255.0, atol=1e-6)
    assert read_image(tmp_path / "a.bmp").ext == ".png"  # BMP outputs become PNG


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "corrupt"),
    ],
)
def test_bad_files_raise_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert reason in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_raise(tmp_path, fmt):
    buf = io.BytesIO()
    Image.fromarray(_u8(natural_image(64))).save(buf, format=fmt)
    path = tmp_path / f"trunc.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        read_image(path)


def test_decompression_bomb_refused_from_header(tmp_path):
    # A valid PNG header claiming 30000 x 30000 with almost no data: refused before decoding.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    data = header + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageReadError, match="above --max-pixels"):
        read_image(path, max_pixels=10_000_000)


def test_write_atomic_leaves_no_temp_on_error(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    write_atomic(target, b"old")
    import sr1step.files as files

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


@pytest.mark.parametrize("ext, depth", [(".png", 8), (".png", 16), (".jpg", 16), (".webp", 8)])
def test_quantised_pixels_encode_like_float_ones(ext, depth):
    from sr1step.imageio import encode_image, file_dtype

    rgb = np.random.default_rng(0).random((300, 40, 3), dtype=np.float32)
    alpha = np.linspace(0, 1, 300 * 40, dtype=np.float32).reshape(300, 40)
    top = 65535 if file_dtype(ext, depth) == np.uint16 else 255
    assert (depth == 16 and ext in (".png",)) == (top == 65535)
    ints = (rgb * top + 0.5).astype(file_dtype(ext, depth))
    for a in (None, alpha):
        assert encode_image(ints, ext, alpha=a, bit_depth=depth) == encode_image(
            rgb, ext, alpha=a, bit_depth=depth
        )
    with pytest.raises(ValueError, match="expected float"):
        encode_image(ints.astype(np.int32), ext, bit_depth=depth)


@pytest.mark.parametrize("depth", [8, 16])
def test_quantised_pixels_are_encoded_without_a_copy_of_the_image(depth):
    """An upscaled output is the largest array of a run: encoding it must not hold it twice."""
    import tracemalloc

    from sr1step.imageio import file_dtype

    dtype = file_dtype(".png", depth)
    y, x = np.mgrid[0:1024, 0:768]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(dtype)  # compresses well
    tracemalloc.start()
    try:
        data = encode_image(rgb, ".png", bit_depth=depth)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded[..., ::-1], rgb)
    assert peak < (0.5 if depth == 8 else 1.5) * rgb.nbytes  # 16 bit: OpenCV needs one BGR copy


def test_gray_outputs_use_bt601_luma():
    rgb = np.zeros((4, 4, 3), np.float32)
    rgb[:, :, 0], rgb[:2, :, 1] = 1.0, 1.0  # red, and yellow in the top half
    data = encode_image(rgb, ".png", grayscale=True)
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (4, 4) and gray[3, 0] == round(0.299 * 255) and gray[0, 0] == round(0.886 * 255)


@pytest.mark.parametrize("quality", [60, 95])
def test_jpeg_quality_is_the_one_asked_for(quality):
    from sr1step.imageio import encode_image

    rgb = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    ours = Image.open(io.BytesIO(encode_image(rgb, ".jpg", quality=quality)))
    buf = io.BytesIO()
    Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    assert ours.quantization == Image.open(buf).quantization  # the tables a quality sets


def test_max_pixels_admits_an_image_of_exactly_that_many(tmp_path):
    from sr1step.imageio import ImageReadError, read_image

    Image.fromarray(np.zeros((6, 7, 3), np.uint8)).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png", max_pixels=42).size == (7, 6)
    with pytest.raises(ImageReadError, match="above --max-pixels"):
        read_image(tmp_path / "a.png", max_pixels=41)


def test_32_bit_integer_pixels_are_clipped_to_16_bits_not_wrapped(tmp_path):
    """Pillow decodes a FITS file with BITPIX 32 as mode I: values outside 0..65535 clip."""
    from sr1step.imageio import read_image

    def card(key, value):
        return f"{key:<8}= {value!s:>20}".ljust(80).encode()

    header = b"".join(
        card(k, v) for k, v in [("SIMPLE", "T"), ("BITPIX", 32), ("NAXIS", 2), ("NAXIS1", 2), ("NAXIS2", 2)]
    )
    data = np.array([[-5, 1000], [70000, 300]], ">i4").tobytes()
    (tmp_path / "a.fits").write_bytes((header + b"END".ljust(80)).ljust(2880) + data.ljust(2880, b"\0"))
    gray = read_image(tmp_path / "a.fits").rgb[..., 0]
    values = sorted(gray.ravel().tolist())
    assert values[0] == 0.0 and values[-1] == 1.0  # -5 and 70000
    assert values[1:3] == pytest.approx([300 / 65535, 1000 / 65535])
