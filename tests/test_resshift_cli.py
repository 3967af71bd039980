"""ResShift/SinSR through the CLI: tiny random checkpoints in the official layout, cards, conversion."""

import json

import numpy as np
import pytest
import torch
from conftest import natural_image
from PIL import Image
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.generators.resshift import ResShiftGenerator
from sr1step.methods.resshift import NETWORKS
from sr1step.nets.autoencoders import diffusers_to_ldm_vq_state_dict

runner = CliRunner()


def _write_card(home, name, text):
    (home / "cards").mkdir(parents=True, exist_ok=True)
    (home / "cards" / f"{name}.toml").write_text(text)


@pytest.fixture
def official_tiny(sr1step_home):
    """A tiny ResShift in the official file layout (DDP prefixes, state_dict wrapper, ldm VQ keys)."""
    torch.manual_seed(0)
    gen = ResShiftGenerator(NETWORKS["tiny-vq"])
    name = "tiny-official"
    unet_dir = sr1step_home / "models" / name
    vq_dir = sr1step_home / "models" / "tiny-vq-ae"
    unet_dir.mkdir(parents=True, exist_ok=True)
    vq_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in gen.unet.state_dict().items()}}, unet_dir / "tiny_s4.pth"
    )
    torch.save(diffusers_to_ldm_vq_state_dict(gen.autoencoder.vq.state_dict()), vq_dir / "tiny_vq.pth")
    common = 'scale = 4\nlicense = "test"\ncommercial_use = false\nsource_url = "https://example.org/x"\n'
    _write_card(
        sr1step_home,
        "tiny-vq-ae",
        f'name = "tiny-vq-ae"\nmethod = "autoencoder"\nsummary = "t"\n{common}files = ["tiny_vq.pth"]\n',
    )
    _write_card(
        sr1step_home,
        name,
        f'name = "{name}"\nmethod = "resshift"\nsummary = "t"\n{common}files = ["tiny_s4.pth"]\n'
        'requires = ["tiny-vq-ae"]\npreset = "tiny-vq"\n',
    )
    return name, gen


@pytest.fixture
def lr_png(tmp_path):
    path = tmp_path / "in" / "lr.png"
    path.parent.mkdir()
    Image.fromarray((natural_image(20, 7) * 255).astype(np.uint8)).save(path)
    return path


def _run(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_official_layout_loads_converts_and_matches(official_tiny, lr_png, tmp_path, sr1step_home):
    name, _ = official_tiny
    _run(
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "a"),
            "--method",
            "resshift",
            "--weights",
            name,
            "--seed",
            "3",
        ]
    )
    direct = np.asarray(Image.open(tmp_path / "a" / "lr.png"))
    assert direct.shape == (80, 80, 3)

    _run(["models", "convert", name])
    converted = sr1step_home / "models" / name / "converted"
    meta = json.loads((converted / "config.json").read_text())
    assert meta["method"] == "resshift" and meta["format"] == "sr1step-resshift/1"
    assert (converted / "unet.safetensors").is_file() and (converted / "autoencoder.safetensors").is_file()
    rows = {r["name"]: r for r in json.loads(_run(["models", "list", "--json"]).stdout)}
    assert rows[name]["status"] == "converted"

    _run(
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "b"),
            "--method",
            "resshift",
            "--weights",
            name,
            "--seed",
            "3",
        ]
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b" / "lr.png")), direct)

    _run(
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "c"),
            "--method",
            "resshift",
            "--weights",
            str(converted),
            "--seed",
            "4",
        ]
    )
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "c" / "lr.png")), direct)  # other noise


def test_convert_by_path_and_sinsr_one_step(official_tiny, lr_png, tmp_path, sr1step_home):
    name, _ = official_tiny
    out = tmp_path / "conv"
    _run(
        [
            "models",
            "convert",
            str(sr1step_home / "models" / name / "tiny_s4.pth"),
            "--as",
            name,
            "--output",
            str(out),
        ]
    )
    _run(
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "s"),
            "--method",
            "sinsr",
            "--weights",
            str(out),
            "--tile",
            "8",
            "--tile-overlap",
            "4",
        ]
    )
    assert Image.open(tmp_path / "s" / "lr.png").size == (80, 80)
    result = runner.invoke(
        app,
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "s2"),
            "--method",
            "sinsr",
            "--weights",
            str(out),
            "--steps",
            "3",
        ],
    )
    assert result.exit_code == 2 and "1-step" in result.output


def test_steps_override_and_card_method_check(official_tiny, lr_png, tmp_path):
    name, _ = official_tiny
    _run(
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "s"),
            "--method",
            "resshift",
            "--weights",
            name,
            "--steps",
            "2",
        ]
    )
    result = runner.invoke(
        app,
        [
            "upscale",
            str(lr_png),
            str(tmp_path / "x"),
            "--method",
            "resshift",
            "--weights",
            name,
            "--steps",
            "9",
        ],
    )
    assert result.exit_code == 2 and "between 1 and 4" in result.output
    result = runner.invoke(
        app, ["upscale", str(lr_png), str(tmp_path / "y"), "--method", "sinsr", "--weights", name]
    )
    assert result.exit_code == 2 and "use --method resshift" in result.output


