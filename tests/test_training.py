"""Training engine: configs, data streams, a short real run, exact resume, interruption, CLI."""

import json
import os
import signal
import warnings

import numpy as np
import pytest
import torch
from conftest import natural_image
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.config import ConfigError
from sr1step.data.datasets import HRCrops, StreamSampler, builtin_photos, load_paired_folder, pair_key
from sr1step.methods.resshift import RESSHIFT, ResShiftTraining
from sr1step.training.config import lr_lambda, resolve_run_config, run_config_from_dict
from sr1step.training.trainer import Trainer

runner = CliRunner()


def tiny_run(steps=4, **train):
    """The tiny preset shrunk further so a step takes well under a second on 2 cores."""
    overrides = [
        f"train.max_steps={steps}",
        "train.batch_size=2",
        'train.device="cpu"',
        "train.validate_every=0",
        "train.checkpoint_every=2",
        "train.log_every=1",
        "data.gt_size=32",
        "data.crop_pad_size=40",
        "data.val_size=32",
        "data.val_count=2",
        'data.degradation="realesrgan"',
        "data.pool_batches=1",  # the pair pool is full after one draw: resume must restore it
    ] + [f"train.{k}={json.dumps(v)}" for k, v in train.items()]
    return resolve_run_config(RESSHIFT.presets["tiny"](), ResShiftTraining, None, overrides)


def export_weights(folder):
    return load_file(str(folder / "unet.safetensors"))


# --- configs ---------------------------------------------------------------------------------------


def test_run_config_layers_and_round_trip(tmp_path):
    import tomllib

    run = resolve_run_config(
        RESSHIFT.presets["tiny"](),
        ResShiftTraining,
        {"train": {"lr": 0.002}},
        ["data.gt_size=48", "model.network.schedule.kappa=1.5"],
    )
    assert run.train.lr == 0.002 and run.data.gt_size == 48 and run.model.network.schedule.kappa == 1.5
    again = run_config_from_dict(tomllib.loads(run.to_toml()), ResShiftTraining)
    assert again == run


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "did you mean 'lr'"),
        ("train.max_steps=1.5", "expected an integer"),
        ('data.degradation="blurry"', "not one of"),
        ("data.flat_crop_psnr=-1", "flat_crop_psnr must be >= 0"),
    ],
)
def test_bad_overrides_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_run_config(RESSHIFT.presets["tiny"](), ResShiftTraining, None, [override])


def test_paper_presets_hold_official_hyperparameters():
    v1 = RESSHIFT.presets["realsr-v1"]()
    assert v1.model.network.schedule.steps == 15 and v1.train.lr == 5e-5 and v1.train.warmup_steps == 5000
    assert v1.train.max_steps == 300_000 and v1.train.ema_decay == 0.999 and v1.data.gt_size == 256
    assert v1.data.pool_batches == 10 and v1.data.degradation == "realesrgan"  # queue_size = 10 x batch
    v3 = RESSHIFT.presets["realsr-v3"]()
    assert (
        v3.model.lpips_weight == 1.0
        and v3.train.lr_schedule == "cosine"
        and v3.model.network.schedule.steps == 4
    )


