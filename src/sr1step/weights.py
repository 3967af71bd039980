"""Safe weight files: safetensors, or ``torch.load(weights_only=True)`` for official ``.pth``.

Nothing here unpickles arbitrary objects: a checkpoint that needs code to load is refused.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "ema")
STRIP_PREFIXES = ("module.", "_orig_mod.")


class WeightFileError(RuntimeError):
    """A weight file cannot be used: not a weight file, corrupt, or another network's."""


class UnsafeCheckpointError(WeightFileError):
    """The checkpoint holds pickled objects other than tensors and plain containers."""


def clean_state_dict(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Unwrap ``state_dict``-style wrappers and strip DDP/compile prefixes (``module.``, ``_orig_mod.``)."""
    for key in WRAPPER_KEYS:
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    out = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    changed = True
        out[name] = value
    return out


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers."""
    try:
        with warnings.catch_warnings():  # torch warns about legacy pickles before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, zip and stream errors
        text = str(err)
        if "Unsupported global" in text or "GLOBAL " in text:  # a pickled object that names code
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found[1]})" if found else ""
            raise UnsafeCheckpointError(
                f"{path}: refusing to load: the file holds pickled Python objects{what}, which could run "
                "code. sr1step loads tensors only; convert it to safetensors where you trust its source."
            ) from None
        # torch's own text suggests weights_only=False: never pass that on; name the symptom only.
        symptoms = r"(Unsupported operand \d+|invalid load key[^.\n]*|PytorchStreamReader[^.\n]*)"
        found = re.search(symptoms, text)
        reason = found[1] if found else type(err).__name__
        raise WeightFileError(f"{path}: not a weight file, or a corrupt one ({reason})") from None


def describe_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], n: int = 3) -> str:
    """A short account of how a state dict differs from the one a network expects: counts and the
    first few missing, unexpected and wrongly shaped tensors (never the whole key list)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    parts = [f"the file has {len(found)} tensors, the network {len(expected)}"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - n} more)" if len(items) > n else ""
            parts.append(f"{label}: {', '.join(items[:n])}{more}")
    return "; ".join(parts)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat tensor dict from a ``.safetensors`` or ``.pth/.pt/.ckpt/.pkl/.bin`` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            state = load_file(path)
        except Exception as err:  # SafetensorError: header or data unreadable
            raise WeightFileError(f"{path}: not a safetensors file, or a corrupt one ({err})") from None
    else:
        raw = load_torch_file(path)
        if not isinstance(raw, dict):
            raise WeightFileError(f"{path}: expected a dict of tensors, got {type(raw).__name__}")
        state = clean_state_dict(raw)
    check_finite(state, path)
    return state


def check_finite(state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Refuse weights with NaN or Inf values (they would give black images), naming the tensor."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightFileError(
                f"{source}: tensor {name!r} has {bad} NaN or Inf values; the file is damaged"
            )


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Atomic safetensors write (contiguous CPU copies)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
