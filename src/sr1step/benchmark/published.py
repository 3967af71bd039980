"""The papers' published figures (published.toml) beside ours, with the delta."""

from __future__ import annotations

from pathlib import Path

import tomllib

from .options import MethodRef, Row


def published() -> dict:
    return tomllib.loads((Path(__file__).parent / "published.toml").read_text())


def published_row(ref: MethodRef) -> str | None:
    """The published row a benchmark row is compared with: its card's (baselines run through
    ``spandrel`` each have their own), else its method's."""
    from ..hub import load_cards
    from ..registry import get_method

    card = load_cards().get(ref.weights or get_method(ref.method).default_model or "")
    return (card.published_as if card is not None else "") or get_method(ref.method).published_as


def reference_rows(rows: list[Row]) -> list[dict]:
    """Published values for (method, dataset) pairs that have them, with our value and the delta."""
    pub = published()
    out = []
    for row in rows:
        name = row.published_as
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