def test_lr_schedule_warmup_then_cosine():
    f = lr_lambda("cosine", 10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    assert lr_lambda("constant", 0, 10)(5) == 1.0


# --- data ------------------------------------------------------------------------------------------


def test_hr_crops_are_a_pure_function_of_index(tmp_path):
    files = builtin_photos("train")
    assert len(files) >= 5
    a = HRCrops(files, 48, seed=3)
    b = HRCrops(files, 48, seed=3)
    assert torch.equal(a[17], b[17]) and a[17].shape == (3, 48, 48)
    assert not torch.equal(a[17], a[18])
    assert not torch.equal(a[17], HRCrops(files, 48, seed=4)[17])


def test_flat_crops_are_redrawn_from_detailed_images(tmp_path):
    from sr1step.data.datasets import bicubic_round_trip_psnr

    flat, detailed = tmp_path / "flat.png", tmp_path / "detailed.png"
    sky = np.tile(np.linspace(0.4, 0.6, 96, dtype=np.float32)[:, None, None], (1, 96, 3))
    Image.fromarray((sky * 255).round().astype(np.uint8)).save(flat)
    Image.fromarray((natural_image(96) * 255).astype(np.uint8)).save(detailed)
    assert bicubic_round_trip_psnr(sky, 4) > 45 > 35 > bicubic_round_trip_psnr(natural_image(96), 4)

    def flat_share(files, threshold, above=40):
        ds = HRCrops(files, 64, seed=0, flat_psnr=threshold)
        psnrs = [bicubic_round_trip_psnr(ds[i].permute(1, 2, 0).numpy(), 4) for i in range(40)]
        return np.mean([p > above for p in psnrs])

    assert 0.3 < flat_share([flat, detailed], 0) < 0.7  # off: both images, as before
    assert flat_share([flat, detailed], 35) == 0  # a flat draw moves on to the next image
    ds = HRCrops([flat, detailed], 64, seed=0, flat_psnr=35)
    assert torch.equal(ds[7], HRCrops([flat, detailed], 64, seed=0, flat_psnr=35)[7])  # still pure
    # Nothing under the threshold (sky ~59 dB, haze ~40 dB): the least flat draw, haze, is kept.
    haze = tmp_path / "haze.png"
    Image.fromarray(((0.8 * sky + 0.2 * natural_image(96)) * 255).round().astype(np.uint8)).save(haze)
    assert 0.3 < flat_share([flat, haze], 0, above=50) < 0.7
    assert flat_share([flat, haze], 35, above=50) == 0
    # A draw under the threshold is kept, not traded for a more detailed one (haze < 45 dB).
    assert 0.3 < flat_share([haze, detailed], 45, above=37) < 0.7


def test_bad_and_tiny_training_images_are_skipped_with_a_report(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray((natural_image(64) * 255).astype(np.uint8)).save(good)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = HRCrops([good, tmp_path / "tiny.png", tmp_path / "broken.jpg"], 80, seed=0)
    assert ds.files == [good] and len(ds.skipped) == 2
    assert any("too small" in str(w.message) for w in caught) and any(
        "unreadable" in str(w.message) for w in caught
    )
    assert ds[0].shape == (3, 80, 80)  # smaller than the crop: reflect-padded


def test_stream_sampler_interleaves_processes():
    s0, s1 = iter(StreamSampler(100, 0, 2)), iter(StreamSampler(100, 1, 2))
    assert [next(s0) for _ in range(3)] == [100, 102, 104] and [next(s1) for _ in range(3)] == [101, 103, 105]


def test_paired_folder_matching_reports_problems(tmp_path):
    for d in ("HR", "LR"):
        (tmp_path / d).mkdir()
    img = (natural_image(32) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "HR" / "Canon_001_HR.png")
    Image.fromarray(img[::4, ::4]).save(tmp_path / "LR" / "Canon_001_LR4.png")
    Image.fromarray(img).save(tmp_path / "HR" / "orphan.png")
    Image.fromarray(img[::2, ::2]).save(tmp_path / "LR" / "wrong_size.png")
    Image.fromarray(img).save(tmp_path / "HR" / "wrong_size.png")
    Image.fromarray(img[::4, ::4]).save(tmp_path / "LR" / "lonely.png")
    paired = load_paired_folder(tmp_path, 4)
    assert [p.name for p in paired.pairs] == ["Canon_001_LR4"]
    reasons = dict(paired.problems)
    assert "no HR image" in reasons["lonely.png"] and "expected" in reasons["wrong_size.png"]
    assert "without an LR" in reasons["orphan.png"]
    assert pair_key("Canon_001_LR4") == pair_key("Canon_001_HR") == "canon_001"
    assert pair_key("DSC_1454_x4") == pair_key("DSC_1454_x1")


# --- the trainer --------------------------------------------------------------------------------------


def test_short_run_trains_checkpoints_and_exports(tmp_path):
    run = tiny_run(steps=4, validate_every=4)
    result = Trainer(run, RESSHIFT.build_recipe, tmp_path / "run", log=lambda m: None).fit()
    assert result.steps == 4 and not result.interrupted
    losses = [h["generator/mse"] for h in result.history]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert result.validations and np.isfinite(result.validations[-1]["psnr"])
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["checkpoint-0000002", "checkpoint-0000004"]
    assert (tmp_path / "run" / "config.toml").is_file() and (
        result.export_dir / "train_config.toml"
    ).is_file()
    assert any((tmp_path / "run" / "samples").rglob("*.png"))
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))
    gen = RESSHIFT.load_generator(str(result.export_dir))
    out = gen(torch.rand(1, 3, 8, 8), torch.randn(1, gen.noise_channels, 32, 32))
    assert out.shape == (1, 3, 32, 32)


