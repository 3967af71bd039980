"""Image reading and writing as Real-ESRGAN/chaiNNer users expect.

Reading: PNG, JPEG, WebP, TIFF, BMP; 8/16-bit; gray, RGB, RGBA; EXIF orientation applied; ICC
profile kept; oversized images refused from the header, before any pixel is decoded.
Writing: atomic (temp file + rename), same nature as the input (gray stays gray, 16-bit stays
16-bit where the format allows, alpha re-attached), ICC profile carried over where possible.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .files import write_atomic

READ_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}  # GIF: the first frame
WRITE_EXTS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tif": ".tif"}
ALPHA_EXTS = {".png", ".webp", ".tif"}
SIXTEEN_BIT_EXTS = {".png", ".tif"}
_FORMAT_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".png"}

DEFAULT_MAX_PIXELS = 100_000_000
_SIGNATURES = (b"\x89PNG", b"\xff\xd8", b"RIFF", b"II*\x00", b"MM\x00*", b"BM", b"GIF8")


class ImageReadError(Exception):
    """The file cannot be used as an input image; the message is one line for the summary."""


@dataclass
class LoadedImage:
    """Decoded pixels plus what is needed to write an output of the same nature."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]; gray inputs are replicated to 3 channels
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1]
    bit_depth: int  # 8 or 16
    grayscale: bool
    icc_profile: bytes | None
    ext: str  # the natural output extension for this input (".png", ".jpg", ...)
    notes: list[str] = field(default_factory=list)  # what was changed on reading (clipped values ...)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


@contextlib.contextmanager
def _no_pillow_bomb_check():
    # We enforce our own --max-pixels limit from the header, so Pillow's must not fire first.
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _png_is_16bit(head: bytes) -> bool:
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 25 and head[24] == 16


def _png_is_gray_alpha(head: bytes) -> bool:
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 25 and head[25] == 4  # colour type 4


