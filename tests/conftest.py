"""Test set-up: everything offline, every cache in a temporary folder.

huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE once, at import, so they are set here,
before any test module imports it.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="sr1step-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)  # leave nothing behind in /tmp
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = str(_ROOT / "hf-cache")
os.environ["HF_HOME"] = str(_ROOT / "hf-home")
os.environ["TORCH_HOME"] = str(_ROOT / "torch-home")
os.environ["SR1STEP_HOME"] = str(_ROOT / "sr1step-home")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# `--dtype auto` is bf16 on CPUs with native bf16; tests compare against fp32 references, and the
# bf16 path is tested with an explicit dtype.
os.environ["SR1STEP_CPU_BF16"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def hf_cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])


@pytest.fixture(autouse=True)
def sr1step_home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh sr1step home (models, user cards) for every test."""
    home = tmp_path_factory.mktemp("sr1step-home")
    monkeypatch.setenv("SR1STEP_HOME", str(home))
    return home


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def natural_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth-plus-texture (H, W, 3) float32 image in [0, 1], deterministic."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.4 * np.sin(6 * x + 3 * y), 0.5 + 0.3 * np.cos(5 * y), 0.4 + 0.4 * x * y], axis=2)
    return np.clip(base + 0.05 * r.standard_normal((size, size, 3)), 0, 1).astype(np.float32)
