"""`sr1step` end to end on generated images: bicubic, a tiny ResShift, conversion of official files."""

import re

import cv2
import numpy as np
import pytest
import torch
from conftest import natural_image
from PIL import Image
from typer.testing import CliRunner

from sr1step.cli import app

runner = CliRunner()


def _u8(img):
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(_u8(natural_image(24, 1))).save(d / "rgb.png")
    Image.fromarray(_u8(natural_image(20, 2))).save(d / "photo.jpg", quality=95)
    rgba = np.dstack([_u8(natural_image(16, 3)), np.full((16, 16), 128, np.uint8)])
    Image.fromarray(rgba).save(d / "alpha.png")
    cv2.imwrite(str(d / "deep.png"), (natural_image(12, 4)[:, :, 0] * 65535).astype(np.uint16))
    Image.fromarray(_u8(natural_image(16, 5))).save(d / "sub" / "nested.webp", lossless=True)
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("ignored")
    return d


@pytest.mark.parametrize(
    "command",
    [
        "upscale",
        "train",
        "distill",
        "benchmark",
        "models",
        "models list",
        "models download",
        "models convert",
    ],
)
def test_help_for_every_command(command):
    result = runner.invoke(app, command.split() + ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_upscale_folder_bicubic(photo_dir, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["upscale", str(photo_dir), str(out), "--recursive", "-m", "bicubic"])
    assert result.exit_code == 1, result.output  # the two bad files failed, the rest written
    assert "empty file" in result.output and "corrupt" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    manifests = [".sr1step-outputs", "sub/.sr1step-outputs"]  # what this tool wrote, per folder
    assert written == sorted(manifests + ["alpha.png", "deep.png", "photo.jpg", "rgb.png", "sub/nested.webp"])
    assert (out / ".sr1step-outputs").read_text().split() == ["alpha.png", "deep.png", "photo.jpg", "rgb.png"]
    assert Image.open(out / "rgb.png").size == (96, 96)
    a = Image.open(out / "alpha.png")
    assert (
        a.mode == "RGBA" and a.size == (64, 64) and np.asarray(a)[:, :, 3].mean() == pytest.approx(128, abs=1)
    )
    deep = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.ndim == 2 and deep.shape == (48, 48)
    # bicubic output equals a direct torch bicubic of the input
    lr = (
        torch.from_numpy(np.asarray(Image.open(photo_dir / "rgb.png")) / 255.0).permute(2, 0, 1)[None].float()
    )
    ref = (
        torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic")
        .clamp(0, 1)[0]
        .permute(1, 2, 0)
        .numpy()
    )
    assert np.abs(np.asarray(Image.open(out / "rgb.png")) / 255.0 - ref).max() <= 1 / 255 + 1e-6
    # second run skips everything that exists, and the exit code still reports the bad inputs
    result = runner.invoke(app, ["upscale", str(photo_dir), str(out), "--recursive"])
    assert result.exit_code == 1 and "output exists" in result.output


def test_upscale_options(photo_dir, tmp_path):
    out = tmp_path / "o"
    src = photo_dir / "rgb.png"
    result = runner.invoke(
        app, ["upscale", str(src), str(out), "--scale", "2", "--ext", "jpg", "--suffix", "_x2"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out / "rgb_x2.jpg").size == (48, 48)
    before = (out / "rgb_x2.jpg").stat().st_mtime_ns
    assert (
        runner.invoke(
            app, ["upscale", str(src), str(out), "--scale", "2", "--ext", "jpg", "--suffix", "_x2"]
        ).exit_code
        == 0
    )
    assert (out / "rgb_x2.jpg").stat().st_mtime_ns == before
    assert (
        runner.invoke(
            app,
            ["upscale", str(src), str(out), "--scale", "2", "--ext", "jpg", "--suffix", "_x2", "--overwrite"],
        ).exit_code
        == 0
    )
    assert (out / "rgb_x2.jpg").stat().st_mtime_ns != before
    result = runner.invoke(app, ["upscale", str(photo_dir / "alpha.png"), str(out), "--ext", "jpg"])
    assert result.exit_code == 0 and (out / "alpha.png").exists()  # alpha forces PNG
    result = runner.invoke(
        app,
        [
            "upscale",
            str(src),
            str(out),
            "--tile",
            "8",
            "--tile-overlap",
            "4",
            "--batch-size",
            "3",
            "--color-fix",
            "wavelet",
            "--suffix",
            "_t",
        ],
    )
    assert result.exit_code == 0 and Image.open(out / "rgb_t.png").size == (96, 96)


def test_upscale_never_overwrites_inputs(photo_dir):
    before = (photo_dir / "rgb.png").read_bytes()
    result = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(photo_dir), "--overwrite"])
    assert result.exit_code == 1 and "input file" in result.output
    assert (photo_dir / "rgb.png").read_bytes() == before


def test_upscale_refuses_large_images_before_decoding(photo_dir, tmp_path):
    result = runner.invoke(
        app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "--max-pixels", "100"]
    )
    assert result.exit_code == 1 and "max-pixels" in result.output


