"""Release downloads against a local HTTP server on 127.0.0.1 started by the test."""

import hashlib
import http.server
import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes
runner = CliRunner()


class Handler(http.server.BaseHTTPRequestHandler):
    cut_first = False  # the first full request sends half the body, then drops the connection
    ignore_range = False  # a server without range support answers 200 with the whole file
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        if not self.path.endswith("/model.pth"):
            self.send_error(404, "Not Found")
            return
        start = 0
        if self.headers.get("Range") and not type(self).ignore_range:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_first and not self.headers.get("Range"):
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    Handler.requests = []
    Handler.cut_first = False
    Handler.ignore_range = False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_is_atomic_and_records_its_checksum(server, tmp_path):
    dest = download(f"{server}/files/model.pth", tmp_path / "model.pth")
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "model.pth.part").exists()
    assert hashlib.sha256(PAYLOAD).hexdigest() in (tmp_path / ".sha256.json").read_text()


def test_a_cut_connection_resumes_with_a_range_request(server, tmp_path):
    Handler.cut_first = True
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{server}/files/model.pth", tmp_path / "model.pth")
    part = tmp_path / "model.pth.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not (tmp_path / "model.pth").exists()
    download(f"{server}/files/model.pth", tmp_path / "model.pth")
    assert (tmp_path / "model.pth").read_bytes() == PAYLOAD
    assert Handler.requests[-1][1] == f"bytes={len(PAYLOAD) // 2}-"


def test_a_server_that_ignores_the_range_request_restarts_the_file(server, tmp_path):
    (tmp_path / "model.pth.part").write_bytes(b"stale bytes of an earlier try")
    Handler.ignore_range = True
    seen = []
    download(
        f"{server}/files/model.pth", tmp_path / "model.pth", progress=lambda n, total: seen.append((n, total))
    )
    assert Handler.requests[-1][1] == "bytes=29-"  # asked to resume; answered with the whole file
    assert (tmp_path / "model.pth").read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))  # counted from zero, not from the stale part


def test_a_wrong_checksum_discards_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{server}/files/model.pth", tmp_path / "model.pth", sha256="0" * 64)
    assert not list(tmp_path.iterdir())


def test_a_recorded_checksum_is_verified_on_the_next_download(server, tmp_path):
    (tmp_path / ".sha256.json").write_text('{"model.pth": "' + "1" * 64 + '"}')
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{server}/files/model.pth", tmp_path / "model.pth")


def test_404_is_one_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server}/files/other.pth", tmp_path / "other.pth")


def test_a_server_that_never_answers_times_out(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never replies
    monkeypatch.setenv("SR1STEP_DOWNLOAD_TIMEOUT", "1")
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="cannot connect"):
            download(f"http://127.0.0.1:{silent.getsockname()[1]}/model.pth", tmp_path / "model.pth")
    finally:
        silent.close()
    assert time.monotonic() - start < 5


def _card(home, url, sha=None):
    cards = home / "cards"
    cards.mkdir(exist_ok=True)
    pinned = f'\n[sha256]\n"model.pth" = "{sha}"\n' if sha else ""
    (cards / "dl-test.toml").write_text(
        'name = "dl-test"\nmethod = "resshift"\nsummary = "t"\nscale = 4\nlicense = "test"\n'
        f'commercial_use = false\nsource_url = "{url}"\nfiles = ["model.pth"]\n{pinned}'
    )


def test_models_download_fetches_a_release_file_and_offline_mode_refuses(server, sr1step_home, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _card(sr1step_home, f"{server}/releases/model.pth", hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setenv("SR1STEP_OFFLINE", "1")
    offline = runner.invoke(app, ["models", "download", "dl-test"])
    assert (
        offline.exit_code == 1
        and "official release" in " ".join(offline.output.split())
        and not Handler.requests
    )
    monkeypatch.delenv("SR1STEP_OFFLINE")
    result = runner.invoke(app, ["models", "download", "dl-test"])
    assert result.exit_code == 0, result.output
    assert (sr1step_home / "models" / "dl-test" / "model.pth").read_bytes() == PAYLOAD


def test_a_failed_download_is_one_line_with_exit_1(server, sr1step_home, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _card(sr1step_home, f"{server}/releases/model.pth", "2" * 64)
    result = runner.invoke(app, ["models", "download", "dl-test"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "checksum mismatch" in flat and "Traceback" not in result.output


def test_upscale_no_download_asks_nothing(server, sr1step_home, monkeypatch, tmp_path):
    import numpy as np
    from PIL import Image

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("SR1STEP_OFFLINE", "0")  # restored after the test: the flag sets it in-process
    _card(sr1step_home, f"{server}/releases/model.pth")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    args = [
        "upscale",
        str(tmp_path / "in.png"),
        str(tmp_path / "o"),
        "-m",
        "resshift",
        "-w",
        "dl-test",
        "--no-download",
    ]
    result = runner.invoke(app, args)
    assert (
        result.exit_code == 1
        and "missing model.pth" in " ".join(result.output.split())
        and not Handler.requests
    )
