"""``sr1step benchmark``: the papers' evaluation protocol and speed/size, in one table.

For every (method, test set): SR images are made with the shared engine, scored per image with
the requested metrics (scores cached in ``OUTPUT/cache/``, so an interrupted run resumes and a
new metric only scores what is missing), then averaged; FID compares the SR and HR folders.
``--speed`` times every method in the same process at a fixed input size. Results go to
``results.json``, ``results.csv`` and ``results.md`` with the environment they were made in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tomllib
import torch

from ..api import load_engine
from ..data.datasets import PairedSet, load_paired_folder, to_tensor
from ..data.testsets import TESTSETS, prepare_testset
from ..devices import resolve_device, synchronize
from ..engine import Engine, EngineOptions
from ..imageio import read_image, save_png
from ..metrics import METRICS, MetricUnavailable, create_metric


@dataclass(frozen=True)
class MethodRef:
    """``--method NAME[:WEIGHTS]``."""

    method: str
    weights: str | None = None
    steps: int | None = None
    name: str | None = None  # the row label; None = NAME or NAME:<last part of WEIGHTS>

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.method if not self.weights else f"{self.method}:{Path(self.weights).name}"

    @classmethod
    def parse(cls, text: str, steps: int | None = None) -> MethodRef:
        method, _, weights = text.partition(":")
        return cls(method, weights or None, steps)


def unique_labels(refs: list[MethodRef]) -> list[MethodRef]:
    """Rows whose labels would collide (two ``.../export`` folders) get as many trailing path
    parts of their weights as tell them apart; the same method and weights twice is an error."""
    seen = set()
    for ref in refs:
        key = (ref.method, ref.weights, ref.steps)
        if key in seen:
            raise ValueError(f"--method {ref.label} is given twice")
        seen.add(key)
    out = list(refs)
    for depth in range(2, 8):
        labels = [r.label for r in out]
        clashes = {label for label in labels if labels.count(label) > 1}
        if not clashes:
            break
        out = [
            dataclasses.replace(r, name=f"{r.method}:{'/'.join(Path(r.weights).parts[-depth:])}")
            if r.label in clashes and r.weights
            else r
            for r in out
        ]
    return out


@dataclass
class BenchOptions:
    metrics: tuple[str, ...] = ("psnr", "ssim")
    crop_border: int = 0
    engine: EngineOptions = field(default_factory=lambda: EngineOptions(device="cpu"))
    limit: int | None = None
    save_images: bool = False

    @property
    def device(self) -> torch.device:
        return resolve_device(self.engine.device)


@dataclass
class Row:
    method: str
    dataset: str
    images: int
    scores: dict[str, float]
    unavailable: dict[str, str]  # metric -> reason
    problems: list[tuple[str, str]]  # (file, reason): reported, never averaged silently
    nfe: int = 0
    params_m: float = 0.0
    sr_folder: str | None = None  # the saved SR images (--save-images)
    cached_images: int = 0  # images whose scores all came from the score cache of an earlier run
    notes: list[str] = field(default_factory=list)  # said with the results, not failures


def weights_fingerprint(weights: str) -> list:
    """What identifies the weights a row ran: for local files and folders, every file's name,
    size and modification time (a replaced file changes it); for a card or Hub repo, its name."""
    path = Path(weights).expanduser() if weights else None
    if path is None or not path.exists():
        return [weights]
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _settings_hash(ref: MethodRef, opts: BenchOptions) -> str:
    e = opts.engine
    key = json.dumps(
        [asdict(ref), e.dtype, e.tile, e.tile_overlap, e.color_fix, e.seed, str(opts.device.type)]
        + ([e.ensemble] if e.ensemble > 1 else [])
        + ([weights_fingerprint(ref.weights)] if ref.weights else [])
    )
    return hashlib.sha1(key.encode()).hexdigest()[:8]


def pair_fingerprint(pair) -> str:
    """A hash of an LR/HR pair's pixels: cached scores are reused only for the same content."""
    h = hashlib.sha1()
    for t in (pair.lr, pair.hr):
        if t is not None:
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class ScoreCache:
    """Per-image scores in a JSON-lines file, each line with the image's content hash; later
    lines win. A damaged line is skipped (that image is recomputed) and reported in ``damaged``."""

    def __init__(self, path: Path):
        self.path = path
        self.scores: dict[str, dict[str, float]] = {}
        self.content: dict[str, str] = {}
        self.damaged = 0
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if line.strip():
                    try:
                        entry = json.loads(line)
                        image, content, scores = entry["image"], entry.get("content"), dict(entry["scores"])
                    except (ValueError, KeyError, TypeError):
                        self.damaged += 1
                        continue
                    if self.content.get(image) != content:  # another image under this name
                        self.scores[image] = {}
                    self.content[image] = content
                    self.scores[image].update(scores)

    def missing(self, image: str, content: str, metrics: list[str]) -> list[str]:
        have = self.scores.get(image, {}) if self.content.get(image) == content else {}
        return [m for m in metrics if m not in have]

    def add(self, image: str, content: str, scores: dict[str, float]) -> None:
        if self.content.get(image) != content:
            self.scores[image] = {}
        self.content[image] = content
        self.scores[image].update(scores)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"image": image, "content": content, "scores": scores}) + "\n")


