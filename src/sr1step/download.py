"""Direct downloads of release files (GitHub releases and raw files): atomic, resumable, checked.

A file is fetched into ``<dest>.part`` (continued with an HTTP Range request after a cut
connection), its sha256 compared with the expected one (pinned in the model card) or, when none
is known, recorded on first download in ``.sha256.json`` beside it and verified on later
downloads, and only then renamed into place. ``SR1STEP_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``)
turns downloads off; a host that does not answer fails after ``SR1STEP_DOWNLOAD_TIMEOUT``
seconds (default 10) instead of hanging.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
NO_DIRECT_HOSTS = ("drive.google.com", "docs.google.com")


class DownloadError(OSError):
    """A download failed; the message names the URL and what happened."""


def downloads_allowed() -> bool:
    off = {"1", "true", "yes", "on"}
    return not (
        os.environ.get("SR1STEP_OFFLINE", "").lower() in off
        or os.environ.get("HF_HUB_OFFLINE", "").lower() in off
    )


def is_direct(url: str, filename: str) -> bool:
    """Whether ``url`` is the file itself (a release asset or raw file), not a page or a Drive link."""
    host = urllib.parse.urlparse(url).hostname or ""
    return (
        url.startswith(("http://", "https://"))
        and url.rstrip("/").endswith("/" + filename)
        and host not in NO_DIRECT_HOSTS
    )


def _timeout() -> float:
    return float(os.environ.get("SR1STEP_DOWNLOAD_TIMEOUT", "10"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _recorded(dest: Path) -> dict:
    book = dest.parent / ".sha256.json"
    return json.loads(book.read_text()) if book.is_file() else {}


def _record(dest: Path, digest: str) -> None:
    from .files import write_json_atomic

    write_json_atomic({**_recorded(dest), dest.name: digest}, dest.parent / ".sha256.json")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (see the module docstring). Returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256 or _recorded(dest).get(dest.name)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "sr1step"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=_timeout())
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is already whole
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"{url}: cannot connect ({reason}); retry later, or place the file by hand"
        ) from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            size = f"{total / 2**20:.1f} MB" if total else "unknown size"
            _say(
                f"downloading {dest.name} ({size}) from {url}"
                + (f", resuming at {have / 2**20:.1f} MB" if resumed else "")
            )
            done = have
            bar = None
            if progress is None and sys.stderr.isatty():  # a rich bar on a terminal, the line above in logs
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                bar = Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)
                task = bar.add_task(dest.name, total=total, completed=have)
                bar.start()
                progress = lambda n, _total: bar.update(task, completed=n)  # noqa: E731
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            except (TimeoutError, OSError) as err:
                raise DownloadError(
                    f"{url}: the connection broke at {done / 2**20:.1f} MB ({err}); run again to resume"
                ) from None
            finally:
                if bar is not None:
                    bar.stop()
            if total is not None and done < total:
                raise DownloadError(
                    f"{url}: the connection closed at {done} of {total} bytes; run again to resume"
                )
    digest = sha256_of(part)
    if expected and digest != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: checksum mismatch (sha256 {digest[:16]}..., expected {expected[:16]}...); "
            "the file was discarded"
        )
    os.replace(part, dest)
    if not expected:
        _record(dest, digest)  # verified against on later downloads
        _say(f"{dest.name}: no checksum is pinned for it; recorded sha256 {digest} for later downloads")
    return dest
