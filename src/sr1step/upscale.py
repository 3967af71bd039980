"""Batch upscaling of files and folders: what ``sr1step upscale`` runs.

Each input is read, run through the Engine, and written atomically next to nothing it could
overwrite: an output path that is an input is refused, existing outputs are skipped unless
``overwrite``, and one bad file is reported while the batch goes on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .api import Upscaler
from .distributed import Shard, balanced_split, broadcast, gather
from .files import claim_output, write_atomic
from .imageio import (
    DEFAULT_MAX_PIXELS,
    WRITE_EXTS,
    ImageReadError,
    file_dtype,
    list_images,
    output_extension,
    read_image,
    record_output,
    save_image,
)


@dataclass
class UpscaleOptions:
    ext: str = "auto"  # auto | png | jpg | webp | tif
    suffix: str = ""
    overwrite: bool = False
    recursive: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    quality: int = 95

    def __post_init__(self):
        if self.ext != "auto" and self.ext.lower().lstrip(".") not in WRITE_EXTS:
            raise ValueError(f"unknown output format {self.ext!r}; use auto, png, jpg, webp or tif")
        if any(c in self.suffix for c in "/\\") or self.suffix in (".", ".."):
            raise ValueError(f"--suffix {self.suffix!r} must not contain a path separator")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality must be in 1..100, got {self.quality}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError("--max-pixels must be positive")


@dataclass
class Job:
    source: Path
    target: Path  # planned output; the extension may change once the image is read (alpha)
    record: bool = True  # listed in the output folder's manifest (not for a named output file)


@dataclass
class Result:
    source: Path
    target: Path | None
    status: str  # done | skipped | failed | planned
    reason: str = ""
    seconds: float = 0.0
    size: tuple[int, int] | None = None  # output (width, height)


@dataclass
class Callbacks:
    image_started: Callable[[Job, int], None] = lambda job, tiles: None
    tiles_done: Callable[[int, int], None] = lambda done, total: None
    image_done: Callable[[Result], None] = lambda result: None


OUTPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def _planned_ext(source: Path, ext: str) -> str:
    if ext != "auto":
        return WRITE_EXTS[ext.lower().lstrip(".")]
    suffix = source.suffix.lower()
    ext = {".jpeg": ".jpg", ".tiff": ".tif", ".bmp": ".png", ".gif": ".png"}.get(suffix, suffix)
    return ext if ext in WRITE_EXTS.values() else ".png"  # an image named photo.txt: PNG


def plan_jobs(input_path: Path, output: Path, options: UpscaleOptions) -> list[Job]:
    """One job per input image; outputs mirror the input tree under the ``output`` folder. A
    single input file with an ``output`` that names an image file writes exactly that file."""
    input_path = Path(input_path)
    output = Path(output)
    if not input_path.exists():
        raise FileNotFoundError(f"input {input_path} does not exist")
    if input_path.is_file() and output.suffix.lower() in OUTPUT_SUFFIXES and not output.is_dir():
        return [Job(input_path, output, record=False)]
    output_dir = output
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output {output_dir} exists and is not a folder")
    root = input_path if input_path.is_dir() else input_path.parent
    # Files an earlier run wrote are not inputs (list_images); the input folder itself may be the
    # output (in-place with a --suffix): only a true collision with an input is refused.
    sources = list_images(input_path, options.recursive, skip_written=True)
    if options.suffix and output_dir.resolve() == root.resolve():
        sources = _without_suffixed_outputs(sources, options.suffix)
    jobs = []
    for src in sources:
        rel = src.relative_to(root)
        name = f"{rel.stem}{options.suffix}{_planned_ext(src, options.ext)}"
        jobs.append(Job(src, output_dir / rel.parent / name))
    return jobs


def _without_suffixed_outputs(sources: list[Path], suffix: str) -> list[Path]:
    """In-place runs: ``a{suffix}.ext`` beside an input ``a.*`` is an earlier output, not an input."""
    stems = {(p.parent, p.stem) for p in sources}
    return [
        p for p in sources if not (p.stem.endswith(suffix) and (p.parent, p.stem[: -len(suffix)]) in stems)
    ]


def run_jobs(
    jobs: list[Job],
    upscaler: Upscaler,
    options: UpscaleOptions,
    callbacks: Callbacks | None = None,
) -> list[Result]:
    cb = callbacks or Callbacks()
    inputs = {job.source.resolve() for job in jobs}
    results = []
    for job in jobs:
        start = time.perf_counter()
        result = _run_one(job, upscaler, options, inputs, cb)
        result.seconds = time.perf_counter() - start
        cb.image_done(result)
        results.append(result)
    return results


def _refusal(target: Path, inputs: set[Path], overwrite: bool) -> tuple[str, str] | None:
    if target.resolve() in inputs:
        return "failed", "output path is an input file; choose another output folder or a --suffix"
    if target.exists() and not overwrite:
        return "skipped", "output exists (use --overwrite)"
    return None


def _run_one(
    job: Job, upscaler: Upscaler, options: UpscaleOptions, inputs: set[Path], cb: Callbacks
) -> Result:
    refusal = _refusal(job.target, inputs, options.overwrite)
    if refusal:
        return Result(job.source, job.target, *refusal)
    try:
        image = read_image(job.source, options.max_pixels)
    except ImageReadError as err:
        return Result(job.source, None, "failed", str(err))
    target = job.target.with_suffix(
        output_extension(image, options.ext if options.ext != "auto" else job.target.suffix)
    )
    if target != job.target:
        refusal = _refusal(target, inputs, options.overwrite)
        if refusal:
            return Result(job.source, target, *refusal)
    lock = claim_output(target)
    if lock is None:
        return Result(job.source, target, "skipped", "another sr1step run is writing this output")
    try:
        if target.exists() and not options.overwrite:  # another run finished it meanwhile
            return Result(job.source, target, "skipped", "output exists (use --overwrite)")
        h, w = image.rgb.shape[:2]
        cb.image_started(job, upscaler.engine.num_tiles(h, w))
        try:
            # quantised as the file stores it, band by band (gray outputs are converted from float)
            out_dtype = np.float32 if image.grayscale else file_dtype(target.suffix.lower(), image.bit_depth)
            rgb, alpha = upscaler.upscale_rgb(
                image.rgb, image.alpha, progress=cb.tiles_done, out_dtype=out_dtype
            )
        except (RuntimeError, MemoryError) as err:
            reason = str(err).splitlines()[0][:200]
            if "out of memory" in reason.lower() or isinstance(err, MemoryError):
                reason = "out of memory; try a smaller --tile or --batch-size"
            return Result(job.source, target, "failed", reason)
        try:
            save_image(target, rgb, image, alpha=alpha, quality=options.quality)
            if job.record:
                record_output(target)
        except OSError as err:
            return Result(job.source, target, "failed", f"cannot write output: {err}")
        return Result(job.source, target, "done", "; ".join(image.notes), size=(rgb.shape[1], rgb.shape[0]))
    finally:
        lock.unlink(missing_ok=True)


@dataclass
class Summary:
    results: list[Result] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0


# --- many processes (accelerate launch): a share of the jobs each, one summary ---------------------


def pixel_count(path: Path) -> int:
    """Width x height from the header (0 when unreadable: the file fails on its rank, reported)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[0] * im.size[1]
    except Exception:  # noqa: BLE001 - any unreadable file costs nothing to plan
        return 0


