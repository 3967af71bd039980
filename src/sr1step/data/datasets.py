"""Datasets: HR crops for training, paired LR/HR folders for validation and benchmarks.

Training samples are a pure function of (seed, sample index): the file order of each epoch is a
seeded permutation and every crop/flip is drawn from a generator seeded by the index. A resumed
run therefore reads exactly the samples it would have read, with no data-loader state to save.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..imageio import READ_EXTS, ImageReadError, list_images, read_image

# Natural photos shipped in the scikit-image wheel (CC0 / public domain), for tests and demos.
BUILTIN_TRAIN = (
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
)
BUILTIN_VAL = ("astronaut.png", "camera.png")
MIN_SIDE = 32


def builtin_photos(split: str) -> list[Path]:
    try:
        import skimage
    except ImportError:  # pragma: no cover - scikit-image ships with pyiqa
        raise FileNotFoundError(
            "the built-in photo set needs scikit-image (pip install scikit-image)"
        ) from None
    root = Path(skimage.__file__).parent / "data"
    names = BUILTIN_TRAIN if split == "train" else BUILTIN_VAL
    return [root / n for n in names if (root / n).is_file()]


def resolve_image_list(source: str, split: str = "train") -> list[Path]:
    """``builtin``, a folder (searched recursively) or a text file with one path per line."""
    if source == "builtin":
        return builtin_photos(split)
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".txt":
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        return [Path(ln) if Path(ln).is_absolute() else path.parent / ln for ln in lines]
    if path.is_dir():
        return list_images(path, recursive=True)
    raise FileNotFoundError(f"training data {source!r} is not a folder, a .txt file list or 'builtin'")


@dataclass
class ScanReport:
    usable: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_images(files: list[Path], min_side: int = MIN_SIDE) -> ScanReport:
    """Header check of every file (size, readability) without decoding pixels."""
    report = ScanReport()
    for f in files:
        if f.suffix.lower() not in READ_EXTS:
            report.skipped.append((f, "not an image file"))
            continue
        try:
            with Image.open(f) as im:
                w, h = im.size
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported, not fatal
            report.skipped.append((f, f"unreadable ({type(err).__name__})"))
            continue
        if min(w, h) < min_side:
            report.skipped.append((f, f"too small ({w}x{h} < {min_side} px)"))
            continue
        report.usable.append(f)
    return report


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()


def bicubic_round_trip_psnr(rgb: np.ndarray, scale: int) -> float:
    """PSNR (dB) of an image against its own x``scale`` area-down / bicubic-up round trip: how
    much of it bicubic upscaling already gets right (flat content scores high)."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    mse = float(np.mean((back.astype(np.float64) - rgb) ** 2))
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


class HRCrops(Dataset):
    """Random ``crop`` x ``crop`` HR patches (reflect-padded when an image is smaller), with flips.

    ``rotate`` (BasicSR's ``use_rot``, off in ResShift's configs) adds a vertical flip and a
    transpose, each with probability 0.5: all eight orientations instead of two.

    ``rescale`` (ResShift's ``rescale_gt``, on in its configs): a random square of side
    min(h, w) is area-resized to ``crop`` first, so a patch shows the whole picture's scale rather
    than a native-resolution detail. ``flat_psnr`` (dB, 0 = off): a patch that a bicubic round
    trip at ``scale`` already reproduces above this PSNR (sky, walls, out-of-focus background)
    is re-drawn, from the next images, up to ``FLAT_REDRAWS`` times, keeping the most detailed
    one: such patches teach an SR model nothing and can be half of a photo set. ``dataset[i]`` is
    deterministic in (seed, i) for any integer i >= 0 (an infinite stream)."""

    FLAT_REDRAWS = 4

    def __init__(
        self,
        files: list[Path],
        crop: int,
        seed: int = 0,
        flip: bool = True,
        rotate: bool = False,
        cache: bool = False,
        rescale: bool = False,
        flat_psnr: float = 0.0,
        scale: int = 4,
        log: Callable[[str], None] | None = None,
    ):
        self.log = log or (lambda message: warnings.warn(message, stacklevel=3))
        report = scan_images(files)
        for path, reason in report.skipped:
            self.log(f"skipping training image {path}: {reason}")
        if not report.usable:
            if not files:
                raise FileNotFoundError(
                    "no training images: the data source holds no PNG, JPEG, WebP, TIFF or BMP file"
                )
            reasons = "; ".join(f"{p.name}: {r}" for p, r in report.skipped[:3])
            raise FileNotFoundError(
                f"no usable training images: all {len(files)} files were skipped ({reasons})"
            )
        self.files = report.usable
        self.skipped = report.skipped
        self.crop = crop
        self.rescale = rescale
        self.flat_psnr = flat_psnr
        self.scale = scale
        self.seed = seed
        self.flip = flip
        self.rotate = rotate
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._bad: set[int] = set()
        self._order: tuple[int, np.ndarray] = (
            -1,
            np.arange(0),
        )  # (epoch, file order): one permutation per epoch

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, k: int) -> np.ndarray | None:
        if self._cache is not None and k in self._cache:
            return self._cache[k]
        try:
            rgb = read_image(self.files[k], max_pixels=None).rgb
        except ImageReadError as err:
            if k not in self._bad:
                self.log(f"skipping training image {self.files[k]}: {err}")
                self._bad.add(k)
            return None
        if self._cache is not None:
            self._cache[k] = rgb
        return rgb

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self.files)
        epoch, pos = divmod(int(index), n)
        if self._order[0] != epoch:
            self._order = (epoch, _rng(self.seed, epoch).permutation(n))
        order = self._order[1]
        rng = _rng(self.seed, index, 1)
        patch = self._patch(order, pos, rng)
        if self.flat_psnr > 0:
            score = bicubic_round_trip_psnr(patch, self.scale)
            for draw in range(1, self.FLAT_REDRAWS + 1):
                if score <= self.flat_psnr:
                    break
                other = self._patch(order, pos + draw, rng)
                other_score = bicubic_round_trip_psnr(other, self.scale)
                if other_score < score:
                    patch, score = other, other_score
        if self.flip and rng.random() < 0.5:
            patch = patch[:, ::-1]
        if self.rotate:  # drawn after the flip, so rotate=False keeps the earlier stream
            if rng.random() < 0.5:
                patch = patch[::-1]
            if rng.random() < 0.5:
                patch = patch.transpose(1, 0, 2)
        return to_tensor(patch)

    def _patch(self, order: np.ndarray, pos: int, rng: np.random.Generator) -> np.ndarray:
        """A crop (area-resized to ``crop`` with ``rescale``) of the first image that decodes,
        from ``order[pos]`` on."""
        n = len(self.files)
        for attempt in range(n):
            rgb = self._load(int(order[(pos + attempt) % n]))
            if rgb is not None:
                break
        else:
            raise RuntimeError("every training image failed to decode")
        h, w = rgb.shape[:2]
        side = max(min(h, w), self.crop) if self.rescale else self.crop
        if h < side or w < side:
            ph, pw = max(0, side - h), max(0, side - w)
            rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")
            h, w = rgb.shape[:2]
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        patch = rgb[y : y + side, x : x + side]
        if side != self.crop:
            patch = cv2.resize(patch, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        return patch


class StreamSampler(Sampler[int]):
    """Infinite sample indices ``start + rank, start + rank + world, ...``."""

    def __init__(self, start: int = 0, rank: int = 0, world: int = 1):
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self):
        i = self.start + self.rank
        while True:
            yield i
            i += self.world

    def __len__(self) -> int:  # pragma: no cover - infinite
        return 2**62


