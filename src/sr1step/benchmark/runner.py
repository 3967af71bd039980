"""Scoring methods on test sets: which method and options a row is, the pairs, the runner."""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..api import load_engine
from ..data.datasets import PairedSet, load_paired_folder, to_tensor
from ..data.testsets import TESTSETS, prepare_testset
from ..distributed import Shard, balanced_split, gather
from ..engine import Engine
from ..imageio import read_image, save_png
from ..metrics import METRICS, MetricUnavailable, create_metric
from .cache import ScoreCache, pair_fingerprint, settings_hash
from .options import BenchOptions, MethodRef, Row
from .published import published_row


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
    def __init__(self, output: Path, options: BenchOptions, shard: Shard | None = None):
        self.output = Path(output)
        self.opts = options
        self.shard = shard or Shard()
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
        key = f"{ref.label.replace('/', '_')}-{settings_hash(ref, self.opts)}"
        cache = self._cache(self.output / "cache" / key, dataset)
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
        reused = 0
        mine = self._share(pairs)
        if self.shard.distributed:  # every rank loads (or fails to load) alike: no rank waits alone
            engine = self._engine(ref)
        for i, pair in enumerate(mine):
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
                cache.add(pair.name, contents[pair.name], self._score(sr, pair, todo))
            if progress is not None:
                progress(i + 1, len(mine))
        info = (
            (engine.generator.steps * engine.ensemble, engine.generator.num_parameters()) if engine else None
        )
        if self.shard.distributed:  # rank 0 makes the row from every rank's cache file
            parts = gather((problems[len(paired.problems) :], reused, info), self.shard)
            if parts is None:
                return None
            problems, reused, info = _merged(paired.problems, parts)
            cache = self._cache(self.output / "cache" / key, dataset)
        names = [p.name for p in pairs if p.name in cache.scores]
        means = {
            m: float(np.mean([cache.scores[n][m] for n in names if m in cache.scores[n]]))
            for m in per_image
            if names
        }
        if need_fid:
            means["fid"] = self._fid(sr_dir, self.output / "hr" / f"{dataset}-{set_hash}", pairs)
        unavailable = self._unavailable(pairs)
        if not self.opts.save_images:
            shutil.rmtree(sr_dir, ignore_errors=True)
        row = Row(ref.label, dataset, len(names), means, unavailable, problems, cached_images=reused)
        row.published_as = published_row(ref)
        if cache.damaged:
            row.notes.append(
                f"{cache.damaged} damaged line(s) of {cache.path} skipped; those images recomputed"
            )
        if reused:
            row.notes.append(f"scores of {reused} of {len(pairs)} images reused from {cache.path}")
        if self.opts.save_images:
            row.sr_folder = str(sr_dir)
        if info is not None:
            row.nfe, row.params_m = info[0], info[1] / 1e6  # network passes per image, parameters
        return row

    def _unavailable(self, pairs) -> dict[str, str]:
        unavailable = dict(self.unavailable)
        if any(p.hr is None for p in pairs):
            for m in self.opts.metrics:
                if METRICS[m].kind in ("FR", "set") and m not in unavailable:
                    unavailable[m] = "needs HR images (LR-only test set)"
        return unavailable

    def _cache(self, folder: Path, dataset: str) -> ScoreCache:
        """This process's cache file, read together with every other rank's (a cache written by a
        launch of N processes serves a single run, and the other way round)."""
        own = f"{dataset}.rank{self.shard.rank}.jsonl" if self.shard.distributed else f"{dataset}.jsonl"
        others = sorted(folder.glob(f"{glob.escape(dataset)}.rank*.jsonl"))
        return ScoreCache(folder / own, [folder / f"{dataset}.jsonl", *others])

    def _share(self, pairs: list) -> list:
        """This process's pairs, balanced by LR pixel count (all of them in a single process)."""
        if not self.shard.distributed:
            return pairs
        return [
            pairs[i] for i in balanced_split([p.lr.numel() for p in pairs], self.shard.world)[self.shard.rank]
        ]

    @torch.no_grad()
    def _score(self, sr: torch.Tensor, pair, metrics: list[str]) -> dict[str, float]:
        dev = self.opts.device
        sr, hr = sr.to(dev), (pair.hr[None].to(dev) if pair.hr is not None else None)
        return {
            m: float((self.metrics[m](sr, hr) if METRICS[m].kind == "FR" else self.metrics[m](sr)).mean())
            for m in metrics
        }

    @torch.no_grad()
    def _fid(self, sr_dir: Path, hr_dir: Path, pairs) -> float:
        if not hr_dir.is_dir():
            for p in pairs:
                save_png(hr_dir / f"{p.name}.png", p.hr.permute(1, 2, 0).numpy())
        return float(self.metrics["fid"](str(sr_dir), str(hr_dir)))


def _merged(set_problems: list, parts: list) -> tuple[list, int, tuple | None]:
    """Every rank's (problems, images reused, engine info), as one row's."""
    problems = list(set_problems) + [x for part in parts for x in part[0]]
    return problems, sum(part[1] for part in parts), next((part[2] for part in parts if part[2]), None)