def load_dataset(spec: str, scale: int = 4) -> tuple[str, Path, PairedSet]:
    """A registered test set name or a local folder (``HR/`` + ``LR/``, or LR images only)."""
    if spec in TESTSETS:
        folder = prepare_testset(spec)
        return spec, folder, load_paired_folder(folder, TESTSETS[spec].scale)
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        from ..config import unknown_name_error

        raise unknown_name_error("test set (or folder)", spec, list(TESTSETS))
    return folder.name, folder, load_paired_folder(folder, scale)


def _to_tensor(path: Path) -> torch.Tensor:
    return to_tensor(read_image(path, max_pixels=None).rgb)[None]


class Benchmark:
    def __init__(self, output: Path, options: BenchOptions):
        self.output = Path(output)
        self.opts = options
        self.metrics: dict[str, object] = {}
        self.unavailable: dict[str, str] = {}  # metric -> reason, reported with the results
        self._fingerprints: dict[int, tuple[object, str]] = {}  # id(pair) -> (pair, hash): once per set
        for name in options.metrics:
            try:
                self.metrics[name] = create_metric(name, options.device, options.crop_border)
            except MetricUnavailable as err:
                self.unavailable[name] = str(err)

    def _fingerprint(self, pair) -> str:
        """``pair_fingerprint`` once per pair, however many methods score it (the pair is kept, so
        its id is never reused while cached)."""
        if id(pair) not in self._fingerprints:
            self._fingerprints[id(pair)] = (pair, pair_fingerprint(pair))
        return self._fingerprints[id(pair)][1]

    def _engine(self, ref: MethodRef) -> Engine:
        return load_engine(ref.method, ref.weights, self.opts.engine, steps=ref.steps)

    def evaluate(
        self,
        ref: MethodRef,
        dataset: str,
        folder: Path,
        paired: PairedSet,
        progress: Callable[[int, int], None] | None = None,
    ) -> Row:
        key = f"{ref.label.replace('/', '_')}-{_settings_hash(ref, self.opts)}"
        cache = ScoreCache(self.output / "cache" / key / f"{dataset}.jsonl")
        pairs = paired.pairs[: self.opts.limit] if self.opts.limit else paired.pairs
        contents = {p.name: self._fingerprint(p) for p in pairs}
        # saved SR images of another set under the same name must not be read back (or into FID)
        set_hash = hashlib.sha1(json.dumps(sorted(contents.items())).encode()).hexdigest()[:8]
        sr_dir = self.output / "sr" / key / f"{dataset}-{set_hash}"
        per_image = [
            m
            for m in self.metrics
            if METRICS[m].kind != "set" and (METRICS[m].kind == "NR" or all(p.hr is not None for p in pairs))
        ]
        need_fid = "fid" in self.metrics and all(p.hr is not None for p in pairs)
        engine = None
        problems = list(paired.problems)
        dev = self.opts.device
        reused = 0
        for i, pair in enumerate(pairs):
            todo = cache.missing(pair.name, contents[pair.name], per_image)
            reused += not todo
            sr_path = sr_dir / f"{pair.name}.png"
            if todo or (need_fid and not sr_path.is_file()):
                if sr_path.is_file():
                    sr = _to_tensor(sr_path)
                else:
                    engine = engine or self._engine(ref)
                    try:
                        sr = engine.run(pair.lr[None])
                    except (RuntimeError, MemoryError) as err:
                        problems.append((pair.name, f"SR failed: {str(err).splitlines()[0][:120]}"))
                        continue
                    sr_path.parent.mkdir(parents=True, exist_ok=True)
                    save_png(sr_path, sr[0].permute(1, 2, 0).numpy())
                    sr = _to_tensor(sr_path)  # score what was written (8-bit), as the papers do
                sr = sr.to(dev)
                hr = pair.hr[None].to(dev) if pair.hr is not None else None
                scores = {}
                with torch.no_grad():
                    for m in todo:
                        value = self.metrics[m](sr, hr) if METRICS[m].kind == "FR" else self.metrics[m](sr)
                        scores[m] = float(value.mean())
                cache.add(pair.name, contents[pair.name], scores)
            if progress is not None:
                progress(i + 1, len(pairs))
        names = [p.name for p in pairs if p.name in cache.scores]
        means = {
            m: float(np.mean([cache.scores[n][m] for n in names if m in cache.scores[n]]))
            for m in per_image
            if names
        }
        if need_fid:
            hr_dir = self.output / "hr" / f"{dataset}-{set_hash}"
            if not hr_dir.is_dir():
                for p in pairs:
                    save_png(hr_dir / f"{p.name}.png", p.hr.permute(1, 2, 0).numpy())
            with torch.no_grad():
                means["fid"] = float(self.metrics["fid"](str(sr_dir), str(hr_dir)))
        unavailable = dict(self.unavailable)
        if any(p.hr is None for p in pairs):
            for m in self.opts.metrics:
                if METRICS[m].kind in ("FR", "set") and m not in unavailable:
                    unavailable[m] = "needs HR images (LR-only test set)"
        if not self.opts.save_images:
            shutil.rmtree(sr_dir, ignore_errors=True)
        row = Row(ref.label, dataset, len(names), means, unavailable, problems, cached_images=reused)
        if cache.damaged:
            row.notes.append(
                f"{cache.damaged} damaged line(s) of {cache.path} skipped; those images recomputed"
            )
        if reused:
            row.notes.append(f"scores of {reused} of {len(pairs)} images reused from {cache.path}")
        if self.opts.save_images:
            row.sr_folder = str(sr_dir)
        if engine is not None:
            row.nfe = engine.generator.steps * engine.ensemble  # network passes per image
            row.params_m = engine.generator.num_parameters() / 1e6
        return row


