"""Safe weight files: safetensors, or ``torch.load(weights_only=True)`` for official ``.pth``.

Nothing here unpickles arbitrary objects: a checkpoint that needs code to load is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "ema")
STRIP_PREFIXES = ("module.", "_orig_mod.")


class UnsafeCheckpointError(RuntimeError):
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
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        raise UnsafeCheckpointError(
            f"{path}: refusing to load, the file needs arbitrary code to unpickle ({err}). "
            "Convert it to safetensors in a trusted environment first."
        ) from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat tensor dict from a ``.safetensors`` or ``.pth/.pt/.ckpt/.pkl/.bin`` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path)
    state = load_torch_file(path)
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return clean_state_dict(state)


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Atomic safetensors write (contiguous CPU copies)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