def test_resume_continues_bit_for_bit(tmp_path):
    straight = Trainer(tiny_run(steps=4), RESSHIFT.build_recipe, tmp_path / "a", log=lambda m: None).fit()
    half = Trainer(tiny_run(steps=2), RESSHIFT.build_recipe, tmp_path / "b", log=lambda m: None).fit()
    assert half.steps == 2
    resumed = Trainer(tiny_run(steps=4), RESSHIFT.build_recipe, tmp_path / "b", log=lambda m: None).fit(
        resume="latest"
    )
    assert resumed.steps == 4
    wa, wb = export_weights(straight.export_dir), export_weights(resumed.export_dir)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ca = load_file(
        str(tmp_path / "a" / "checkpoints" / "checkpoint-0000004" / "networks" / "generator.safetensors")
    )
    cb = load_file(
        str(tmp_path / "b" / "checkpoints" / "checkpoint-0000004" / "networks" / "generator.safetensors")
    )
    assert all(torch.equal(ca[k], cb[k]) for k in ca)
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-0000002" / "pool-rank0.pt").is_file()
    assert not list((tmp_path / "b" / "checkpoints").glob(".pool*"))  # staged files moved in
    assert [h["generator/mse"] for h in straight.history[2:]] == [h["generator/mse"] for h in resumed.history]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path, sig):
    run = tiny_run(steps=6, checkpoint_every=100)

    def interrupt(step, logs):
        if step == 2:
            os.kill(os.getpid(), sig)

    result = Trainer(run, RESSHIFT.build_recipe, tmp_path / "r", log=lambda m: None).fit(on_log=interrupt)
    assert result.interrupted and result.steps == 2
    assert (tmp_path / "r" / "checkpoints" / "checkpoint-0000002").is_dir()
    assert not (tmp_path / "r" / "export").exists()
    done = Trainer(run, RESSHIFT.build_recipe, tmp_path / "r", log=lambda m: None).fit(resume="latest")
    assert done.steps == 6 and (tmp_path / "r" / "export" / "unet.safetensors").is_file()


def test_keep_last_checkpoints(tmp_path):
    run = tiny_run(steps=6, checkpoint_every=1, keep_checkpoints=2)
    Trainer(run, RESSHIFT.build_recipe, tmp_path / "k", log=lambda m: None).fit()
    assert sorted(p.name for p in (tmp_path / "k" / "checkpoints").iterdir()) == [
        "checkpoint-0000005",
        "checkpoint-0000006",
    ]


def test_loss_falls(tmp_path):
    """The recipe's loss on fixed held-out batches (fixed t and noise) drops after a short run."""
    run = tiny_run(steps=60, lr=2e-3, log_every=0, checkpoint_every=0, ema_decay=0.0)
    run = resolve_run_config(
        run,
        ResShiftTraining,
        None,
        ['data.degradation="bicubic"', "data.crop_pad_size=32", "train.batch_size=4"],
    )
    trainer = Trainer(run, RESSHIFT.build_recipe, tmp_path / "l", log=lambda m: None)
    held_out = [trainer._next_batch(trainer._loader(10_000), 10_000, i) for i in range(4)]

    def eval_loss():
        total = 0.0
        with torch.no_grad():
            for i, batch in enumerate(held_out):
                torch.manual_seed(i)
                total += trainer.recipe.loss("generator", batch, {})[0].item()
        return total / len(held_out)

    before = eval_loss()
    trainer.fit()
    after = eval_loss()
    assert after < 0.97 * before, (before, after)


# --- CLI -----------------------------------------------------------------------------------------------


