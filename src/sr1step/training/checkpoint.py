"""Training checkpoints: atomic folders, last-N pruning, exact resume.

``checkpoints/checkpoint-0000100/`` holds ``networks/<name>.safetensors``, the optimizer,
scheduler and EMA states (``torch.save`` of tensors and plain containers, read back with
``weights_only=True``) and ``trainer.json``. A checkpoint is written under a temporary name and
renamed, so a crash never leaves a half-written one that ``--resume latest`` would pick up.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from ..files import alive_pid_in
from ..weights import load_state_dict, save_safetensors

PREFIX = "checkpoint-"


def process_file(rank: int, staged: bool = False) -> str:
    """Name of a process's own state file (its pair pool): staged beside the checkpoints, then
    moved into the checkpoint by ``save_checkpoint``."""
    return f"{'.' if staged else ''}pool-rank{rank}.pt"


def stage_process_state(root: Path, rank: int, state: dict) -> None:
    """Every process writes its own state beside the checkpoints (atomically)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / process_file(rank, staged=True)
    tmp = final.with_name(final.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, final)


def staged_process_files(root: Path) -> list[Path]:
    return sorted(root.glob(".pool-rank*.pt"))


def load_process_state(checkpoint: Path, rank: int) -> dict | None:
    path = checkpoint / process_file(rank)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def trainable_state(net) -> dict:
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    return {k: v for k, v in net.state_dict().items() if k in names}


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def save_checkpoint(
    root: Path,
    step: int,
    networks: dict,
    optimizers: dict,
    schedulers: dict,
    ema,
    keep: int,
    meta: dict,
    extra_files: Sequence[Path] = (),
) -> Path:
    """``extra_files`` (state each process staged beside the checkpoints) are moved into it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "networks").mkdir(parents=True)
        for name, net in networks.items():  # trainable parameters only: frozen bases come from their weights
            save_safetensors(trainable_state(net), tmp / "networks" / f"{name}.safetensors")
        torch.save({k: o.state_dict() for k, o in optimizers.items()}, tmp / "optimizers.pt")
        torch.save({k: s.state_dict() for k, s in schedulers.items()}, tmp / "schedulers.pt")
        if ema is not None:
            torch.save(ema.state_dict(), tmp / "ema.pt")
        for f in extra_files:
            os.replace(f, tmp / f.name.lstrip("."))
        (tmp / "trainer.json").write_text(json.dumps({"step": step, **meta}, indent=2))
    except (OSError, RuntimeError) as err:  # disk full: torch.save raises RuntimeError, others OSError
        shutil.rmtree(tmp, ignore_errors=True)
        full = isinstance(err, OSError) and err.errno == errno.ENOSPC or "space" in str(err).lower()
        reason = (
            f"no space left on {root}" if full else f"cannot write to {root} ({str(err).splitlines()[0]})"
        )
        raise CheckpointError(
            f"{reason} while saving checkpoint {step}; the previous checkpoint is intact"
        ) from None
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in _checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or written; the message names the file."""


class RunLockedError(CheckpointError):
    """Another live process trains into this run folder."""


def remove_stale_temps(root: Path) -> list[Path]:
    """Remove the half-written ``.checkpoint-N.tmp-PID`` folders of processes that are gone."""
    removed = []
    for tmp in root.glob(f".{PREFIX}*.tmp-*") if root.is_dir() else []:
        if not alive_pid_in(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def find_checkpoints(root: Path, spec: str) -> list[Path]:
    """Checkpoints to try, in order: for ``latest`` every complete one under ``root``, newest
    first (a damaged newest one falls back to the one before); else the folder given."""
    if spec == "latest":
        found = _checkpoints(root)
        if not found:
            raise FileNotFoundError(f"no checkpoint to resume from in {root}")
        return found[::-1]
    path = Path(spec).expanduser()
    if not (path / "trainer.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint folder (no trainer.json)")
    return [path]


def _read(path: Path, reader):
    try:
        return reader(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except Exception as err:  # truncated zip, bad JSON, unpickling refused, ...
        text = str(err).strip()
        reason = text.splitlines()[0].split(". ")[0][:160] if text else type(err).__name__
        raise CheckpointError(f"{path} is unreadable ({reason})") from None


def _torch_load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(path: Path, networks: dict, optimizers: dict, schedulers: dict, ema) -> int:
    """Restore every state of a checkpoint; a CheckpointError names the file that failed."""
    step = _read(path / "trainer.json", lambda p: int(json.loads(p.read_text())["step"]))
    for name, net in networks.items():
        state = _read(path / "networks" / f"{name}.safetensors", load_state_dict)
        expected = set(trainable_state(net))
        if set(state) != expected:
            extra, missing = sorted(set(state) - expected)[:3], sorted(expected - set(state))[:3]
            raise ValueError(
                f"{path}: network {name!r} does not match this run (unexpected {extra}, missing {missing})"
            )
        own = trainable_state(net)
        differ = [k for k in state if state[k].shape != own[k].shape]
        if differ:
            k = differ[0]
            raise ValueError(
                f"{path}: network {name!r} has other shapes than this run's config ({len(differ)} "
                f"tensors, e.g. {k}: {tuple(state[k].shape)} saved, {tuple(own[k].shape)} now); a resume "
                "cannot change the network: drop the --set/--config change, or train into a new --output"
            )
        net.load_state_dict(state, strict=False)
    opt_states = _read(path / "optimizers.pt", _torch_load)
    for name, opt in optimizers.items():
        opt.load_state_dict(opt_states[name])
    sched_states = _read(path / "schedulers.pt", _torch_load)
    for name, sched in schedulers.items():
        sched.load_state_dict(sched_states[name])
    if ema is not None:
        ema.load_state_dict(_read(path / "ema.pt", _torch_load))
    return step


def resume_from(root: Path, spec: str, networks, optimizers, schedulers, ema, log=print) -> tuple[Path, int]:
    """Load the checkpoint ``spec`` names (see ``find_checkpoints``): (its folder, its step). For
    ``latest``, a damaged newest checkpoint is reported and the one before it is used."""
    *newer, oldest = find_checkpoints(root, spec)  # newest first
    for path in newer:
        try:
            return path, load_checkpoint(path, networks, optimizers, schedulers, ema)
        except CheckpointError as err:
            log(f"cannot resume from {path.name}: {err}; trying the checkpoint before it")
    return oldest, load_checkpoint(oldest, networks, optimizers, schedulers, ema)  # its error is final
