"""Upscale and benchmark on two processes (accelerate launch, gloo on the CPU): the same bytes and
scores as one process, each input written once, one summary on rank 0, reruns do what is missing."""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import natural_image
from PIL import Image
from test_benchmark import make_pairs

from sr1step.distributed import balanced_split


def test_balanced_split_is_deterministic_and_even():
    costs = [5, 4, 3, 3, 1, 0]
    shares = balanced_split(costs, 2)
    assert shares == balanced_split(costs, 2)
    assert sorted(i for s in shares for i in s) == list(range(6))
    assert sorted(sum(costs[i] for i in s) for s in shares) == [8, 8]
    assert balanced_split([1, 1], 4) == [[0], [1], [], []]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, cwd, processes=2):
    """``accelerate launch`` of ``python -m sr1step ARGS`` (gloo on the CPU: no GPU here)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        cmd = [sys.executable, "-m", "sr1step", *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd += ["--main_process_port", str(free_port()), "-m", "sr1step", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i, (h, w) in enumerate([(40, 40), (24, 40), (12, 40), (3, 40)]):
        Image.fromarray((natural_image(40, i)[:h, :w] * 255).astype(np.uint8)).save(root / f"p{i}.png")
    (root / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_two_processes_write_the_same_bytes_once_and_report_on_rank_0(photos, tmp_path):
    one = launch(["upscale", str(photos), str(tmp_path / "one"), "--device", "cpu"], tmp_path, processes=1)
    two = launch(["upscale", str(photos), str(tmp_path / "two"), "--device", "cpu"], tmp_path)
    assert one.returncode == 1 and two.returncode == 1, two.stderr[-2000:]  # the broken file fails
    names = sorted(f.name for f in (tmp_path / "one").glob("*.png"))
    assert names == [f"p{i}.png" for i in range(4)]
    for name in names:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    manifest = (tmp_path / "two" / ".sr1step-outputs").read_text().split()
    assert sorted(manifest) == names  # every input written exactly once
    out = two.stdout + two.stderr
    assert not re.search(r'File "[^"]*/sr1step/[^"]*\.py"', out)  # no traceback from sr1step itself
    assert out.count("sr1step upscale") == 1  # one summary, from rank 0
    # the broken file (no pixels: planned last) is rank 1's share here, and rank 0 reports it
    costs = [1600, 960, 480, 120, 0]
    assert 4 in balanced_split(costs, 2)[1]
    assert "[rank 1] failed" in out and "zz-broken.png" in out.split("sr1step upscale")[1]
    assert not list((tmp_path / "two").glob(".sr1step-progress-*"))


def test_a_relaunch_does_only_what_is_missing(photos, tmp_path):
    out = tmp_path / "out"
    first = launch(["upscale", str(photos), str(out), "--device", "cpu"], tmp_path)
    assert first.returncode == 1
    (out / "p2.png").unlink()
    before = {f.name: f.stat().st_mtime_ns for f in out.glob("*.png")}
    again = launch(["upscale", str(photos), str(out), "--device", "cpu"], tmp_path)
    assert again.returncode == 1, again.stderr[-2000:]
    assert (out / "p2.png").is_file()
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("*.png") if f.name != "p2.png"} == before
    statuses = re.findall(r"\[rank \d\] (\w+) ", again.stdout + again.stderr)
    assert sorted(statuses) == ["done", "failed", "skipped", "skipped", "skipped"]


def test_benchmark_scores_equal_the_single_process_run_and_share_the_cache(tmp_path):
    make_pairs(tmp_path / "set", ["a", "b", "c"], size=32)
    args = ["benchmark", "-D", str(tmp_path / "set"), "-m", "bicubic", "-m", "sinsr:sr1step-real-x4"]
    args += ["--metrics", "psnr,ssim", "--device", "cpu"]
    one = launch([*args, "-o", str(tmp_path / "one")], tmp_path, processes=1)
    two = launch([*args, "-o", str(tmp_path / "two")], tmp_path)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert not re.search(r'File "[^"]*/sr1step/[^"]*\.py"', two.stdout + two.stderr)
    rows = {}
    for run in ("one", "two"):
        data = json.loads((tmp_path / run / "results.json").read_text())
        rows[run] = {(r["method"], r["dataset"]): (r["images"], r["scores"]) for r in data["results"]}
    assert rows["one"].keys() == rows["two"].keys() and len(rows["one"]) == 2
    for key, (images, scores) in rows["one"].items():
        assert rows["two"][key][0] == images == 3
        for metric, value in scores.items():
            assert rows["two"][key][1][metric] == pytest.approx(value, abs=1e-6), (key, metric)
    assert json.loads((tmp_path / "two" / "results.json").read_text())["environment"]["processes"] == 2
    assert len(list((tmp_path / "two" / "cache").rglob("set.rank*.jsonl"))) == 4  # 2 methods x 2 ranks
    # a single process reads both ranks' caches and recomputes nothing
    again = launch([*args, "-o", str(tmp_path / "two")], tmp_path, processes=1)
    assert again.returncode == 0
    data = json.loads((tmp_path / "two" / "results.json").read_text())
    assert all(r["cached_images"] == 3 for r in data["results"])