def test_cli_train_then_upscale(tmp_path):
    out = tmp_path / "cli"
    args = [
        "train",
        "--method",
        "resshift",
        "--preset",
        "tiny",
        "--output",
        str(out),
        "--max-steps",
        "2",
        "--device",
        "cpu",
        "--set",
        "train.batch_size=2",
        "--set",
        "data.gt_size=32",
        "--set",
        "data.crop_pad_size=32",
        "--set",
        "train.validate_every=0",
        "--set",
        "data.val_count=1",
        "--set",
        "data.val_size=32",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"exported weights: {out / 'export'}" in result.output.replace("\n", "")
    assert runner.invoke(app, args).exit_code == 2  # checkpoints exist and no --resume
    src = tmp_path / "lr.png"
    Image.fromarray((natural_image(16) * 255).astype(np.uint8)).save(src)
    up = runner.invoke(
        app,
        ["upscale", str(src), str(tmp_path / "up"), "--method", "resshift", "--weights", str(out / "export")],
    )
    assert up.exit_code == 0, up.output
    assert Image.open(tmp_path / "up" / "lr.png").size == (64, 64)


def test_an_interrupted_training_exits_130_like_a_shell_command(tmp_path, monkeypatch):
    from sr1step.training.trainer import TrainResult

    monkeypatch.setattr(
        Trainer, "fit", lambda self, **kw: TrainResult(tmp_path / "run" / "export", 3, interrupted=True)
    )
    args = ["train", "-m", "resshift", "-p", "tiny", "-o", str(tmp_path / "run"), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--set", "data.gt_size=32", "--set", "data.crop_pad_size=32"])
    assert result.exit_code == 130, result.output
    assert "exported weights" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--method", "bicubic"], "no training recipe"),
        (["distill", "--method", "sinsr", "--teacher", "resshift"], "(inference only)"),
        (["train", "--method", "rsd"], "sr1step distill"),
        (["train", "--method", "resshift", "--preset", "tinny"], "did you mean 'tiny'"),
        (["distill", "--method", "resshift", "--teacher", "x"], "sr1step train"),
        (["train", "--method", "resshift", "--preset", "tiny", "--set", "train.nope=1"], "unknown key"),
        (["train", "-m", "resshift", "-p", "tiny", "--set", "data.gt_size=63"], "multiple of data.scale"),
        (["train", "-m", "resshift", "-p", "tiny", "--set", "data.gt_size=36", "--device", "cpu"], "e.g. 40"),
        (["train", "-m", "resshift", "-p", "tiny", "--max-steps", "0"], "train.max_steps must be >= 1"),
        (["train", "-m", "resshift", "-p", "tiny", "--max-steps", "-5"], "train.max_steps must be >= 1"),
    ],
)
def test_cli_train_usage_errors(tmp_path, args, message):
    result = runner.invoke(app, args + ["--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o" / "export").exists()


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on CPU): DDP-wrapped networks, one export."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29577",
        "-m",
        "sr1step.cli",
        "train",
        "--method",
        "resshift",
        "--preset",
        "tiny",
        "--output",
        str(out),
        "--max-steps",
        "3",
        "--device",
        "cpu",
        "--set",
        "train.batch_size=2",
        "--set",
        "data.gt_size=32",
        "--set",
        "data.crop_pad_size=32",
        "--set",
        "train.validate_every=0",
        "--set",
        "data.val_count=1",
        "--set",
        "data.val_size=32",
        "--set",
        'data.degradation="realesrgan"',
        "--set",
        "data.pool_batches=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("exported weights") == 1
    assert (out / "export" / "unet.safetensors").is_file() and (
        out / "checkpoints" / "checkpoint-0000003"
    ).is_dir()
    assert sorted(p.name for p in (out / "checkpoints" / "checkpoint-0000003").glob("pool-*")) == [
        "pool-rank0.pt",
        "pool-rank1.pt",
    ]


def test_cli_values_arrive_as_typed_not_as_toml_text(tmp_path):
    # A Windows path with a backslash and a quote: once it was wrapped in TOML quotes and mangled.
    odd = 'D:\\data "set"'
    run = RESSHIFT.run_config("train", "tiny", None, [], {"data": {"train": odd}, "train": {"max_steps": 7}})
    assert run.data.train == odd and run.train.max_steps == 7
    out = tmp_path / "o"
    result = runner.invoke(
        app, ["train", "-m", "resshift", "-p", "tiny", "-o", str(out), "--data", odd, "--print-config"]
    )
    assert result.exit_code == 0, result.output
    import tomllib

    assert tomllib.loads(result.output)["data"]["train"] == odd


