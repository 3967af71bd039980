"""The GAN/regression baselines through spandrel: official key layouts written by the test (random
weights), loaded by file, by card (local cache and a local release server), run by the engine and
compared with spandrel's own forward; the refusals; one benchmark table with a spandrel row."""

import functools
import http.server
import json
import threading

import numpy as np
import pytest
import spandrel
import torch
from conftest import natural_image
from PIL import Image
from spandrel.architectures.DnCNN import DnCNN
from spandrel.architectures.SwinIR import SwinIR
from test_benchmark import make_pairs
from typer.testing import CliRunner

from sr1step.api import load_engine
from sr1step.cli import app
from sr1step.engine import EngineOptions
from sr1step.hub import load_cards
from sr1step.weights import save_safetensors

runner = CliRunner()


def rrdb_state(layout: str, nf: int = 16, gc: int = 32, blocks: int = 1, seed: int = 0) -> dict:
    """An RRDB x4 generator's state dict in an official key layout, random weights.

    ``realesrgan``: Real-ESRGAN / BasicSR names (conv_first, body.N.rdbK.convJ, conv_body,
    conv_up1/2, conv_hr, conv_last); ``bsrgan``: ESRGAN/KAIR names (RRDB_trunk.N.RDBK.convJ,
    trunk_conv, upconv1/2, HRconv)."""
    names = {
        "realesrgan": ("body", "rdb", "conv_body", "conv_up1", "conv_up2", "conv_hr"),
        "bsrgan": ("RRDB_trunk", "RDB", "trunk_conv", "upconv1", "upconv2", "HRconv"),
    }[layout]
    trunk, rdb, body_conv, up1, up2, hr = names
    g = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name, out_ch, in_ch):
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) * 0.05
        state[f"{name}.bias"] = torch.randn(out_ch, generator=g) * 0.01

    conv("conv_first", nf, 3)
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 6):
                conv(f"{trunk}.{b}.{rdb}{r}.conv{c}", nf if c == 5 else gc, nf + (c - 1) * gc)
    for name in (body_conv, up1, up2, hr):
        conv(name, nf, nf)
    conv("conv_last", 3, nf)
    return state


def swinir_state(seed: int = 0) -> dict:
    """A tiny SwinIR real-world x4 GAN layout (nearest+conv upsampler, 3conv residual connection)."""
    torch.manual_seed(seed)
    net = SwinIR(
        upscale=4,
        in_chans=3,
        img_size=16,
        window_size=8,
        img_range=1.0,
        depths=[2, 2],
        embed_dim=16,
        num_heads=[2, 2],
        mlp_ratio=2,
        upsampler="nearest+conv",
        resi_connection="3conv",
    )
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("spandrel-weights")
    files = {}
    files["realesrgan"] = root / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": rrdb_state("realesrgan")}, files["realesrgan"])
    files["bsrgan"] = root / "BSRGAN.pth"
    torch.save(rrdb_state("bsrgan", seed=1), files["bsrgan"])
    # params_ema and params differ: the EMA weights are the ones a release means
    files["swinir"] = root / "SwinIR-L_x4_GAN.pth"
    torch.save({"params_ema": swinir_state(2), "params": swinir_state(3)}, files["swinir"])
    files["safetensors"] = root / "realesrgan.safetensors"
    save_safetensors(rrdb_state("realesrgan", seed=4), files["safetensors"])
    return files


def lr_image(size=24, seed=0) -> torch.Tensor:
    return torch.from_numpy(natural_image(size, seed)).permute(2, 0, 1)[None].float()


def spandrel_forward(path, x, state_key=None):
    raw = torch.load(path, weights_only=True) if path.suffix == ".pth" else None
    if raw is not None and state_key is not None:
        raw = raw[state_key]
    loader = spandrel.ModelLoader()
    descriptor = loader.load_from_file(path) if raw is None else loader.load_from_state_dict(raw)
    return descriptor.eval()(x)