def test_missing_autoencoder_is_reported(official_tiny, lr_png, tmp_path, sr1step_home):
    name, _ = official_tiny
    (sr1step_home / "models" / "tiny-vq-ae" / "tiny_vq.pth").unlink()
    result = runner.invoke(
        app, ["upscale", str(lr_png), str(tmp_path / "o"), "--method", "resshift", "--weights", name]
    )
    assert result.exit_code == 1 and "tiny_vq.pth" in result.output


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_tiny_resshift_half_precision_matches_fp32(lr_png, tmp_path, dtype):
    torch.manual_seed(0)
    folder = ResShiftGenerator(NETWORKS["tiny"]).save_folder(tmp_path / "w", "resshift")
    for d in ("fp32", dtype):
        _run(
            [
                "upscale",
                str(lr_png),
                str(tmp_path / d),
                "--method",
                "resshift",
                "--weights",
                str(folder),
                "--dtype",
                d,
            ]
        )
    ref, half = (np.asarray(Image.open(tmp_path / d / "lr.png"), dtype=np.float64) for d in ("fp32", dtype))
    assert half.shape == ref.shape == (80, 80, 3)
    assert np.abs(half - ref).mean() < 3.0  # 8-bit levels: the same image up to half-precision rounding


def test_rsd_student_with_noise_channel(sr1step_home, lr_png, tmp_path):
    """An RSD-layout checkpoint (first conv widened to 7 inputs) loads via its card and uses the noise."""
    import dataclasses

    torch.manual_seed(0)
    cfg = dataclasses.replace(
        NETWORKS["tiny-vq"],
        noise_input=True,
        unet=dataclasses.replace(NETWORKS["tiny-vq"].unet, extra_in_channels=1),
    )
    gen = ResShiftGenerator(cfg)
    with torch.no_grad():
        gen.unet.input_blocks[0][0].weight[:, -1].normal_()  # trained students use the channel
    for name, _ in (("tiny-rsd", "ema.pth"), ("tiny-vq-ae", "vq.pth")):
        (sr1step_home / "models" / name).mkdir(parents=True)
    torch.save(
        {f"module.{k}": v for k, v in gen.unet.state_dict().items()},
        sr1step_home / "models" / "tiny-rsd" / "ema.pth",
    )
    torch.save(
        diffusers_to_ldm_vq_state_dict(gen.autoencoder.vq.state_dict()),
        sr1step_home / "models" / "tiny-vq-ae" / "vq.pth",
    )
    common = 'scale = 4\nlicense = "test"\ncommercial_use = false\nsource_url = "https://example.org/x"\n'
    _write_card(
        sr1step_home,
        "tiny-vq-ae",
        f'name = "tiny-vq-ae"\nmethod = "autoencoder"\nsummary = "t"\n{common}files = ["vq.pth"]\n',
    )
    _write_card(
        sr1step_home,
        "tiny-rsd",
        f'name = "tiny-rsd"\nmethod = "rsd"\nsummary = "t"\n{common}files = ["ema.pth"]\n'
        'requires = ["tiny-vq-ae"]\npreset = "tiny-vq"\n[params]\nnoise_input = '
        "true\n[params.unet]\nextra_in_channels = 1\n",
    )
    from sr1step.registry import get_method

    student = get_method("rsd").load_generator("tiny-rsd")
    assert student.steps == 1 and student.noise_channels == 3 + 1
    assert student.unet.input_blocks[0][0].weight.shape[1] == 7
    assert_seed_changes_output(lr_png, tmp_path, "rsd", "tiny-rsd")


def test_rsd_release_file_by_path_infers_the_noise_channel(sr1step_home, lr_png, tmp_path, monkeypatch):
    """`--weights ema_model_2800.pth`: the first conv's 7 inputs say "noise channel", not the preset."""
    import dataclasses

    from sr1step.methods import resshift

    torch.manual_seed(0)
    monkeypatch.setitem(
        resshift.NETWORKS, "realsr-v1", NETWORKS["tiny-vq"]
    )  # the file's network, shrunk for the test
    cfg = resshift.with_noise_input(NETWORKS["tiny-vq"], 1)
    gen = ResShiftGenerator(cfg)
    with torch.no_grad():
        gen.unet.input_blocks[0][0].weight[:, -1].normal_()
    release = tmp_path / "ema_model_2800.pth"
    torch.save({"module." + k: v for k, v in gen.unet.state_dict().items()}, release)
    vq_dir = sr1step_home / "models" / "resshift-vq-f4"
    vq_dir.mkdir(parents=True)
    torch.save(
        diffusers_to_ldm_vq_state_dict(gen.autoencoder.vq.state_dict()), vq_dir / "autoencoder_vq_f4.pth"
    )
    from sr1step.registry import get_method

    student = get_method("rsd").load_generator(str(release))
    assert student.config.noise_input and student.steps == 1 and student.noise_channels == 3 + 1
    assert student.config == dataclasses.replace(cfg, steps=1)
    assert_seed_changes_output(lr_png, tmp_path, "rsd", str(release))


def assert_seed_changes_output(lr_png, tmp_path, method, weights):
    """Two seeds, two images: the noise input reaches the network."""
    for d, seed in (("a", "1"), ("b", "2")):
        _run(
            [
                "upscale",
                str(lr_png),
                str(tmp_path / d),
                "--method",
                method,
                "--weights",
                weights,
                "--seed",
                seed,
            ]
        )
    a, b = (np.asarray(Image.open(tmp_path / d / "lr.png")) for d in "ab")
    assert a.shape == (80, 80, 3) and not np.array_equal(a, b)