def test_training_device_names_are_the_upscale_ones(tmp_path):
    # cuda:N is a device name like any other: refused here only because no GPU is present.
    run = tiny_run(steps=1, device="cuda:0")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        Trainer(run, RESSHIFT.build_recipe, tmp_path / "d", log=lambda m: None)
    with pytest.raises(ValueError, match="unknown device"):
        Trainer(tiny_run(steps=1, device="tpu7"), RESSHIFT.build_recipe, tmp_path / "e", log=lambda m: None)


def test_resume_latest_skips_a_damaged_checkpoint_and_names_the_file(tmp_path):
    run = tiny_run(steps=4, checkpoint_every=2)
    Trainer(run, RESSHIFT.build_recipe, tmp_path / "c", log=lambda m: None).fit()
    newest = tmp_path / "c" / "checkpoints" / "checkpoint-0000004"
    data = (newest / "optimizers.pt").read_bytes()
    (newest / "optimizers.pt").write_bytes(data[: len(data) // 3])  # truncated
    messages = []
    trainer = Trainer(
        tiny_run(steps=5, checkpoint_every=2), RESSHIFT.build_recipe, tmp_path / "c", log=messages.append
    )
    result = trainer.fit(resume="latest")
    assert result.steps == 5 and any("optimizers.pt" in m and "checkpoint-0000004" in m for m in messages)
    assert any("resumed from" in m and "checkpoint-0000002" in m for m in messages)
    # a damaged trainer.json, resumed by path: one line naming the file, exit code 1
    bad = tmp_path / "c" / "checkpoints" / "checkpoint-0000002"
    (bad / "trainer.json").write_text("{not json")
    args = [
        "train",
        "-m",
        "resshift",
        "-p",
        "tiny",
        "-o",
        str(tmp_path / "c"),
        "--resume",
        str(bad),
        "--device",
        "cpu",
    ]
    out = runner.invoke(app, args)
    flat = " ".join(out.output.split())
    assert out.exit_code == 1 and "trainer.json is unreadable" in flat and "Traceback" not in out.output


@pytest.mark.parametrize("content", ["empty", "unreadable"])
def test_train_on_unusable_data_says_why_in_one_line(tmp_path, content):
    data = tmp_path / "data"
    data.mkdir()
    if content == "unreadable":
        (data / "a.png").write_bytes(b"not a png")
        (data / "b.jpg").write_bytes(b"\xff\xd8 broken")
    args = [
        "train",
        "-m",
        "resshift",
        "-p",
        "tiny",
        "-o",
        str(tmp_path / "o"),
        "--data",
        str(data),
        "--device",
        "cpu",
    ]
    args += ["--set", "data.val=''"]
    result = runner.invoke(app, args)
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in result.output and "warnings above" not in flat
    if content == "empty":
        assert "no training images" in flat
    else:
        assert "all 2 files were skipped" in flat and "a.png: unreadable" in flat
        assert "UserWarning" not in result.output and "skipping training image" in flat


def test_exported_weights_are_the_moving_average(tmp_path):
    weights = {}
    for name, steps, train in [
        ("init", 1, dict(lr=1e-30)),  # a step that does not move the weights
        ("raw", 3, dict(ema_decay=0.0)),
        ("ema", 3, dict(ema_decay=0.9)),
    ]:
        run = tiny_run(steps=steps, checkpoint_every=0, **train)
        result = Trainer(run, RESSHIFT.build_recipe, tmp_path / name, log=lambda m: None).fit()
        weights[name] = export_weights(result.export_dir)

    def dist(a, b):
        return sum((weights[a][k].float() - weights[b][k].float()).norm() ** 2 for k in weights[a]) ** 0.5

    # the average trails the raw weights: it has moved from the start, but less far than they have
    assert 0 < dist("ema", "raw") and 0 < dist("ema", "init") < dist("raw", "init")


@pytest.mark.parametrize("decay", [0.9, 0.995])
def test_the_configured_ema_decay_is_the_one_used(tmp_path, decay):
    trainer = Trainer(
        tiny_run(steps=1, ema_decay=decay), RESSHIFT.build_recipe, tmp_path / "e", log=lambda m: None
    )
    # diffusers caps the decay at (1 + s) / (10 + s) early on; past that the setting rules
    assert trainer.ema.decay == decay and trainer.ema.get_decay(100_000) == pytest.approx(decay)
    assert trainer.ema.get_decay(5) == pytest.approx(min(decay, 5 / 14))
