"""The papers' published figures (published.toml) beside ours, with the delta."""

from __future__ import annotations

from pathlib import Path

import tomllib

from .options import Row


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
