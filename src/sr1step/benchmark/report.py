"""``report.html`` of ``sr1step benchmark --save-images``: the tables and, per image, a strip of
LR (nearest), bicubic, every method and HR, with zoomed crops where the methods differ most.

Self-contained: one HTML file with inline CSS and images as PNG files beside it (relative paths,
no script, no CDN), so it opens offline and can be zipped with its folder.
"""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np
import torch.nn.functional as F

from ..files import write_atomic
from ..imageio import read_image, save_png

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.strip{display:flex;gap:6px;overflow-x:auto;margin-bottom:4px}.strip figure{margin:0;text-align:center}
.strip img{width:160px;height:160px;object-fit:cover;image-rendering:pixelated;border:1px solid #ddd}
.strip img.full{object-fit:contain;background:#f7f7f7}
figcaption{font-size:12px;width:160px;overflow-wrap:anywhere}
h3{margin:18px 0 4px}.note{color:#666;font-size:12px}
"""


def zoom_boxes(images: list[np.ndarray], size: int, count: int = 2) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` non-overlapping ``size`` boxes where the methods' outputs
    differ most (the box-filtered standard deviation across methods of the luminance)."""
    gray = np.stack([im.mean(axis=2) for im in images])
    spread = cv2.blur(gray.std(axis=0).astype(np.float32), (size, size))
    h, w = spread.shape
    boxes = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(spread)), spread.shape)
        y0, x0 = (
            int(np.clip(y - size // 2, 0, max(h - size, 0))),
            int(np.clip(x - size // 2, 0, max(w - size, 0))),
        )
        boxes.append((y0, x0))
        spread[max(0, y0 - size) : y0 + 2 * size, max(0, x0 - size) : x0 + 2 * size] = -1
    return boxes


def _table(head: list[str], cells: list[list[str]]) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in cells)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{rows}</table>"


def write_report(output: Path, rows, speed_rows, pub, metrics, loaded, max_images: int = 24) -> Path:
    """``loaded``: (name, folder, PairedSet) of each test set; rows with ``sr_folder`` give the panels."""
    from .tables import result_tables

    output = Path(output)
    assets = output / "report"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sr1step benchmark</title>"
        f"<style>{CSS}</style>"
    ]
    parts.append("</head><body>")
    shown = [m for m in metrics if any(m in r.scores for r in rows)]
    for title, head, cells in result_tables(rows, speed_rows, pub, shown):
        parts.append(f"<h2>{html.escape(title)}</h2>{_table(head, cells)}")
    for name, _, paired in loaded:
        methods = [r for r in rows if r.dataset == name and r.sr_folder]
        if not methods:
            continue
        order = ["LR (nearest)"] + ([] if any(r.method == "bicubic" for r in methods) else ["bicubic"])
        order += [r.method for r in methods] + ["HR"]
        note = " | ".join(html.escape(x) for x in order) + "; then zooms where the methods differ most"
        parts.append(f"<h2>{html.escape(name)}</h2><p class='note'>{note}</p>")
        for pair in paired.pairs[:max_images]:
            srs = []
            for r in methods:
                path = Path(r.sr_folder) / f"{pair.name}.png"
                srs.append(read_image(path, max_pixels=None).rgb if path.is_file() else None)
            if any(s is None for s in srs):
                parts.append(f"<p class='note'>{html.escape(pair.name)}: an SR image is missing</p>")
                continue
            h, w = srs[0].shape[:2]
            lr = pair.lr[None]
            nearest = F.interpolate(lr, size=(h, w), mode="nearest")[0].permute(1, 2, 0).numpy()
            bicubic = F.interpolate(lr, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
            panels = [("LR (nearest)", nearest)]
            if not any(r.method == "bicubic" for r in methods):  # else the method's own row shows it
                panels.append(("bicubic", bicubic[0].permute(1, 2, 0).numpy()))
            panels += [(r.method, sr) for r, sr in zip(methods, srs)]
            if pair.hr is not None:
                panels.append(("HR", pair.hr.permute(1, 2, 0).numpy()))
            size = max(16, min(96, h // 3, w // 3))
            boxes = zoom_boxes([*srs, bicubic[0].permute(1, 2, 0).numpy()], size)
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{name}-{pair.name}")
            parts.append(f"<h3>{html.escape(pair.name)}</h3>")
            for row_i, box in enumerate([None, *boxes]):
                parts.append("<div class='strip'>")
                for col, (label, image) in enumerate(panels):
                    if box is None:
                        crop, cls = image, "full"
                    else:
                        y, x = box
                        crop, cls = image[y : y + size, x : x + size], "zoom"
                    file = assets / f"{safe}-{row_i}-{col}.png"
                    save_png(file, np.ascontiguousarray(crop))
                    caption = label if box is None else f"{label} @ {box[1]},{box[0]}"
                    rel = file.relative_to(output).as_posix()
                    parts.append(f"<figure><img class='{cls}' src='{rel}' alt='{html.escape(label)}'>"
                                 f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip
                parts.append("</div>")
    parts.append("</body></html>")
    path = output / "report.html"
    write_atomic(path, "\n".join(parts).encode())
    return path