def apply_orientation(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """Rotate/flip an (H, W, ...) array by an EXIF orientation value (1-8) to upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation or 1)
    return np.ascontiguousarray(op(array)) if op else array


def _to_float(array: np.ndarray) -> tuple[np.ndarray, int]:
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0, 16
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0, 8
    if array.dtype == np.bool_:
        return array.astype(np.float32), 8
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageReadError("float image with NaN or Inf values")
        return np.clip(array.astype(np.float32), 0, 1), 16
    if np.issubdtype(array.dtype, np.integer):  # 32-bit int TIFF and friends
        return np.clip(array.astype(np.float32) / 65535.0, 0, 1), 16
    raise ImageReadError(f"unsupported pixel type {array.dtype}")


def _decode_cv2(data: bytes) -> np.ndarray:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError("corrupt or truncated image data")
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    return array


def _decode_pillow(im: Image.Image) -> np.ndarray:
    im.load()  # raises on truncated data
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))
    if mode == "LA":
        return np.asarray(im)
    if mode == "P":
        has_alpha = "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if mode in ("RGBA", "RGB"):
        return np.asarray(im)
    if mode == "PA":
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LAB ...


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path``; raises ImageReadError with a one-line reason for anything unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"cannot read file: {err.strerror or err}") from None
    if not data:
        raise ImageReadError("empty file")
    try:
        with _no_pillow_bomb_check(), Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            _check_pixels(width, height, max_pixels)
            fmt = im.format or ""
            icc = im.info.get("icc_profile") or None
            pages = getattr(im, "n_frames", 1) if fmt == "TIFF" else 1
            try:
                orientation = im.getexif().get(0x0112)
            except Exception:  # broken EXIF must not make a readable image fail
                orientation = None
            bits = im.tag_v2.get(258) if fmt == "TIFF" and hasattr(im, "tag_v2") else None
            tiff16 = bits is not None and any(b > 8 for b in (bits if isinstance(bits, tuple) else (bits,)))
            needs_cv2 = _png_is_16bit(data) or tiff16
            array = _decode_cv2(data) if needs_cv2 else _decode_pillow(im)
            if needs_cv2 and _png_is_gray_alpha(data) and array.ndim == 3 and array.shape[2] == 4:
                array = array[:, :, [0, 3]]  # OpenCV expands 16-bit gray + alpha to RGBA
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        if data.startswith((b"II*\x00", b"MM\x00*")):  # TIFF kinds Pillow cannot open (float RGB)
            array, fmt, icc, orientation, pages = _decode_tiff_cv2(data, max_pixels), "TIFF", None, None, 1
        elif data.startswith(_SIGNATURES):
            raise ImageReadError("corrupt or truncated image (unreadable header)") from None
        else:
            raise ImageReadError("not an image, or an unsupported format") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as err:
        if "too large" in str(err).lower():  # Pillow's cap on metadata chunks (ICC profile, text)
            raise ImageReadError(
                f"a metadata chunk (ICC profile or text) is above Pillow's size limit ({err}); "
                "strip the metadata, e.g. with an image editor's 'export without metadata'"
            ) from None
        raise ImageReadError(f"corrupt or truncated image ({err})") from None
    except MemoryError:
        raise ImageReadError("out of memory while decoding; lower --max-pixels refuses such files") from None

    array = apply_orientation(array, orientation)
    notes = [f"multi-page TIFF: only the first of its {pages} pages is upscaled"] if pages > 1 else []
    if np.issubdtype(array.dtype, np.floating) and array.size:
        outside = float(((array < 0) | (array > 1)).mean())
        if outside > 0:
            notes.append(
                f"float image with values outside [0, 1] (range {array.min():.3g}..{array.max():.3g}, "
                f"{outside:.1%} of values): clipped; tone-map HDR images first"
            )
    values, bit_depth = _to_float(array)
    grayscale = values.ndim == 2 or values.shape[2] in (1, 2)
    alpha = None
    if values.ndim == 2:
        rgb = np.repeat(values[:, :, None], 3, axis=2)
    elif values.shape[2] == 1:
        rgb = np.repeat(values, 3, axis=2)
    elif values.shape[2] == 2:
        rgb, alpha = np.repeat(values[:, :, :1], 3, axis=2), values[:, :, 1]
    elif values.shape[2] == 4:
        rgb, alpha = values[:, :, :3], values[:, :, 3]
    else:
        rgb = values[:, :, :3]
    ext = _FORMAT_EXT.get(fmt, ".png")
    return LoadedImage(np.ascontiguousarray(rgb), alpha, bit_depth, grayscale, icc, ext, notes)


def _decode_tiff_cv2(data: bytes, max_pixels: int | None) -> np.ndarray:
    array = _decode_cv2(data)
    _check_pixels(array.shape[1], array.shape[0], max_pixels)
    return array


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(
            f"image is {width}x{height} = {width * height:,} px, above --max-pixels {max_pixels:,}"
        )


def output_extension(image: LoadedImage, requested: str = "auto") -> str:
    """The output extension: ``auto`` keeps the input format; alpha forces PNG unless the
    requested format can hold it (WebP, TIFF)."""
    ext = image.ext if requested == "auto" else WRITE_EXTS.get(requested.lower().lstrip("."))
    if ext is None:
        raise ValueError(f"unknown output format {requested!r}; use auto, png, jpg, webp or tif")
    if image.alpha is not None and ext not in ALPHA_EXTS:
        ext = ".png"
    return ext


def _png_with_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk after IHDR (OpenCV cannot write ICC profiles itself)."""
    body = b"ICC Profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def file_dtype(ext: str, bit_depth: int = 8) -> type:
    """The sample type an output file of ``ext`` stores for a source of ``bit_depth`` bits."""
    return np.uint16 if bit_depth == 16 and ext in SIXTEEN_BIT_EXTS else np.uint8


def quantize(pixels: np.ndarray, dtype) -> np.ndarray:
    """Float pixels in [0, 1] -> ``dtype`` (uint8/uint16) samples, rounded as image files store them."""
    return (np.clip(pixels, 0, 1) * np.iinfo(dtype).max + 0.5).astype(dtype)


def encode_image(
    rgb: np.ndarray,
    ext: str,
    *,
    alpha: np.ndarray | None = None,
    grayscale: bool = False,
    bit_depth: int = 8,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> bytes:
    """Encode (H, W, 3) RGB (float in [0, 1], or already quantised to ``file_dtype(ext,
    bit_depth)``) plus optional float alpha to file bytes."""
    dtype = file_dtype(ext, bit_depth)
    bit_depth = 16 if dtype == np.uint16 else 8
    if ext not in ALPHA_EXTS:
        alpha = None
    if not np.issubdtype(rgb.dtype, np.floating) and rgb.dtype != dtype:
        raise ValueError(
            f"expected float32 or {np.dtype(dtype)} pixels for a {bit_depth}-bit {ext}, got {rgb.dtype}"
        )
    if grayscale:
        if rgb.dtype == dtype:
            rgb = rgb.astype(np.float32) / np.iinfo(dtype).max
        # ITU-R BT.601 luma, the same weights Pillow and OpenCV use for RGB -> L.
        rgb = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    planes = [rgb] if alpha is None else [rgb, alpha[:, :, None]]
    if alpha is None and rgb.dtype == dtype:  # already as the file stores it: no copy of the image
        quantized = np.ascontiguousarray(rgb)
    else:
        quantized = np.empty((*rgb.shape[:2], sum(p.shape[2] for p in planes)), dtype)
        c = 0
        for plane in planes:
            n = plane.shape[2]
            if plane.dtype == dtype:
                quantized[:, :, c : c + n] = plane
            else:  # in bands of rows: no float temporaries of the whole image
                for y in range(0, plane.shape[0], 256):
                    quantized[y : y + 256, :, c : c + n] = quantize(plane[y : y + 256], dtype)
            c += n
    channels = quantized.shape[2]

    if bit_depth == 16:
        if channels == 1:
            bgr = quantized[:, :, 0]
        elif channels == 2:  # OpenCV has no gray+alpha: write RGBA
            gray = quantized[:, :, :1]
            bgr = np.concatenate([gray, gray, gray, quantized[:, :, 1:]], axis=2)
        else:
            bgr = cv2.cvtColor(quantized, cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(ext, bgr)
        if not ok:
            raise OSError(f"OpenCV could not encode a 16-bit {ext} image")
        data = buf.tobytes()
        if icc_profile and ext == ".png":
            data = _png_with_icc(data, icc_profile)
        return data

    array = quantized[:, :, 0] if channels == 1 else quantized
    im = Image.fromarray(array)
    if im.mode == "LA" and ext == ".webp":
        im = im.convert("RGBA")
    fmt = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP", ".tif": "TIFF"}[ext]
    kwargs: dict = {}
    if icc_profile:
        kwargs["icc_profile"] = icc_profile
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "TIFF":
        kwargs["compression"] = "tiff_lzw"
    out = io.BytesIO()
    im.save(out, format=fmt, **kwargs)
    return out.getvalue()


def save_image(
    path: str | Path, rgb: np.ndarray, like: LoadedImage, *, alpha=None, quality: int = 95
) -> None:
    """Write an output with the nature of input ``like`` (depth, gray, ICC) to ``path``."""
    path = Path(path)
    data = encode_image(
        rgb,
        path.suffix.lower(),
        alpha=alpha,
        grayscale=like.grayscale,
        bit_depth=like.bit_depth,
        icc_profile=like.icc_profile,
        quality=quality,
    )
    write_atomic(path, data)


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    """Atomic 8-bit RGB PNG of float (H, W, 3) in [0, 1] (samples, previews)."""
    write_atomic(path, encode_image(rgb, ".png"))


# Each output folder lists the files sr1step wrote there, so that a later run whose input tree
# holds them (in-place runs, an output folder inside the input folder) does not take them as inputs.
OUTPUTS_MANIFEST = ".sr1step-outputs"


def record_output(path: Path) -> None:
    with open(path.parent / OUTPUTS_MANIFEST, "a") as f:
        f.write(path.name + "\n")


def written_outputs(folder: Path) -> set[str]:
    manifest = folder / OUTPUTS_MANIFEST
    try:
        return set(manifest.read_text(errors="replace").splitlines())
    except OSError:
        return set()


def list_images(root: Path, recursive: bool = False, skip_written: bool = False) -> list[Path]:
    """Image files under ``root`` (sorted), skipping hidden files and, with ``skip_written``, the
    files an sr1step upscale wrote (listed in their folder's manifest)."""
    if root.is_file():
        return [root]
    pattern = root.rglob("*") if recursive else root.glob("*")
    written: dict[Path, set[str]] = {}
    files = []
    for p in pattern:
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in READ_EXTS:
            continue
        if skip_written:
            if p.parent not in written:
                written[p.parent] = written_outputs(p.parent)
            if p.name in written[p.parent]:
                continue
        files.append(p)
    return sorted(files)