# --- speed and size ---------------------------------------------------------------------------------


@dataclass
class SpeedRow:
    method: str
    nfe: int
    params_m: float
    input_size: int
    batch: int
    latency_s: float  # median over runs, device-synchronised
    images_per_s: float
    peak_memory_mb: float
    memory_kind: str  # "cuda max allocated" or "cpu peak RSS"
    device: str
    dtype: str


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class _PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 2 ms)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure_speed(
    ref: MethodRef, options: EngineOptions, size: int = 128, batch: int = 1, runs: int = 10, warmup: int = 3
) -> SpeedRow:
    """Latency of whole-image runs (tiling off; device, dtype and seed from ``options``)."""
    baseline = _rss()
    engine = load_engine(ref.method, ref.weights, dataclasses.replace(options, tile=0), steps=ref.steps)
    gen, dtype, device = engine.generator, engine.dtype, engine.device
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    for _ in range(warmup):
        engine.run(x)
    times = []
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with contextlib.nullcontext() if cuda else _PeakRSS() as rss:
        for _ in range(runs):
            synchronize(device)
            t0 = time.perf_counter()
            engine.run(x)
            synchronize(device)
            times.append(time.perf_counter() - t0)
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    else:
        peak, kind = (
            (rss.peak - baseline) / 2**20,
            "cpu peak RSS",
        )  # above the RSS before loading (docs/benchmark.md)
    latency = statistics.median(times)
    return SpeedRow(
        ref.label,
        gen.steps * engine.ensemble,
        gen.num_parameters() / 1e6,
        size,
        batch,
        latency,
        batch / latency,
        peak,
        kind,
        str(device),
        str(dtype).replace("torch.", ""),
    )


