"""Device and dtype selection shared by every command (no hard-coded CUDA)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; ``cuda:N``/``mps``/``cpu`` are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but Apple MPS is not available here")
    return device


def resolve_dtype(name: str, device: torch.device, supports_half: bool = True) -> torch.dtype:
    """``auto``: fp16 on CUDA/MPS when the model supports it; on a CPU bf16 where it has native
    bf16 instructions (about 2x faster, docs/performance.md gives the tolerance), else fp32."""
    if name == "auto":
        if device.type in ("cuda", "mps") and supports_half:
            return torch.float16
        if device.type == "cpu" and supports_half and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use auto, fp32, fp16 or bf16")
    if name != "fp32" and not supports_half:
        raise ValueError(f"this model does not support {name}; use fp32")
    return DTYPES[name]


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so timings measure the work and not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """An x86 CPU with AVX512-BF16 or AMX (Linux cpuinfo), unless SR1STEP_CPU_BF16=0 (or
    =1 to force it on). Without them bf16 is emulated and slower than fp32."""
    forced = os.environ.get("SR1STEP_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
