"""Atomic file writes: a reader never sees a half-written file, an interrupted run leaves none."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename, so a reader
    never sees a half-written file and an interrupted run leaves no broken output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(data: Any, path: str | Path) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.sr1step-lock")


def claim_output(target: Path) -> Path | None:
    """Claim ``target`` for this process with a create-exclusive lock file beside it (holding our
    pid), so concurrent runs into one folder never write the same output; a lock whose process is
    gone is taken over. Returns the lock, or None when a live process holds it."""
    lock = lock_path(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if alive_pid_in(lock):
                return None
            lock.unlink(missing_ok=True)  # stale: its run was killed
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alive_pid_in(path: Path) -> int:
    """The pid a lock or temp name records, if that process still runs; else 0."""
    try:
        pid = int(path.read_text() or "0") if path.is_file() else int(path.name.rsplit("-", 1)[-1])
    except (OSError, ValueError):
        return 0
    return pid if pid and _alive(pid) else 0


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a probe file in it, so an unwritable output fails before any
    model is loaded or any image computed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".sr1step-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"output folder {folder} is not writable ({err.strerror or err})") from None