# --- published numbers and outputs --------------------------------------------------------------------


def published() -> dict:
    return tomllib.loads((Path(__file__).parent / "published.toml").read_text())


def reference_rows(rows: list[Row]) -> list[dict]:
    """Published values for (method, dataset) pairs that have them, with our value and the delta."""
    from ..registry import get_method

    pub = published()
    out = []
    for row in rows:
        name = get_method(row.method.split(":")[0]).published_as
        entry = pub.get(row.dataset, {}).get(name) if name else None
        if not entry:
            continue
        for metric, value in entry.items():
            if metric == "source" or metric not in row.scores:
                continue
            out.append(
                {
                    "method": row.method,
                    "dataset": row.dataset,
                    "metric": metric,
                    "ours": row.scores[metric],
                    "published": value,
                    "delta": row.scores[metric] - value,
                    "published_as": name,
                    "source": entry["source"],
                }
            )
    return out


def dataset_provenance(name: str, folder: Path) -> dict:
    """Where a test set came from: the registered archive and the Hub snapshot it was read from."""
    info = {"folder": str(folder)}
    if name in TESTSETS:
        ts = TESTSETS[name]
        info.update(
            {
                "repo": ts.repo_id,
                "archive": ts.archive,
                "pinned_revision": ts.revision or None,
                "protocol": ts.protocol,
            }
        )
        from huggingface_hub import try_to_load_from_cache

        if ts.repo_id:
            cached = try_to_load_from_cache(
                ts.repo_id, ts.archive, revision=ts.revision or None, repo_type="dataset"
            )
            if isinstance(cached, str) and "/snapshots/" in cached:
                info["snapshot"] = cached.split("/snapshots/")[1].split("/")[0]
    return info


def environment(device: torch.device, methods: list[MethodRef], datasets: dict | None = None) -> dict:
    import importlib.metadata as md

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    from .. import __version__
    from ..hub import load_cards
    from ..registry import get_method

    cards = load_cards()
    weights = {}
    for ref in methods:
        spec = ref.weights or get_method(ref.method).default_model
        card = cards.get(spec) if spec else None
        weights[ref.label] = {
            "weights": spec,
            "repo": card.repo_id if card else None,
            "revision": card.revision if card else None,
            "source": card.source_url if card else spec,
        }
    return {
        "sr1step": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "pyiqa": version("pyiqa"),
        "diffusers": version("diffusers"),
        "weights": weights,
        "datasets": datasets or {},
        "metric_settings": {
            "psnr/ssim": "Y of YCbCr (BT.601), pyiqa",
            "lpips": "AlexNet v0.1",
            "musiq": "KonIQ",
            "maniqa": "PIPAL",
            "fid": "folder vs folder, clean",
        },
    }


