"""Result tables (scores, published, speed) for the screen and results.md."""

from __future__ import annotations

from ..metrics import METRICS
from .options import Row
from .speed import SpeedRow


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