def test_dry_run_writes_nothing(photo_dir, tmp_path):
    out = tmp_path / "dry"
    result = runner.invoke(app, ["upscale", str(photo_dir), str(out), "--dry-run"])
    assert result.exit_code == 0 and "rgb.png" in result.output and not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--method", "nope"],
        ["--device", "tpu"],
        ["--dtype", "fp8"],
        ["--color-fix", "magic"],
        ["--ensemble", "3"],
        ["--tile", "16", "--tile-overlap", "16"],
        ["--ext", "gif"],
    ],
)
def test_bad_usage_exits_2(photo_dir, tmp_path, args):
    result = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output


def test_missing_input_and_unknown_method_suggestion(tmp_path):
    assert runner.invoke(app, ["upscale", str(tmp_path / "nothing"), str(tmp_path / "o")]).exit_code == 2
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(_u8(natural_image(8))).save(d / "a.png")
    result = runner.invoke(app, ["upscale", str(d), str(tmp_path / "o"), "--method", "resshfit"])
    assert result.exit_code == 2 and "did you mean 'resshift'" in result.output


def test_bicubic_takes_no_weights(photo_dir, tmp_path):
    result = runner.invoke(
        app,
        ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "-m", "bicubic", "-w", str(photo_dir)],
    )
    assert result.exit_code == 2 and "does not load model weights" in result.output
    # weights that do not name their method need --method
    result = runner.invoke(
        app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "-w", str(photo_dir)]
    )
    assert result.exit_code == 2 and "give --method" in " ".join(result.output.split())


def test_missing_weights_message_names_file(photo_dir, tmp_path):
    result = runner.invoke(
        app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "--method", "resshift"]
    )
    assert result.exit_code == 1
    assert "resshift_realsrx4_s4_v3.pth" in result.output and "models convert" in result.output


def test_every_flag_is_documented():
    from pathlib import Path

    import typer.main

    doc = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    group = typer.main.get_command(app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    for path, cmd in walk(group, []):
        assert f"sr1step {path[0]}" in doc or f"`{' '.join(path)}" in doc, path
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    # the whole flag, not a prefix of a longer one (--tile vs --tile-overlap)
                    assert re.search(re.escape(opt) + r"(?![\w-])", doc), (path, opt)


# --- bad input and faults: one clear line, the right exit code, nothing lost ---------------------


def test_animated_gif_file_gives_its_first_frame_as_png(tmp_path):
    frames = [Image.fromarray(_u8(natural_image(12, s))) for s in (1, 2)]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = runner.invoke(app, ["upscale", str(src), str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "o" / "anim.png")
    assert out.size == (48, 48) and out.format == "PNG"


def test_decoder_out_of_memory_fails_one_file_and_the_batch_goes_on(photo_dir, tmp_path, monkeypatch):
    import sr1step.imageio as imageio

    original = imageio._decode_pillow

    def decode(im):
        if im.size == (24, 24):  # rgb.png plays the decompression bomb
            raise MemoryError
        return original(im)

    monkeypatch.setattr(imageio, "_decode_pillow", decode)
    out = tmp_path / "o"
    result = runner.invoke(app, ["upscale", str(photo_dir), str(out), "--max-pixels", "3000000000"])
    assert result.exit_code == 1 and "out of memory" in result.output
    assert (out / "photo.jpg").is_file() and not (out / "rgb.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "0"], "--scale must be in"),
        (["--scale", "-1"], "--scale must be in"),
        (["--quality", "0"], "--quality must be in 1..100"),
        (["--quality", "101"], "--quality must be in 1..100"),
        (["--suffix", "/../../x"], "must not contain a path separator"),
    ],
)
def test_upscale_option_values_are_checked(photo_dir, tmp_path, args, message):
    result = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob("x*"))


def test_single_input_to_an_image_path_writes_that_file(photo_dir, tmp_path):
    target = tmp_path / "result.png"
    result = runner.invoke(app, ["upscale", str(photo_dir / "photo.jpg"), str(target)])
    assert result.exit_code == 0, result.output
    assert target.is_file() and Image.open(target).size == (80, 80) and Image.open(target).format == "PNG"


def test_in_place_with_a_suffix_works_and_true_collisions_are_refused(photo_dir):
    result = runner.invoke(app, ["upscale", str(photo_dir), str(photo_dir), "--suffix", "_x4"])
    assert result.exit_code == 1  # the corrupt and empty inputs
    assert Image.open(photo_dir / "rgb_x4.png").size == (96, 96)
    again = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(photo_dir)])
    assert again.exit_code == 1 and "output path is an input file" in " ".join(again.output.split())
    before = (photo_dir / "rgb.png").read_bytes()  # the same through relative paths
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(photo_dir)
        relative = runner.invoke(app, ["upscale", "rgb.png", ".", "--overwrite"])
    assert relative.exit_code == 1 and "output path is an input file" in " ".join(relative.output.split())
    assert (photo_dir / "rgb.png").read_bytes() == before


