"""Silent wrong results found by the second reliability battery, each pinned by a test that failed
before its fix: stale benchmark scores, non-finite weights and outputs, Python API inputs read
wrongly, 16-bit gray + alpha files, float TIFFs, and earlier outputs taken as inputs."""

import json
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from conftest import natural_image
from PIL import Image
from test_benchmark import make_pairs
from typer.testing import CliRunner

import sr1step
from sr1step.cli import app
from sr1step.generators.resshift import ResShiftGenerator
from sr1step.imageio import read_image
from sr1step.methods.resshift import NETWORKS
from sr1step.weights import WeightFileError, load_state_dict, save_safetensors

runner = CliRunner()


def _bench(data, out, method="bicubic"):
    args = [
        "benchmark",
        "-D",
        str(data),
        "-m",
        method,
        "--metrics",
        "psnr",
        "-o",
        str(out),
        "--device",
        "cpu",
    ]
    return runner.invoke(app, args)


def _psnr(out) -> float:
    return json.loads((out / "results.json").read_text())["results"][0]["scores"]["psnr"]


# --- 1. benchmark scores keyed by content -------------------------------------------------------


def test_another_set_under_the_same_folder_name_is_scored_anew(tmp_path):
    make_pairs(tmp_path / "a" / "set", ["x", "y"])
    make_pairs(tmp_path / "b" / "set", ["x", "y"], size=48)  # other images, same names
    out = tmp_path / "r"
    assert _bench(tmp_path / "a" / "set", out).exit_code == 0
    first = _psnr(out)
    result = _bench(tmp_path / "b" / "set", out)
    assert result.exit_code == 0, result.output
    fresh = tmp_path / "fresh"
    assert _bench(tmp_path / "b" / "set", fresh).exit_code == 0
    assert _psnr(out) == pytest.approx(_psnr(fresh)) and _psnr(out) != pytest.approx(first)
    # a third run on the same set reuses the scores and says so
    again = _bench(tmp_path / "b" / "set", out)
    assert "reused from" in " ".join(again.output.split()) and _psnr(out) == pytest.approx(_psnr(fresh))


def test_a_replaced_weight_file_is_scored_anew(tmp_path):
    make_pairs(tmp_path / "set", ["x"])
    weights = tmp_path / "w" / "export"
    torch.manual_seed(0)
    ResShiftGenerator(NETWORKS["tiny"]).save_folder(weights, "resshift")
    out = tmp_path / "r"
    assert _bench(tmp_path / "set", out, f"sinsr:{weights}").exit_code == 0
    first = _psnr(out)
    torch.manual_seed(1)
    gen = ResShiftGenerator(NETWORKS["tiny"])
    with torch.no_grad():
        gen.unet.out[2].weight.normal_(0, 0.05)  # a different model, same path
    gen.save_folder(weights, "resshift")
    assert _bench(tmp_path / "set", out, f"sinsr:{weights}").exit_code == 0
    fresh = tmp_path / "fresh"
    assert _bench(tmp_path / "set", fresh, f"sinsr:{weights}").exit_code == 0
    assert _psnr(out) == pytest.approx(_psnr(fresh)) and _psnr(out) != pytest.approx(first)


