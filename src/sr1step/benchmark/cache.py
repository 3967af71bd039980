"""The score cache: per-image scores keyed by the method's settings and each pair's pixels."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from .options import BenchOptions, MethodRef


def weights_fingerprint(weights: str) -> list:
    """What identifies the weights a row ran: for local files and folders, every file's name,
    size and modification time (a replaced file changes it); for a card or Hub repo, its name."""
    path = Path(weights).expanduser() if weights else None
    if path is None or not path.exists():
        return [weights]
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def settings_hash(ref: MethodRef, opts: BenchOptions) -> str:
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

    def __init__(self, path: Path, read: list[Path] | None = None):
        self.path = path  # where new scores go; ``read``: the files scores come from (default: path)
        self.scores: dict[str, dict[str, float]] = {}
        self.content: dict[str, str] = {}
        self.damaged = 0
        for source in read or [path]:
            if not source.is_file():
                continue
            for line in source.read_text(errors="replace").splitlines():
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