def test_unwritable_output_fails_before_loading_a_model(photo_dir, tmp_path, monkeypatch):
    import sr1step.api

    monkeypatch.setattr(sr1step.api, "method_for", lambda *a: pytest.fail("a model was loaded"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(blocker / "out")])
    assert result.exit_code == 2 and "not writable" in " ".join(result.output.split())


def test_outputs_are_claimed_so_concurrent_runs_never_write_the_same_file(photo_dir, tmp_path):
    import os

    from sr1step.files import lock_path

    out = tmp_path / "o"
    out.mkdir()
    lock_path(out / "rgb.png").write_text(str(os.getpid()))  # a live run holds rgb.png
    dead = _dead_pid()
    lock_path(out / "photo.jpg").write_text(str(dead))  # a killed run left this one
    result = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(out)])
    assert result.exit_code == 0 and "another sr1step run is writing" in " ".join(result.output.split())
    assert not (out / "rgb.png").exists()
    result = runner.invoke(app, ["upscale", str(photo_dir / "photo.jpg"), str(out)])
    assert (
        result.exit_code == 0 and (out / "photo.jpg").is_file() and not lock_path(out / "photo.jpg").exists()
    )


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_fp16_on_cpu_runs_in_fp32_with_a_note(photo_dir, tmp_path):
    result = runner.invoke(
        app,
        ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "--dtype", "fp16", "--device", "cpu"],
    )
    assert result.exit_code == 0 and "using fp32" in " ".join(result.output.split())


def test_weights_of_another_network_give_a_short_account(photo_dir, tmp_path):
    wrong = tmp_path / "resshift_other_s4.pth"
    torch.save({f"layer{i}.weight": torch.zeros(3, 3) for i in range(500)}, wrong)
    args = ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "-m", "resshift", "-w", str(wrong)]
    result = runner.invoke(app, args)
    flat = " ".join(result.output.split())
    assert result.exit_code == 1
    # the UNet file is checked before the (also missing) VQ-f4 is asked for; no dump of 500 keys
    assert "not a checkpoint of this ResShift network" in flat and "the file has 500 tensors" in flat
    assert len(result.output) < 3000 and "layer499" not in flat


def test_resshift_weights_mismatch_is_summarised(tmp_path):
    from sr1step.methods.resshift import NETWORKS, generator_from_official
    from sr1step.weights import WeightFileError

    wrong = tmp_path / "w.pth"
    torch.save({f"layer{i}.weight": torch.zeros(3, 3) for i in range(500)}, wrong)
    with pytest.raises(WeightFileError) as info:
        generator_from_official(wrong, lambda: None, NETWORKS["tiny"])
    text = str(info.value)
    assert "the file has 500 tensors" in text and "missing: " in text and "(+" in text and len(text) < 1000


def test_random_bytes_are_not_a_weight_file_and_no_unsafe_advice(photo_dir, tmp_path):
    bogus = tmp_path / "model.pth"
    bogus.write_bytes(bytes(range(256)) * 40)
    result = runner.invoke(
        app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "-m", "rsd", "-w", str(bogus)]
    )
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "not a weight file" in flat
    assert "weights_only" not in flat and "arbitrary code" not in flat


def test_missing_files_are_all_named_at_once(photo_dir, tmp_path):
    result = runner.invoke(
        app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "-m", "resshift"]
    )
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "resshift_realsrx4_s4_v3.pth" in flat and "autoencoder_vq_f4.pth" in flat


def test_tadsr_without_public_link_says_so(photo_dir, tmp_path):
    result = runner.invoke(app, ["upscale", str(photo_dir / "rgb.png"), str(tmp_path / "o"), "-m", "tadsr"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "No public download exists" in flat
    assert "official release: https://github.com/LearningHx" not in flat


def test_no_bitsandbytes_warning_on_import():
    import subprocess
    import sys

    code = "import sr1step, peft, sr1step.methods.d3sr"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "gemm_4bit" not in run.stderr


def test_a_line_per_image_when_output_is_not_a_terminal(photo_dir, tmp_path):
    result = runner.invoke(app, ["upscale", str(photo_dir), str(tmp_path / "o")])
    lines = [ln for ln in result.output.splitlines() if ln.startswith(("done ", "failed ", "skipped "))]
    assert len(lines) == 6 and any(ln.startswith("done ") and "rgb.png" in ln for ln in lines)


def test_ctrl_c_in_upscale_is_one_line_and_exit_130(photo_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    ready = tmp_path / "ready"
    code = (
        # a background job (CI) inherits SIGINT ignored; a terminal's Ctrl-C raises KeyboardInterrupt
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler);"
        "import sys, time, pathlib, sr1step.upscale as u;"
        "ready = pathlib.Path(sys.argv[3]); sys.argv = ['sr1step', 'upscale', sys.argv[1], sys.argv[2]];"
        "u.run_jobs = lambda *a, **k: (ready.write_text('1'), time.sleep(120));"
        "from sr1step.cli import main; main()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(photo_dir), str(tmp_path / "o"), str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 240
    while not ready.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ready.exists(), proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGINT)  # while the batch runs
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and not list((tmp_path / "o").glob("*.tmp"))