@pytest.mark.parametrize("kind", ["realesrgan", "bsrgan", "swinir", "safetensors"])
def test_the_engine_runs_each_official_layout_as_spandrel_does(weight_files, kind):
    path = weight_files[kind]
    engine = load_engine("spandrel", str(path), EngineOptions(device="cpu", dtype="fp32"))
    assert engine.generator.scale == 4
    x = lr_image()
    ours = engine.run(x)
    reference = spandrel_forward(path, x, "params_ema" if kind == "swinir" else None)
    assert ours.shape == (1, 3, 96, 96)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_swinir_loads_the_ema_weights_not_params(weight_files):
    engine = load_engine("spandrel", str(weight_files["swinir"]), EngineOptions(device="cpu", dtype="fp32"))
    x = lr_image(16, 1)
    raw = spandrel_forward(weight_files["swinir"], x, "params")
    assert (engine.run(x) - raw).abs().max() > 1e-3


def test_tiled_runs_match_the_whole_image(weight_files):
    x = lr_image(48, 2)
    path = str(weight_files["realesrgan"])
    whole = load_engine("spandrel", path, EngineOptions(device="cpu", dtype="fp32")).run(x)
    tiled = load_engine("spandrel", path, EngineOptions(device="cpu", dtype="fp32", tile=32, tile_overlap=24))
    out = tiled.run(x)
    reference = spandrel_forward(weight_files["realesrgan"], x, "params_ema")
    torch.testing.assert_close(whole, reference, atol=1e-5, rtol=0)
    # RRDB's receptive field is wider than a quarter of the overlap: close, not equal
    psnr = -10 * torch.log10(((out - reference) ** 2).mean())
    assert psnr > 40, float(psnr)


