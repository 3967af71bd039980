"""Speed and size of a method: NFE, parameters, latency, throughput, peak memory."""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import threading
import time
from dataclasses import dataclass

import torch

from ..api import load_engine
from ..devices import synchronize
from ..engine import EngineOptions
from .options import MethodRef


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