def test_a_damaged_cache_line_is_skipped_and_named(tmp_path):
    make_pairs(tmp_path / "set", ["x", "y"])
    out = tmp_path / "r"
    assert _bench(tmp_path / "set", out).exit_code == 0
    first = _psnr(out)
    cache = next((out / "cache").rglob("*.jsonl"))
    lines = cache.read_text().splitlines()
    cache.write_text(lines[0][: len(lines[0]) // 2] + "\n" + "\n".join(lines[1:]) + "\n")
    result = _bench(tmp_path / "set", out)
    assert result.exit_code == 0, result.output
    assert "damaged line" in result.output and cache.name in " ".join(result.output.split())
    assert _psnr(out) == pytest.approx(first)


# --- 2. non-finite weights and outputs ----------------------------------------------------------


def test_weights_with_nan_are_refused_naming_the_tensor(tmp_path):
    state = {"a.weight": torch.ones(3), "b.bias": torch.tensor([0.0, float("nan")])}
    save_safetensors(state, tmp_path / "w.safetensors")
    with pytest.raises(WeightFileError, match=r"'b.bias' has 1 NaN or Inf"):
        load_state_dict(tmp_path / "w.safetensors")
    torch.save({"x": torch.tensor([float("inf")])}, tmp_path / "w.pth")
    with pytest.raises(WeightFileError, match="'x'"):
        load_state_dict(tmp_path / "w.pth")


def test_a_nan_output_fails_that_file_with_exit_1(tmp_path, monkeypatch):
    import sr1step.methods.bicubic as bicubic

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((natural_image(16) * 255).astype(np.uint8)).save(src / "a.png")
    original = bicubic.BicubicGenerator.forward
    nan_forward = lambda self, x, noise=None: original(self, x) * float("nan")  # noqa: E731
    monkeypatch.setattr(bicubic.BicubicGenerator, "forward", nan_forward)
    result = runner.invoke(app, ["upscale", str(src), str(tmp_path / "out"), "-m", "bicubic"])
    assert result.exit_code == 1 and "NaN or Inf" in " ".join(result.output.split())
    assert not (tmp_path / "out" / "a.png").exists()


# --- 3. Python API inputs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def up():
    return sr1step.Upscaler("bicubic", device="cpu")


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x[None], scale_factor=4, mode="bicubic").clamp(0, 1)[0]


def test_integer_tensors_are_scaled_by_their_range(up):
    img = torch.from_numpy(natural_image(12)).permute(2, 0, 1)
    as_uint8 = (img * 255).round().to(torch.uint8)
    out = up(as_uint8)
    assert out.dtype == torch.uint8 and out.shape == (3, 48, 48)
    ref = (_bicubic(as_uint8.float() / 255) * 255).round()
    assert (out.float() - ref).abs().max() <= 1
    with pytest.raises(ValueError, match="unsupported tensor dtype torch.int64"):
        up(as_uint8.long())


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_16_bit_and_float_pil_modes_keep_their_range(up, mode):
    gray = natural_image(12)[..., 0]
    if mode == "F":
        im, top = Image.fromarray(gray.astype(np.float32), "F"), 1.0
    else:
        values = (gray * 65535).round().astype(np.uint16)
        im = Image.fromarray(values) if mode == "I;16" else Image.fromarray(values.astype(np.int32), "I")
        top = 65535.0
    out = up(im)
    assert out.mode == mode and out.size == (48, 48)
    ref = _bicubic(torch.from_numpy(gray)[None].expand(3, -1, -1).float())[0].numpy()
    assert np.abs(np.asarray(out, dtype=np.float64) / top - ref).max() < 2e-3


def test_gray_alpha_pil_stays_gray_alpha(up):
    la = np.stack([(natural_image(12)[..., 0] * 255).astype(np.uint8), np.full((12, 12), 200, np.uint8)], 2)
    out = up(Image.fromarray(la, "LA"))
    assert out.mode == "LA" and out.size == (48, 48)
    assert np.abs(np.asarray(out)[..., 1].astype(int) - 200).max() <= 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 5, 3), np.uint8), "empty image"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN or Inf"),
        (torch.full((3, 4, 4), float("inf")), "NaN or Inf"),
        (torch.zeros(3, 0, 4), "empty image"),
    ],
)
def test_empty_and_non_finite_inputs_are_one_line_errors(up, bad, message):
    with pytest.raises(ValueError, match=message):
        up(bad)


# --- 4, 5. files: 16-bit gray + alpha, float TIFF -----------------------------------------------


def test_16_bit_gray_alpha_png_stays_gray(tmp_path):
    gray = (natural_image(10)[..., 0] * 65535).astype(np.uint16)
    path = tmp_path / "la16.png"
    # Pillow cannot write 16-bit gray + alpha: the PNG is written by hand (colour type 4, 16 bits)
    raw = b"".join(b"\x00" + b"".join(struct.pack(">HH", int(g), 40000) for g in row) for row in gray)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 16, 4, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    image = read_image(path)
    assert image.grayscale and image.bit_depth == 16 and image.alpha is not None
    assert np.allclose(image.rgb[..., 0], gray / 65535, atol=1e-6)
    assert np.allclose(image.alpha, 40000 / 65535, atol=1e-6)
    result = runner.invoke(app, ["upscale", str(path), str(tmp_path / "out"), "-m", "bicubic"])
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "out" / "la16.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    channels = written if written.ndim == 2 else written[..., :3]
    assert written.ndim == 2 or written.shape[2] == 2 or np.array_equal(channels[..., 0], channels[..., 1])