def test_upscale_by_card_name_from_the_local_cache_needs_no_method(weight_files, sr1step_home, tmp_path):
    folder = sr1step_home / "models" / "realesrgan-x4plus"
    folder.mkdir(parents=True)
    (folder / "RealESRGAN_x4plus.pth").write_bytes(weight_files["realesrgan"].read_bytes())
    Image.fromarray((natural_image(20, 3) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    result = runner.invoke(
        app, ["upscale", str(tmp_path / "a.png"), str(tmp_path / "out"), "-w", "realesrgan-x4plus"]
    )
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert written.shape == (80, 80, 3)
    x = torch.from_numpy(np.asarray(Image.open(tmp_path / "a.png")) / 255.0).permute(2, 0, 1)[None].float()
    expected = spandrel_forward(weight_files["realesrgan"], x, "params_ema")[0].permute(1, 2, 0).numpy()
    assert np.abs(written / 255.0 - expected).max() <= 1 / 255 + 1e-6


@pytest.fixture
def release_server(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_card_downloads_its_release_file_and_runs(weight_files, release_server, sr1step_home, monkeypatch):
    served, url = release_server
    (served / "BSRGAN.pth").write_bytes(weight_files["bsrgan"].read_bytes())
    cards = sr1step_home / "cards"
    cards.mkdir()
    (cards / "bsrgan-test.toml").write_text(
        'name = "bsrgan-test"\nmethod = "spandrel"\nsummary = "t"\nscale = 4\nlicense = "Apache-2.0"\n'
        f'commercial_use = true\nsource_url = "{url}/BSRGAN.pth"\nfiles = ["BSRGAN.pth"]\n'
    )
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("SR1STEP_OFFLINE", "0")
    engine = load_engine(None, "bsrgan-test", EngineOptions(device="cpu", dtype="fp32"))
    x = lr_image(16, 4)
    torch.testing.assert_close(engine.run(x), spandrel_forward(weight_files["bsrgan"], x), atol=1e-5, rtol=0)
    assert (sr1step_home / "models" / "bsrgan-test" / "BSRGAN.pth").is_file()


def test_the_baseline_cards_name_their_files_licence_and_published_rows():
    cards = load_cards()
    expected = {
        "realesrgan-x4plus": "Real-ESRGAN",
        "realesrnet-x4plus": "",
        "bsrgan-x4": "BSRGAN",
        "swinir-l-realsr-x4-gan": "",
    }
    for name, row in expected.items():
        card = cards[name]
        assert card.method == "spandrel" and card.scale == 4 and card.license
        assert card.source_url.startswith("https://github.com/") and card.source_url.endswith(
            "/" + card.files[0]
        )
        assert card.published_as == row


def test_a_missing_baseline_file_says_where_to_get_it_and_needs_no_conversion(sr1step_home, tmp_path):
    result = invoke_upscale(tmp_path, "-w", "bsrgan-x4", "--no-download")
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "https://github.com/cszn/KAIR/releases/download/v1.0/BSRGAN.pth" in flat
    assert "models convert" not in flat and "Apache-2.0" in flat


def invoke_upscale(tmp_path, *args):
    Image.fromarray((natural_image(16, 5) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    return runner.invoke(app, ["upscale", str(tmp_path / "in.png"), str(tmp_path / "o"), *args])


def test_a_file_spandrel_does_not_know_is_one_clear_error(tmp_path):
    torch.save({"encoder.weight": torch.randn(4, 4)}, tmp_path / "mystery.pth")
    result = invoke_upscale(tmp_path, "-m", "spandrel", "-w", str(tmp_path / "mystery.pth"))
    flat = " ".join(result.output.split())
    assert (
        result.exit_code == 2 and "spandrel does not recognise" in flat and "Traceback" not in result.output
    )


def test_a_detected_network_that_cannot_be_built_is_one_clear_error(tmp_path):
    torch.save(rrdb_state("realesrgan", gc=8), tmp_path / "odd.pth")  # spandrel's RRDB assumes gc 32
    result = invoke_upscale(tmp_path, "-m", "spandrel", "-w", str(tmp_path / "odd.pth"))
    flat = " ".join(result.output.split())
    assert (
        result.exit_code == 2 and "could not build the network" in flat and "Traceback" not in result.output
    )


def test_a_denoiser_is_refused_as_not_x_scale_sr(tmp_path):
    torch.manual_seed(0)
    torch.save(DnCNN(in_nc=3, out_nc=3, nc=16, nb=17).state_dict(), tmp_path / "dncnn.pth")
    result = invoke_upscale(tmp_path, "-m", "spandrel", "-w", str(tmp_path / "dncnn.pth"))
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "DnCNN" in flat and "restoration model" in flat
    assert "x-scale SR networks only" in flat


def test_a_face_model_is_refused_as_not_x_scale_sr(tmp_path):
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(0)
    torch.save({"params_ema": GFPGAN().state_dict()}, tmp_path / "GFPGANv1.4.pth")  # 87 M parameters
    result = invoke_upscale(tmp_path, "-m", "spandrel", "-w", str(tmp_path / "GFPGANv1.4.pth"))
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "GFPGAN" in flat and "face restoration model" in flat


def test_a_gan_file_given_to_another_method_says_which_method_runs_it(weight_files, tmp_path):
    result = invoke_upscale(tmp_path, "-m", "resshift", "-w", str(weight_files["realesrgan"]))
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "ESRGAN network" in flat and "--method spandrel" in flat


def test_a_card_of_another_method_given_to_spandrel_is_refused(tmp_path):
    result = invoke_upscale(tmp_path, "-m", "spandrel", "-w", "sr1step-real-x4")
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "use --method sinsr" in flat


def test_one_benchmark_table_and_report_with_bicubic_the_bundled_model_and_a_spandrel_row(
    weight_files, sr1step_home, tmp_path
):
    make_pairs(tmp_path / "RealSR", ["a", "b"], size=32)
    folder = sr1step_home / "models" / "realesrgan-x4plus"
    folder.mkdir(parents=True)
    (folder / "RealESRGAN_x4plus.pth").write_bytes(weight_files["realesrgan"].read_bytes())
    out = tmp_path / "bench"
    args = ["benchmark", "-D", str(tmp_path / "RealSR"), "--metrics", "psnr,ssim", "-o", str(out)]
    args += ["-m", "bicubic", "-m", "sinsr:sr1step-real-x4", "-m", f"spandrel:{weight_files['bsrgan']}"]
    args += ["-m", "realesrgan-x4plus", "--save-images", "--reference", "paper", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    labels = [r["method"] for r in data["results"]]
    assert labels == ["bicubic", "sinsr:sr1step-real-x4", "spandrel:BSRGAN.pth", "realesrgan-x4plus"]
    assert all(r["images"] == 2 and set(r["scores"]) == {"psnr", "ssim"} for r in data["results"])
    # the card's own published row, not the method's (spandrel has none)
    compared = {(r["method"], r["published_as"]) for r in data["reference"]}
    assert ("realesrgan-x4plus", "Real-ESRGAN") in compared
    assert not any(m == "spandrel:BSRGAN.pth" for m, _ in compared)
    table = (out / "results.md").read_text()
    assert "realesrgan-x4plus" in table and "spandrel:BSRGAN.pth" in table
    assert (out / "report.html").is_file()
