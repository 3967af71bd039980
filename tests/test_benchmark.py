"""Benchmark: metric settings against an independent computation, test sets, cache/resume, outputs."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import natural_image
from PIL import Image
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.data import testsets
from sr1step.metrics import METRICS, MetricUnavailable, create_metric

runner = CliRunner()


# --- independent reference implementations (numpy, MATLAB/BasicSR conventions) ----------------------


def ref_y(img):
    """BT.601 studio-swing luma on the 0..255 scale, from RGB in [0, 1]."""
    return 16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]


def ref_psnr_y(a, b):
    ya, yb = ref_y(a.astype(np.float64)) / 255.0, ref_y(b.astype(np.float64)) / 255.0
    return 10 * np.log10(1.0 / np.mean((ya - yb) ** 2))


def ref_ssim_y(a, b):
    """Wang et al. SSIM on the rounded Y channel (0..255), 11x11 Gaussian sigma 1.5, valid region."""
    from scipy.ndimage import correlate

    x, y = np.round(ref_y(a.astype(np.float64))), np.round(ref_y(b.astype(np.float64)))
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def filt(z):
        return correlate(z, w, mode="constant")[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return ssim.mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_ssim_y_match_independent_reference(seed):
    rng = np.random.default_rng(seed)
    hr = natural_image(64, seed)
    sr = np.clip(hr + rng.normal(0, 0.03 + 0.02 * seed, hr.shape), 0, 1).astype(np.float32)
    sr = np.round(sr * 255) / 255
    hr = np.round(hr * 255) / 255
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()
    ours_psnr = create_metric("psnr")(t(sr), t(hr)).item()
    ours_ssim = create_metric("ssim")(t(sr), t(hr)).item()
    assert abs(ours_psnr - ref_psnr_y(sr, hr)) < 1e-3
    assert abs(ours_ssim - ref_ssim_y(sr, hr)) < 2e-3
    # the YIQ default would differ: the setting matters
    import pyiqa

    yiq = pyiqa.create_metric("psnr", test_y_channel=True)(t(sr), t(hr)).item()
    assert abs(yiq - ours_psnr) > 0.05


def test_crop_border():
    hr = natural_image(32, 3)
    sr = hr.copy()
    sr[:4] = 0  # damage only the border rows
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()
    assert create_metric("psnr", crop_border=4)(t(sr), t(hr)).item() > 60
    assert create_metric("psnr")(t(sr), t(hr)).item() < 30


def test_metric_table_and_offline_unavailable():
    assert (
        METRICS["lpips"].lower_better and not METRICS["musiq"].lower_better and METRICS["fid"].kind == "set"
    )
    assert METRICS["maniqa"].pyiqa_name == "maniqa-pipal"
    with pytest.raises(MetricUnavailable, match="LPIPS_v0.1_alex-df73285e.pth"):
        create_metric("lpips")


# --- datasets ------------------------------------------------------------------------------------


def make_pairs(root, names, size=32, scale=4, lr_suffix="", hr_suffix=""):
    (root / "HR").mkdir(parents=True, exist_ok=True)
    (root / "LR").mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        hr = (natural_image(size, i) * 255).astype(np.uint8)
        lr = torch.nn.functional.interpolate(
            torch.from_numpy(hr / 255.0).permute(2, 0, 1)[None],
            scale_factor=1 / scale,
            mode="bicubic",
            antialias=True,
        )
        Image.fromarray(hr).save(root / "HR" / f"{n}{hr_suffix}.png")
        Image.fromarray((lr[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(
            root / "LR" / f"{n}{lr_suffix}.png"
        )


@pytest.fixture
def fake_stablesr_repo(hf_cache):
    root = hf_cache / "datasets--Iceclear--StableSR-TestSets"
    yield root
    import shutil

    shutil.rmtree(root, ignore_errors=True)  # the HF cache is shared by the whole session


def test_registered_testset_from_fake_hub_archive(fake_stablesr_repo, tmp_path, monkeypatch):
    stage = tmp_path / "stage"
    make_pairs(stage, ["Canon_001", "Nikon_002"], lr_suffix="_LR4", hr_suffix="_HR")
    sha = "1" * 40
    snap = fake_stablesr_repo / "snapshots" / sha
    snap.mkdir(parents=True)
    (fake_stablesr_repo / "refs").mkdir()
    (fake_stablesr_repo / "refs" / "main").write_text(sha)
    with zipfile.ZipFile(snap / "StableSR_testsets.zip", "w") as zf:
        for sub, inner in (("LR", "test_LR"), ("HR", "test_HR")):
            for p in (stage / sub).iterdir():
                zf.write(p, f"StableSR_testsets/RealSRVal_crop128/{inner}/{p.name}")
    with pytest.raises(testsets.TestSetError, match="expected 100 LR images"):
        testsets.prepare_testset("RealSR")
    import dataclasses

    monkeypatch.setitem(
        testsets.TESTSETS, "RealSR", dataclasses.replace(testsets.TESTSETS["RealSR"], count=2)
    )
    folder = testsets.prepare_testset("RealSR")
    assert sorted(p.name for p in (folder / "LR").iterdir()) == ["Canon_001_LR4.png", "Nikon_002_LR4.png"]
    assert testsets.prepare_testset("RealSR") == folder  # unpacked once


def test_missing_testset_message():
    with pytest.raises(testsets.TestSetError) as err:
        testsets.prepare_testset("DRealSR")
    msg = str(err.value)
    assert "StableSR_testsets.zip" in msg and "Iceclear/StableSR-TestSets" in msg and "--dataset" in msg
    with pytest.raises(testsets.TestSetError, match="RealSet65"):
        testsets.prepare_testset("RealSet65")


# --- the command ---------------------------------------------------------------------------------


def test_benchmark_cli_outputs_resume_and_new_metric(tmp_path, monkeypatch):
    data = tmp_path / "set"
    make_pairs(data, ["a", "b", "c"])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / "LR" / "orphan.png")  # no HR: reported
    out = tmp_path / "res"
    args = [
        "benchmark",
        "--dataset",
        str(data),
        "--method",
        "bicubic",
        "--output",
        str(out),
        "--metrics",
        "psnr,lpips",
        "--device",
        "cpu",
        "--save-images",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # one problem file -> exit 1, the rest scored
    res = json.loads((out / "results.json").read_text())
    row = res["results"][0]
    assert row["images"] == 3 and set(row["scores"]) == {"psnr"} and "lpips" in row["unavailable"]
    assert row["problems"] == [["orphan.png", "no HR image with a matching name"]]
    assert res["environment"]["torch"] and res["environment"]["weights"]["bicubic"]["weights"] is None
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0] == "method,dataset,images,psnr,lpips,problems" and csv[1].startswith("bicubic,set,3,")
    md = (out / "results.md").read_text()
    assert "PSNR↑" in md and "LPIPS↓" in md and "orphan.png" in md
    # on screen, the all-unavailable metric is a note, not a column of n/a
    assert "PSNR↑" in result.output and "LPIPS↓" not in result.output and "lpips: n/a" in result.output

    # resume: nothing is recomputed; a new metric is scored from the saved SR images
    import sr1step.engine as engine_mod

    calls = []
    original = engine_mod.Engine.run
    monkeypatch.setattr(
        engine_mod.Engine, "run", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    args2 = args[:]
    args2[args2.index("psnr,lpips")] = "psnr,ssim"
    again = runner.invoke(app, args2)
    assert (
        again.exit_code == 1 and "orphan.png not scored" in again.output
    )  # the LR-only image is a problem, reported
    assert calls == []
    row2 = json.loads((out / "results.json").read_text())["results"][0]
    assert row2["scores"]["psnr"] == row["scores"]["psnr"] and "ssim" in row2["scores"]
    lines = (next((out / "cache").iterdir()) / "set.jsonl").read_text().splitlines()
    assert len(lines) == 6  # 3 images x (psnr, then ssim)
    # any setting that changes the images (here the seed) is a new cache entry: scored again
    for options in (["--seed", "1"], ["--tile", "6", "--tile-overlap", "2"], ["--color-fix", "adain"]):
        calls.clear()
        assert runner.invoke(app, [*args2, *options]).exit_code == 1
        assert len(calls) == 3, options


def test_benchmark_reference_and_speed_with_tiny_resshift(tmp_path, monkeypatch):
    from sr1step.generators.resshift import ResShiftGenerator
    from sr1step.methods.resshift import NETWORKS

    torch.manual_seed(0)
    weights = ResShiftGenerator(NETWORKS["tiny"]).save_folder(tmp_path / "w", "resshift")
    import dataclasses

    stage = tmp_path / "stage"
    make_pairs(stage, ["x", "y"])
    target = testsets.datasets_dir() / "RealSR"
    target.parent.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copytree(stage, target)
    monkeypatch.setitem(
        testsets.TESTSETS, "RealSR", dataclasses.replace(testsets.TESTSETS["RealSR"], count=2)
    )
    out = tmp_path / "r"
    result = runner.invoke(
        app,
        [
            "benchmark",
            "-D",
            "RealSR",
            "-m",
            "bicubic",
            "-m",
            f"resshift:{weights}",
            "--metrics",
            "psnr,ssim",
            "-o",
            str(out),
            "--reference",
            "paper",
            "--speed",
            "--speed-size",
            "16",
            "--speed-runs",
            "2",
            "--speed-warmup",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in res["results"]] == ["bicubic", "resshift:w"]
    refs = res["reference"]
    assert {x["published_as"] for x in refs} == {"ResShift-s15"}
    psnr_ref = next(x for x in refs if x["metric"] == "psnr")
    assert psnr_ref["published"] == 26.31 and psnr_ref["delta"] == pytest.approx(psnr_ref["ours"] - 26.31)
    speed = {s["method"]: s for s in res["speed"]}
    assert speed["resshift:w"]["nfe"] == 4 and speed["bicubic"]["nfe"] == 1
    assert (
        speed["resshift:w"]["params_m"] == pytest.approx(0.793175, rel=1e-6)
        and speed["resshift:w"]["latency_s"] > 0
    )
    assert "Published numbers" in (out / "results.md").read_text()
    ds = res["environment"]["datasets"]["RealSR"]
    assert ds["protocol"] == "stablesr-128-512" and ds["repo"] == "Iceclear/StableSR-TestSets"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metrics", "psnr,bogus"], "unknown metric"),
        (["--method", "nope"], "unknown method"),
        ([], "--dataset"),
    ],
)
def test_benchmark_usage_errors(tmp_path, args, message):
    base = ["benchmark", "-o", str(tmp_path / "o")] + (["-D", str(tmp_path)] if args else [])
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2 and message in result.output


def test_a_method_that_cannot_load_loses_only_its_own_row(tmp_path):
    make_pairs(tmp_path / "set", ["a", "b"])
    bogus = tmp_path / "bad.pth"
    bogus.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "r"
    args = ["benchmark", "-D", str(tmp_path / "set"), "-m", "bicubic", "-m", f"resshift:{bogus}"]
    result = runner.invoke(app, args + ["--metrics", "psnr", "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 1 and "not a weight file" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [r["method"] for r in rows] == ["bicubic"] and rows[0]["scores"]["psnr"] > 20


def test_two_weight_folders_named_alike_get_distinct_rows(tmp_path):
    from sr1step.benchmark import MethodRef, unique_labels
    from sr1step.generators.resshift import ResShiftGenerator
    from sr1step.methods.resshift import NETWORKS

    refs = unique_labels(
        [
            MethodRef.parse("rsd:runs/a/export"),
            MethodRef.parse("rsd:runs/b/export"),
            MethodRef.parse("bicubic"),
        ]
    )
    assert [r.label for r in refs] == ["rsd:a/export", "rsd:b/export", "bicubic"]
    with pytest.raises(ValueError, match="given twice"):
        unique_labels([MethodRef.parse("bicubic"), MethodRef.parse("bicubic")])
    make_pairs(tmp_path / "set", ["a"])
    torch.manual_seed(0)
    for run in ("a", "b"):
        ResShiftGenerator(NETWORKS["tiny"]).save_folder(tmp_path / run / "export", "resshift")
    out = tmp_path / "r"
    args = ["benchmark", "-D", str(tmp_path / "set"), "-m", f"resshift:{tmp_path / 'a' / 'export'}"]
    args += [
        "-m",
        f"resshift:{tmp_path / 'b' / 'export'}",
        "--metrics",
        "psnr",
        "-o",
        str(out),
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in res["results"]] == ["resshift:a/export", "resshift:b/export"]
    assert set(res["environment"]["weights"]) == {"resshift:a/export", "resshift:b/export"}


def test_report_html_references_existing_images_of_every_method(tmp_path):
    import re

    from sr1step.benchmark.report import zoom_boxes
    from sr1step.generators.resshift import ResShiftGenerator
    from sr1step.methods.resshift import NETWORKS

    make_pairs(tmp_path / "set", ["a", "b"], size=64)
    torch.manual_seed(0)
    weights = ResShiftGenerator(NETWORKS["tiny"]).save_folder(tmp_path / "w", "resshift")
    out = tmp_path / "r"
    args = [
        "benchmark",
        "-D",
        str(tmp_path / "set"),
        "-m",
        "bicubic",
        "-m",
        f"resshift:{weights}",
        "--metrics",
        "psnr",
    ]
    result = runner.invoke(app, args + ["-o", str(out), "--device", "cpu", "--save-images"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert sources and all((out / s).is_file() for s in sources)
    assert "http" not in page.lower().replace("charset", "")  # nothing fetched from outside
    for label in ("bicubic", "resshift:w", "LR (nearest)", "HR", ">a<", ">b<", "PSNR"):
        assert label in page, label
    # per image: a full row and two zoom rows of (LR, bicubic = a method here, resshift, HR) panels
    assert len(sources) == 2 * 3 * 4
    # the zoom goes where the outputs differ
    a, b = np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.float32)
    b[40:56, 8:24] = 1.0
    (y, x), _ = zoom_boxes([a, b], 16)
    assert 24 <= y <= 40 and 0 <= x <= 16


def test_speed_rows_count_every_pass_of_a_self_ensemble():
    from sr1step.benchmark import MethodRef, measure_speed
    from sr1step.engine import EngineOptions

    for n in (1, 4):
        row = measure_speed(
            MethodRef.parse("bicubic", None), EngineOptions(device="cpu", ensemble=n), 16, 1, 1, 0
        )
        assert row.nfe == n


def test_a_row_is_the_mean_of_the_scores_of_the_8_bit_images_written(tmp_path):
    """Each image is scored as written (8-bit PNG, as the papers score files), and the row is the
    mean over images: neither the float output nor a median."""
    from sr1step.api import load_engine
    from sr1step.data.datasets import load_paired_folder
    from sr1step.engine import EngineOptions
    from sr1step.metrics import create_metric

    make_pairs(tmp_path / "set", ["a", "b", "c"], size=32)
    out = tmp_path / "res"
    args = ["benchmark", "-D", str(tmp_path / "set"), "-m", "sinsr:sr1step-real-x4", "-o", str(out)]
    result = runner.invoke(app, [*args, "--metrics", "psnr", "--device", "cpu", "--save-images"])
    assert result.exit_code == 0, result.output
    row = json.loads((out / "results.json").read_text())["results"][0]
    psnr = create_metric("psnr")
    pairs = load_paired_folder(tmp_path / "set", 4).pairs
    engine = load_engine("sinsr", "sr1step-real-x4", EngineOptions(device="cpu", dtype="auto"))
    written, floats = [], []
    for pair in pairs:
        png = np.asarray(Image.open(Path(row["sr_folder"]) / f"{pair.name}.png"), np.float64) / 255
        sr = torch.from_numpy(png).permute(2, 0, 1)[None].float()
        written.append(psnr(sr, pair.hr[None]).item())
        floats.append(psnr(engine.run(pair.lr[None]), pair.hr[None]).item())
    assert row["scores"]["psnr"] == pytest.approx(float(np.mean(written)), abs=1e-5)
    assert abs(float(np.median(written)) - float(np.mean(written))) > 1e-3  # the set tells them apart
    assert abs(float(np.mean(floats)) - float(np.mean(written))) > 1e-4
