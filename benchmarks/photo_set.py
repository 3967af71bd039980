"""Rebuild sr1step's photo training set from freely licensed sources reachable here.

    python benchmarks/photo_set.py --output data/photos [--cache data/photo-cache] [--tile 512]

Sources: the Debian packages plasma-workspace-wallpapers, gnome-backgrounds, ukui-wallpapers,
lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04 (fetched with `apt-get download`, unpacked with
`dpkg-deb -x`) and the scikit-image sample photos.
For each wallpaper the largest version is taken; only the photographs in PHOTOS are kept (chosen
by eye from a contact sheet of every wallpaper: the packages also hold drawings, 3D renders and
gradients), and each is cut into non-overlapping tiles of --tile px, so a 5K photo gives many
training images at full resolution. The manifest also records two texture figures of every file.
A fixed share of whole photos (--val-share, chosen by a hash of the name, so the split never
changes; the built-in validation photos always) is kept out as validation. `manifest.json` lists
every source file, its package and licence (per wallpaper where its metadata names one), the
decision, and its tiles. Licences: see docs/training.md; nothing of it is committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

PACKAGES = {
    # package: (folders with wallpapers, licence as stated in the package's copyright file)
    "plasma-workspace-wallpapers": (
        "usr/share/wallpapers",
        "see per-wallpaper metadata.json (KDE: mostly CC-BY-SA / LGPL)",
    ),
    "gnome-backgrounds": ("usr/share/backgrounds", "CC-BY-SA-3.0 (debian/copyright of gnome-backgrounds)"),
    "ukui-wallpapers": ("usr/share/backgrounds", "GPL-3+ / CC per debian/copyright of ukui-wallpapers"),
    # Ubuntu/UBports wallpaper-contest photographs; the copyright file names a licence per file.
    "lomiri-wallpapers-16.04": (
        "usr/share/backgrounds",
        "per file in debian/copyright (CC-BY / CC-BY-SA / CC0)",
    ),
    "lomiri-wallpapers-20.04": ("usr/share/backgrounds", "per file in debian/copyright (CC-BY-SA-3.0)"),
}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp"}
# The photographs among the wallpapers (Debian bookworm versions); the rest are art.
PHOTOS = {
    "plasma-workspace-wallpapers/" + name
    for name in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
        "Kite", "MilkyWay", "OneStandsOut", "Path", "Volna", "summer_1am",
    )
} | {
    "lomiri-wallpapers-16.04/" + name
    for name in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
        "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
    )
} | {"lomiri-wallpapers-20.04/Kleiber_by_Lukas_Baubkus"}  # fmt: skip
# Left out of the lomiri packages as not photographs (or not clearly one): analogpattern (a
# texture), umang, Fossa, Infinite-Sea (digital art), Painting-Colors (a drawing).


def fetch_packages(cache: Path) -> dict[str, Path]:
    """Download and unpack the packages into ``cache`` (once); returns package -> unpacked root."""
    cache.mkdir(parents=True, exist_ok=True)
    roots = {}
    for pkg in PACKAGES:
        root = cache / "unpacked" / pkg
        if not root.is_dir():
            debs = sorted(cache.glob(f"{pkg}_*.deb"))
            if not debs:
                subprocess.run(["apt-get", "download", pkg], cwd=cache, check=True)
                debs = sorted(cache.glob(f"{pkg}_*.deb"))
            tmp = Path(tempfile.mkdtemp(dir=cache))
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True)
            root.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(root)
        roots[pkg] = root
    return roots


def package_licence(root: Path, pkg: str) -> str:
    copyright_file = root / "usr/share/doc" / pkg / "copyright"
    lines = copyright_file.read_text(errors="replace").splitlines() if copyright_file.is_file() else []
    found = sorted({ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("License:")})
    return ", ".join(found) or PACKAGES[pkg][1]


def file_licences(root: Path, pkg: str) -> dict[str, str]:
    """File name -> licence from a machine-readable (DEP-5) debian/copyright, where it has stanzas."""
    copyright_file = root / "usr/share/doc" / pkg / "copyright"
    if not copyright_file.is_file():
        return {}
    out, files = {}, []
    for line in copyright_file.read_text(errors="replace").splitlines():
        if line.startswith("Files:"):
            files = line.split(":", 1)[1].split()
        elif line.startswith("License:") and files:
            for name in files:
                out[Path(name).name] = line.split(":", 1)[1].strip()
            files = []
    return out


def candidates(root: Path, pkg: str) -> list[tuple[str, Path, str]]:
    """(name, largest file, licence) of each wallpaper in a package."""
    base = root / PACKAGES[pkg][0]
    default_licence = package_licence(root, pkg)
    per_file = file_licences(root, pkg)
    groups: dict[str, list[Path]] = {}
    for path in base.rglob("*"):
        if path.suffix.lower() in IMAGE_EXTS and path.is_file():
            # KDE: <name>/contents/images*/<WxH>.ext -> one wallpaper; others: one file each.
            rel = path.relative_to(base).parts
            name = rel[0] if len(rel) > 1 and pkg == "plasma-workspace-wallpapers" else path.stem
            groups.setdefault(f"{pkg}/{name}", []).append(path)
    out = []
    for name, files in sorted(groups.items()):
        largest = max(files, key=lambda p: _pixels(p))
        licence = per_file.get(largest.name, default_licence)
        meta = base / name.split("/", 1)[1] / "metadata.json"
        if meta.is_file():
            data = json.loads(meta.read_text())
            licence = data.get("KPlugin", {}).get("License", licence)
        out.append((name, largest, licence))
    return out


def _pixels(path: Path) -> int:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return 0 if img is None else img.shape[0] * img.shape[1]


def photo_stats(rgb: np.ndarray) -> dict:
    """Figures of a 256 px thumbnail, recorded for reference: distinct colours and the share of
    pixels with fine texture."""
    h, w = rgb.shape[:2]
    s = 256 / max(h, w)
    thumb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    colours = len(np.unique((thumb // 4).reshape(-1, 3), axis=0)) / (thumb.shape[0] * thumb.shape[1])
    gray = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
    textured = float((lap > 8).mean())
    return {"distinct_colours": round(float(colours), 3), "textured_share": round(textured, 3)}


def split_of(name: str, val_share: float) -> str:
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_share else "train"


def tiles(rgb: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    if min(h, w) < size:
        return [rgb]
    return [
        rgb[y : y + size, x : x + size]
        for y in range(0, h - size + 1, size)
        for x in range(0, w - size + 1, size)
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", type=Path, default=Path("data/photos"))
    ap.add_argument("--cache", type=Path, default=Path("data/photo-cache"))
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--val-share", type=float, default=0.15)
    args = ap.parse_args()

    sources = []
    for pkg, root in fetch_packages(args.cache).items():
        sources += [(name, path, licence, pkg) for name, path, licence in candidates(root, pkg)]
    from sr1step.data.datasets import BUILTIN_VAL, builtin_photos

    skimage_licence = "scikit-image sample data: public domain, CC0 or CC-BY (skimage/data/README.txt)"
    for path in builtin_photos("train") + builtin_photos("val"):
        sources.append((f"scikit-image/{path.stem}", path, skimage_licence, "scikit-image"))

    shutil.rmtree(args.output, ignore_errors=True)
    manifest = []
    for name, path, licence, pkg in sources:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            manifest.append({"name": name, "source": str(path), "kept": False, "reason": "unreadable"})
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        stats = photo_stats(rgb)
        keep = name in PHOTOS or pkg == "scikit-image"
        entry = {"name": name, "package": pkg, "source": str(path), "licence": licence}
        entry.update(size=list(rgb.shape[1::-1]), **stats, kept=keep)
        if keep:
            # the built-in validation photos stay validation photos (the tiny presets validate on them)
            builtin_val = pkg == "scikit-image" and path.name in BUILTIN_VAL
            split = "val" if builtin_val else split_of(name, args.val_share)
            folder = args.output / split
            folder.mkdir(parents=True, exist_ok=True)
            stem = name.replace("/", "__")
            files = []
            for i, tile in enumerate(tiles(rgb, args.tile)):
                out = folder / f"{stem}__{i:02d}.png"
                cv2.imwrite(str(out), cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
                files.append(str(out.relative_to(args.output)))
            entry.update(split=split, tiles=files)
        manifest.append(entry)
    (args.output / "manifest.json").write_text(json.dumps(manifest, indent=2))
    kept = [m for m in manifest if m.get("kept")]
    for split in ("train", "val"):
        n = sum(len(m["tiles"]) for m in kept if m["split"] == split)
        print(f"{split}: {sum(m['split'] == split for m in kept)} photos, {n} tiles")
    print(f"dropped as not photographs: {sorted(m['name'] for m in manifest if not m.get('kept'))}")


if __name__ == "__main__":
    main()