def test_float_rgb_tiff_reads_and_values_above_one_are_reported(tmp_path):
    rgb = natural_image(12) * 1.5
    tifffile.imwrite(tmp_path / "hdr.tif", rgb.astype(np.float32), photometric="rgb")
    image = read_image(tmp_path / "hdr.tif")
    assert not image.grayscale and image.rgb.max() == 1.0
    assert image.notes and "clipped" in image.notes[0]
    result = runner.invoke(
        app, ["upscale", str(tmp_path / "hdr.tif"), str(tmp_path / "out"), "-m", "bicubic"]
    )
    assert result.exit_code == 0 and "clipped" in " ".join(result.output.split())


# --- 6, 7. files this tool wrote are not inputs ---------------------------------------------------


def _png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((natural_image(8, seed) * 255).astype(np.uint8)).save(path)


def test_output_inside_the_input_tree_keeps_real_inputs_there(tmp_path):
    rec = tmp_path / "rec"
    _png(rec / "a.png")
    _png(rec / "sub" / "b.png", 1)  # a real input inside the output folder
    first = runner.invoke(app, ["upscale", str(rec), str(rec / "sub"), "-r", "-m", "bicubic"])
    assert first.exit_code == 0, first.output
    assert (rec / "sub" / "a.png").is_file() and (rec / "sub" / "sub" / "b.png").is_file()
    again = runner.invoke(app, ["upscale", str(rec), str(rec / "sub"), "-r", "-m", "bicubic"])
    assert again.exit_code == 0, again.output
    assert not (rec / "sub" / "sub" / "a.png").exists() and not (rec / "sub" / "sub" / "sub").exists()


def test_in_place_rerun_does_not_upscale_its_own_outputs(tmp_path):
    same = tmp_path / "same"
    _png(same / "a.png")
    for _ in range(2):
        result = runner.invoke(app, ["upscale", str(same), str(same), "--suffix", "_x4", "-m", "bicubic"])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in same.glob("*.png")) == ["a.png", "a_x4.png"]
    os.remove(same / ".sr1step-outputs")  # an earlier version's outputs: recognised by the suffix
    result = runner.invoke(app, ["upscale", str(same), str(same), "--suffix", "_x4", "-m", "bicubic"])
    assert result.exit_code == 0 and sorted(p.name for p in same.glob("*.png")) == ["a.png", "a_x4.png"]


# --- 8-10. runs that poison themselves ------------------------------------------------------------

TINY_TRAIN = ["-m", "resshift", "-p", "tiny", "--device", "cpu", "--set", "train.batch_size=2"]
TINY_TRAIN += [
    "--set",
    "data.gt_size=32",
    "--set",
    "data.crop_pad_size=40",
    "--set",
    "train.validate_every=0",
]
TINY_TRAIN += ["--set", "data.val_count=2", "--set", "data.val_size=32", "--set", "train.checkpoint_every=2"]


def test_a_resume_that_changes_the_network_is_refused_and_leaves_the_run_untouched(tmp_path):
    run = tmp_path / "run"
    first = runner.invoke(app, ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    config = (run / "config.toml").read_text()
    bad = ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "4", "--resume", "latest"]
    result = runner.invoke(app, [*bad, "--set", "model.network.unet.model_channels=64"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "cannot change the network" in flat and "Traceback" not in result.output
    assert "size mismatch" not in flat and flat.count("error:") == 1  # one message, not 118 mismatches
    assert (run / "config.toml").read_text() == config
    again = runner.invoke(
        app, ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "4", "--resume", "latest"]
    )
    assert again.exit_code == 0, again.output
    # another preset on resume is said, not silently ignored
    noted = runner.invoke(
        app, ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "4", "--resume", "latest"]
    )
    assert "not applied on --resume" in " ".join(noted.output.split())