@dataclass
class Pair:
    name: str
    lr: torch.Tensor  # (3, h, w) in [0, 1]
    hr: torch.Tensor | None  # (3, s*h, s*w) in [0, 1], None for LR-only sets


@dataclass
class PairedSet:
    pairs: list[Pair]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (name, reason) never silently dropped


_PAIR_SUFFIX = re.compile(r"[_-]?(hr|gt|lr\d*|lq|x\d+)$", re.IGNORECASE)


def pair_key(stem: str) -> str:
    """File stem without the usual HR/LR markers (``Canon_001_LR4`` and ``Canon_001_HR`` ->
    ``canon_001``; DRealSR's ``_x4``/``_x1``)."""
    return _PAIR_SUFFIX.sub("", stem).lower()


def load_paired_folder(root: str | Path, scale: int, lr_dir: str = "LR", hr_dir: str = "HR") -> PairedSet:
    """``root/HR`` + ``root/LR`` matched by ``pair_key``; or an LR-only folder. Mismatched and
    unreadable files are reported in ``problems``, never silently dropped."""
    root = Path(root)
    hr_root, lr_root = root / hr_dir, root / lr_dir
    if not lr_root.is_dir():
        lr_root, hr_root = root, None
    out = PairedSet([])
    hr_files = (
        {pair_key(p.stem): p for p in list_images(hr_root, recursive=True)}
        if hr_root and hr_root.is_dir()
        else {}
    )
    used = set()
    for lr_path in list_images(lr_root, recursive=True):
        key = pair_key(lr_path.stem)
        try:
            lr = to_tensor(read_image(lr_path, max_pixels=None).rgb)
        except ImageReadError as err:
            out.problems.append((lr_path.name, f"LR unreadable: {err}"))
            continue
        hr = None
        if hr_files:
            if key not in hr_files:
                out.problems.append((lr_path.name, "no HR image with a matching name"))
                continue
            used.add(key)
            try:
                hr = to_tensor(read_image(hr_files[key], max_pixels=None).rgb)
            except ImageReadError as err:
                out.problems.append((lr_path.name, f"HR unreadable: {err}"))
                continue
            expected = (lr.shape[-2] * scale, lr.shape[-1] * scale)
            if tuple(hr.shape[-2:]) != expected:
                out.problems.append(
                    (lr_path.name, f"HR is {tuple(hr.shape[-2:])}, expected {expected} ({scale}x the LR)")
                )
                continue
        out.pairs.append(Pair(lr_path.stem, lr, hr))
    for key in sorted(set(hr_files) - used):
        out.problems.append((hr_files[key].name, "HR image without an LR image"))
    return out


def synthesize_pairs(
    files: list[Path], degrade, scale: int, size: int, count: int, seed: int = 0
) -> PairedSet:
    """Validation pairs from HR photos: ``count`` crops of ``size`` px spread over the images
    (deterministic), degraded with ``degrade(hr_batch, generator)``."""
    images = [read_image(f, max_pixels=None).rgb for f in scan_images(files).usable]
    if not images:
        raise FileNotFoundError("no usable validation images")
    pairs = []
    for i in range(count):
        rgb = images[i % len(images)]
        h, w = rgb.shape[:2]
        rng = _rng(seed, i, 7)
        y = int(rng.integers(0, max(1, h - size + 1)))
        x = int(rng.integers(0, max(1, w - size + 1)))
        hr = to_tensor(rgb[y : y + size, x : x + size])
        hr = hr[:, : hr.shape[1] // scale * scale, : hr.shape[2] // scale * scale]
        lr = degrade(hr[None], torch.Generator().manual_seed(seed * 1000 + i))[0]
        pairs.append(Pair(f"val{i:03d}", lr, hr))
    return PairedSet(pairs)