def write_results(
    output: Path,
    rows: list[Row],
    speed: list[SpeedRow],
    refs: list[dict],
    env: dict,
    metrics: tuple[str, ...],
    crop_border: int,
) -> None:
    from ..files import write_atomic

    output.mkdir(parents=True, exist_ok=True)
    env = {**env, "crop_border": crop_border}
    data = {
        "environment": env,
        "results": [asdict(r) for r in rows],
        "speed": [asdict(s) for s in speed],
        "reference": refs,
    }
    write_atomic(output / "results.json", (json.dumps(data, indent=2) + "\n").encode())
    header = ["method", "dataset", "images"] + [f"{m}" for m in metrics] + ["problems"]
    lines = [",".join(header)]
    for r in rows:
        vals = [f"{r.scores[m]:.4f}" if m in r.scores else "" for m in metrics]
        lines.append(",".join([r.method, r.dataset, str(r.images)] + vals + [str(len(r.problems))]))
    write_atomic(output / "results.csv", ("\n".join(lines) + "\n").encode())
    write_atomic(output / "results.md", markdown(rows, speed, refs, metrics, env).encode())


def fmt(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric in ("psnr", "musiq", "fid") else f"{value:.4f}"


def result_tables(
    rows: list[Row], speed: list[SpeedRow], refs: list[dict], metrics: tuple[str, ...] | list[str]
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) of the score, published and speed tables, for the screen and results.md."""
    tables = []
    if rows:
        head = ["method", "dataset", "images"] + [f"{m.upper()}{METRICS[m].arrow}" for m in metrics]
        cells = [
            [r.method, r.dataset, str(r.images)]
            + [fmt(m, r.scores[m]) if m in r.scores else "n/a" for m in metrics]
            for r in rows
        ]
        tables.append(("sr1step benchmark", head, cells))
    if refs:
        head = ["method", "dataset", "metric", "ours", "published", "delta", "source"]
        cells = [
            [
                x["method"],
                x["dataset"],
                x["metric"],
                fmt(x["metric"], x["ours"]),
                fmt(x["metric"], x["published"]),
                f"{x['delta']:+.4f}",
                f"{x['published_as']}: {x['source']}",
            ]
            for x in refs
        ]
        tables.append(("Published numbers", head, cells))
    if speed:
        head = [
            "method",
            "NFE",
            "params (M)",
            "input",
            "batch",
            "latency (s)",
            "images/s",
            "peak memory (MB)",
            "device",
            "dtype",
        ]
        cells = [
            [
                s.method,
                str(s.nfe),
                f"{s.params_m:.2f}",
                f"{s.input_size}x{s.input_size}",
                str(s.batch),
                f"{s.latency_s:.4f}",
                f"{s.images_per_s:.2f}",
                f"{s.peak_memory_mb:.0f} ({s.memory_kind})",
                s.device,
                s.dtype,
            ]
            for s in speed
        ]
        tables.append(("Speed and size", head, cells))
    return tables


def result_notes(rows: list[Row]) -> list[str]:
    """Unavailable metrics (with the reason and the files to place) and images that were not scored."""
    notes = [
        f"{m}: n/a ({why})" for m, why in sorted({(m, why) for r in rows for m, why in r.unavailable.items()})
    ]
    return (
        notes
        + [f"{r.method} / {r.dataset}: {name} not scored: {why}" for r in rows for name, why in r.problems]
        + [f"{r.method} / {r.dataset}: {note}" for r in rows for note in r.notes]
    )


def markdown(
    rows: list[Row], speed: list[SpeedRow], refs: list[dict], metrics: tuple[str, ...], env: dict
) -> str:
    out = []
    for i, (title, head, cells) in enumerate(result_tables(rows, speed, refs, metrics)):
        out += [
            f"{'#' if i == 0 else '##'} {title}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        if i == 0 and rows and result_notes(rows):
            out += [""] + [f"- {n}" for n in result_notes(rows)]
        out.append("")
    out += [
        f"Environment: sr1step {env['sr1step']}, torch {env['torch']}, pyiqa {env['pyiqa']}, "
        f"device {env['device_name']}; "
        f"PSNR/SSIM on Y (BT.601 YCbCr), crop border {env.get('crop_border', 0)}.",
        "",
    ]
    return "\n".join(out)
