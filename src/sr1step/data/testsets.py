"""The standard SR test sets: where they come from, how they are unpacked and checked.

The StableSR test sets (RealSR and DRealSR centre crops, 128 -> 512, and DIV2K-Val synthetic
pairs) come from one archive on the Hugging Face dataset ``Iceclear/StableSR-TestSets``. It is
downloaded once (or found in the Hugging Face cache or ``$SR1STEP_HOME/datasets/``), and each
set is unpacked to ``$SR1STEP_HOME/datasets/<name>/{LR,HR}`` and its image count verified.
RealSet65 (LR only) ships in the ResShift repository and is placed by hand.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..config import unknown_name_error
from ..hub import hub_online, sr1step_home
from ..imageio import READ_EXTS


class TestSetError(FileNotFoundError):
    """A test set cannot be found, fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class TestSet:
    name: str
    summary: str
    protocol: str  # "stablesr-128-512" (centre crops) or "full-size"
    scale: int
    count: int  # LR images expected
    lr_path: str  # inside the archive (or the placed folder)
    hr_path: str = ""  # "" for LR-only sets
    repo_id: str = ""  # Hugging Face dataset repo holding the archive
    revision: str = ""  # pinned commit; empty = the repo's main branch, recorded per run
    archive: str = ""
    source_url: str = ""
    license: str = ""


STABLESR = dict(
    repo_id="Iceclear/StableSR-TestSets",
    archive="StableSR_testsets.zip",
    license="S-Lab License 1.0 (StableSR test sets)",
    source_url="https://huggingface.co/datasets/Iceclear/StableSR-TestSets",
)

TESTSETS: dict[str, TestSet] = {
    t.name: t
    for t in (
        TestSet(
            "RealSR",
            "RealSR v3 centre crops (Canon/Nikon), as cropped by StableSR",
            "stablesr-128-512",
            4,
            100,
            "StableSR_testsets/RealSRVal_crop128/test_LR",
            "StableSR_testsets/RealSRVal_crop128/test_HR",
            **STABLESR,
        ),
        TestSet(
            "DRealSR",
            "DRealSR x4 centre crops, as cropped by StableSR",
            "stablesr-128-512",
            4,
            93,
            "StableSR_testsets/DrealSRVal_crop128/test_LR",
            "StableSR_testsets/DrealSRVal_crop128/test_HR",
            **STABLESR,
        ),
        TestSet(
            "DIV2K-Val",
            "3000 synthetic pairs from DIV2K validation crops (Real-ESRGAN degradation)",
            "stablesr-128-512",
            4,
            3000,
            "StableSR_testsets/DIV2K_V2_val/lq",
            "StableSR_testsets/DIV2K_V2_val/gt",
            **STABLESR,
        ),
        TestSet(
            "RealSet65",
            "65 real-world LR images (no ground truth), from the ResShift repository",
            "full-size",
            4,
            65,
            "RealSet65",
            source_url="https://github.com/zsyOAOA/ResShift/tree/master/testdata/RealSet65",
            license="as distributed with ResShift (S-Lab License 1.0)",
        ),
    )
}


def get_testset(name: str) -> TestSet:
    if name not in TESTSETS:
        raise unknown_name_error("test set", name, list(TESTSETS))
    return TESTSETS[name]


def datasets_dir() -> Path:
    return sr1step_home() / "datasets"


def _count_images(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in READ_EXTS) if folder.is_dir() else 0


def _archive_path(ts: TestSet) -> Path | None:
    """The archive if it is on this machine; downloaded from the Hub when reachable."""
    local = datasets_dir() / ts.archive
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(ts.repo_id, ts.archive, revision=ts.revision or None, repo_type="dataset")
    if isinstance(cached, str):
        return Path(cached)
    if hub_online():
        return Path(
            hf_hub_download(ts.repo_id, ts.archive, revision=ts.revision or None, repo_type="dataset")
        )
    return None


def _unpack(ts: TestSet, archive: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for sub, inner in (("LR", ts.lr_path), ("HR", ts.hr_path)):
            if not inner:
                continue
            prefix = inner.rstrip("/") + "/"
            members = [
                m for m in zf.namelist() if m.startswith(prefix) and Path(m).suffix.lower() in READ_EXTS
            ]
            if not members:
                raise TestSetError(f"{archive} has no images under {prefix}; is it the right archive?")
            (tmp / sub).mkdir(parents=True, exist_ok=True)
            for m in members:
                with zf.open(m) as src, open(tmp / sub / Path(m).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def verify(ts: TestSet, folder: Path) -> None:
    n_lr = _count_images(folder / "LR")
    if n_lr != ts.count:
        raise TestSetError(f"{ts.name}: expected {ts.count} LR images in {folder / 'LR'}, found {n_lr}")
    if ts.hr_path:
        n_hr = _count_images(folder / "HR")
        if n_hr != ts.count:
            raise TestSetError(f"{ts.name}: expected {ts.count} HR images in {folder / 'HR'}, found {n_hr}")


def prepare_testset(name: str) -> Path:
    """A folder with ``LR/`` (and ``HR/``) for a registered test set, unpacking it if needed."""
    ts = get_testset(name)
    target = datasets_dir() / ts.name
    if (target / "LR").is_dir():
        verify(ts, target)
        return target
    if not ts.archive:
        raise TestSetError(
            f"{ts.name} is not downloadable automatically: copy its {ts.count} images from {ts.source_url} "
            f"to {target / 'LR'}/ (licence: {ts.license})"
        )
    archive = _archive_path(ts)
    if archive is None:
        raise TestSetError(
            f"{ts.name}: the archive {ts.archive} (Hugging Face dataset {ts.repo_id}, "
            f"{ts.source_url}) is not on this "
            f"machine and the Hub cannot be reached. Download it where the Hub is reachable and put it at "
            f"{datasets_dir() / ts.archive}, or pass --dataset a folder holding LR/ and HR/."
        )
    _unpack(ts, archive, target)
    verify(ts, target)
    return target
