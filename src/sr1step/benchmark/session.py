"""One ``sr1step benchmark`` run as a library call: ``plan_benchmark`` checks the request (a wrong
one raises ValueError before anything loads), ``run_benchmark`` scores, times, writes results.json/
csv/md and the report. The CLI only prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..distributed import Shard
from ..engine import EngineOptions
from .options import BenchOptions, MethodRef, Row, unique_labels
from .speed import SpeedRow


@dataclass
class BenchmarkRequest:
    datasets: list[str]
    methods: list[str] = field(default_factory=lambda: ["bicubic"])
    metrics: str = "psnr,ssim,lpips,dists,fid,niqe,musiq,maniqa,clipiqa"
    output: Path = Path("benchmark-results")
    crop_border: int = 0
    metric_weights: Path | None = None
    save_images: bool = False
    reference: str = "none"  # none | paper
    speed: bool = False
    speed_size: int = 128
    speed_runs: int = 10
    speed_warmup: int = 3
    speed_batch: int = 1
    steps: int | None = None
    limit: int | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)


@dataclass
class BenchmarkPlan:
    request: BenchmarkRequest
    refs: list[MethodRef]
    metrics: tuple[str, ...]


@dataclass
class BenchmarkResult:
    rows: list[Row] = field(default_factory=list)
    speed_rows: list[SpeedRow] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)
    metrics: tuple[str, ...] = ()
    errors: list[str] = field(default_factory=list)  # one line per method row that could not run
    report: Path | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(r.problems for r in self.rows)


# a row that cannot load loses only itself, never the others
LOAD_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)

# progress(label, done, total): label "" ends the current task
Progress = Callable[[str, int, int], None]


def plan_benchmark(request: BenchmarkRequest) -> BenchmarkPlan:
    """Validate a request (metric and method names, options); ValueError says what is wrong."""
    from ..metrics import get_spec
    from ..registry import get_method

    names = tuple(m.strip() for m in request.metrics.split(",") if m.strip())
    for n in names:
        get_spec(n)
    refs = unique_labels([MethodRef.parse(m, request.steps) for m in request.methods])
    for ref in refs:
        get_method(ref.method)
    if request.reference not in ("none", "paper"):
        raise ValueError("--reference takes 'paper' or 'none'")
    if not request.datasets and not request.speed:
        raise ValueError("give at least one --dataset, or --speed")
    return BenchmarkPlan(request, refs, names)


def run_benchmark(
    plan: BenchmarkPlan, progress: Progress | None = None, shard: Shard | None = None
) -> BenchmarkResult:
    """Score every method on every test set (and time it with ``speed``); write the results.

    Raises PermissionError for an unwritable output and TestSetError/ConfigError for a test set
    that cannot be had, before any model runs. In a launch of many processes (``shard``) each
    scores its share of every set; rank 0 gathers the rows, times the methods alone (the speed
    rows are one process's) and writes the results; the other ranks return an empty result."""
    shard = shard or Shard()
    from ..files import check_writable
    from ..metrics import set_metric_weights_dir
    from .published import reference_rows
    from .results import dataset_provenance, environment, write_results
    from .runner import Benchmark, load_dataset
    from .speed import measure_speed

    req = plan.request
    if req.metric_weights is not None:
        set_metric_weights_dir(req.metric_weights)
    opts = BenchOptions(
        metrics=plan.metrics,
        crop_border=req.crop_border,
        engine=req.engine,
        limit=req.limit,
        save_images=req.save_images,
    )
    check_writable(req.output)  # results that cannot be written would be lost
    bench = Benchmark(req.output, opts, shard) if req.datasets else None
    loaded = [load_dataset(d) for d in req.datasets]
    result = BenchmarkResult(metrics=plan.metrics)
    report = progress or (lambda label, done, total: None)
    for ref in plan.refs:
        for name, folder, paired in loaded:
            label = f"{ref.label} on {name}"
            try:
                row = bench.evaluate(ref, name, folder, paired, lambda d, t, lb=label: report(lb, d, t))
                if row is not None:  # None: another rank makes it
                    result.rows.append(row)
            except LOAD_ERRORS as err:
                result.errors.append(f"{ref.label}: {err}")
            report("", 0, 0)
        if req.speed and shard.main:
            try:
                result.speed_rows.append(
                    measure_speed(
                        ref, req.engine, req.speed_size, req.speed_batch, req.speed_runs, req.speed_warmup
                    )
                )
            except LOAD_ERRORS as err:
                result.errors.append(f"{ref.label}: {err}")
    if not shard.main:
        return result
    result.published = reference_rows(result.rows) if req.reference == "paper" else []
    provenance = {name: dataset_provenance(name, folder) for name, folder, _ in loaded}
    env = environment(opts.device, plan.refs, provenance)
    if shard.distributed:
        env["processes"] = shard.world  # scores from every process; speed rows from rank 0 alone
    if req.engine.ensemble > 1:  # the papers' "+" rows: not comparable with one-pass published figures
        env["self_ensemble"] = req.engine.ensemble
    write_results(
        req.output, result.rows, result.speed_rows, result.published, env, plan.metrics, req.crop_border
    )
    if req.save_images and loaded:
        from .report import write_report

        result.report = write_report(
            req.output, result.rows, result.speed_rows, result.published, plan.metrics, loaded
        )
    return result