def shard_jobs(jobs: list[Job], shard: Shard) -> tuple[list[Job], list[Job]]:
    """(the whole job list, this process's share). Rank 0's list is everyone's (a rank planning
    later could see outputs rank 0 already wrote), split by pixel count from the headers."""
    if not shard.distributed:
        return jobs, jobs
    split = balanced_split([pixel_count(j.source) for j in jobs], shard.world) if shard.main else None
    jobs, split = broadcast((jobs, split), shard)
    return jobs, [jobs[i] for i in split[shard.rank]]


class SharedProgress:
    """Images done by each process, as one small file per rank in a folder all ranks see (the
    output folder: shared storage on many machines), so rank 0 can show the whole job."""

    def __init__(self, root: Path, shard: Shard):
        launch = broadcast(os.getpid(), shard)  # rank 0's pid names this launch's folder
        self.folder, self.shard, self.count = root / f".sr1step-progress-{launch}", shard, 0
        if shard.distributed:
            self.folder.mkdir(parents=True, exist_ok=True)

    def advance(self) -> None:
        self.count += 1
        if self.shard.distributed:
            write_atomic(self.folder / f"rank{self.shard.rank}", str(self.count).encode())

    def total(self) -> int:
        if not self.shard.distributed:
            return self.count
        done = 0
        for f in self.folder.glob("rank*"):
            with contextlib.suppress(OSError, ValueError):
                done += int(f.read_text() or 0)
        return done

    def close(self) -> None:
        if self.shard.main:
            shutil.rmtree(self.folder, ignore_errors=True)


def gather_results(results: list[Result], jobs: list[Job], shard: Shard) -> list[Result] | None:
    """Every rank's results on rank 0, in the order of the whole job list; None on the others."""
    everything = gather(results, shard)
    if everything is None:
        return None
    order = {job.source: i for i, job in enumerate(jobs)}
    return sorted((r for part in everything for r in part), key=lambda r: order.get(r.source, len(order)))