def test_a_run_folder_held_by_a_live_trainer_is_refused(tmp_path):
    from sr1step.files import lock_path

    run = tmp_path / "run"
    run.mkdir()
    lock_path(run / "run").write_text(str(os.getpid()))  # a live process holds the run
    result = runner.invoke(app, ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "2"])
    assert result.exit_code == 1 and "in use by another sr1step run" in " ".join(result.output.split())
    assert not (run / "checkpoints").exists()
    dead = 2**22 + 12345  # beyond pid_max: never running
    lock_path(run / "run").write_text(str(dead))  # a killed run's lock is taken over
    assert runner.invoke(app, ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "2"]).exit_code == 0
    assert not lock_path(run / "run").exists()


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch):
    import sr1step.training.checkpoint as ckpt

    run = tmp_path / "run"
    stale = run / "checkpoints" / ".checkpoint-0000009.tmp-4194300"  # a killed run's temp
    stale.mkdir(parents=True)
    (stale / "optimizers.pt").write_bytes(b"x" * 100)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)
    result = runner.invoke(app, ["train", *TINY_TRAIN, "-o", str(run), "--max-steps", "2"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "no space left on" in flat and "previous checkpoint is intact" in flat
    assert "Traceback" not in result.output
    assert not list((run / "checkpoints").glob(".checkpoint-*"))  # neither this temp nor the stale one


# --- 12, 14. one line where one is promised; the package's surface ----------------------------------


def test_an_image_with_an_unknown_extension_is_upscaled_to_png(tmp_path):
    _png(tmp_path / "p.png")
    os.replace(tmp_path / "p.png", tmp_path / "photo.txt")
    result = runner.invoke(
        app, ["upscale", str(tmp_path / "photo.txt"), str(tmp_path / "o"), "-m", "bicubic"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o" / "photo.png").size == (32, 32)


def test_benchmark_into_an_impossible_folder_is_one_line(tmp_path):
    make_pairs(tmp_path / "set", ["x"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _bench(tmp_path / "set", blocker / "results")
    assert result.exit_code == 1 and "not writable" in result.output and "Traceback" not in result.output


def test_the_api_is_listed_and_python_m_sr1step_runs():
    import subprocess
    import sys

    assert {"Upscaler", "EngineOptions"} <= set(dir(sr1step)) and "Upscaler" in sr1step.__all__
    done = subprocess.run([sys.executable, "-m", "sr1step", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "upscale" in done.stdout and "benchmark" in done.stdout


# --- 13. smaller ----------------------------------------------------------------------------------


def test_a_corrupt_config_json_is_unreadable_with_exit_1(tmp_path):
    _png(tmp_path / "in" / "a.png")
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "config.json").write_text('{"method": "rsd", ')
    result = runner.invoke(
        app, ["upscale", str(tmp_path / "in"), str(tmp_path / "o"), "--weights", str(weights)]
    )
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "is not valid JSON" in flat and "does not say which method" not in flat


def test_an_oversized_icc_profile_and_extra_tiff_pages_are_named(tmp_path):
    from PIL import PngImagePlugin

    big = tmp_path / "icc.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(big, icc_profile=os.urandom(20_000_000))
    with pytest.raises(Exception, match="size limit"):
        read_image(big)
    assert PngImagePlugin.MAX_TEXT_CHUNK < 20_000_000  # the limit this case hits
    pages = [Image.fromarray((natural_image(8, s) * 255).astype(np.uint8)) for s in range(3)]
    pages[0].save(tmp_path / "multi.tif", save_all=True, append_images=pages[1:])
    assert read_image(tmp_path / "multi.tif").notes == [
        "multi-page TIFF: only the first of its 3 pages is upscaled"
    ]


def test_a_raw_pickle_is_refused_without_a_torch_warning(tmp_path):
    import pickle
    import warnings

    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WeightFileError):
            load_state_dict(path)


def test_print_config_needs_no_output_and_distant_keys_get_suggestions():
    shown = runner.invoke(app, ["train", "-m", "resshift", "-p", "tiny", "--print-config"])
    assert shown.exit_code == 0 and "[train]" in shown.output
    wrong = runner.invoke(
        app, ["train", "-m", "resshift", "-p", "tiny", "--print-config", "--set", "train.learning_rate=1"]
    )
    assert wrong.exit_code == 2 and "did you mean 'lr'" in " ".join(wrong.output.split())
