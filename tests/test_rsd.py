"""RSD distillation on a tiny random teacher: initialisation, the distribution-matching term, the
fake model, resume, export and the CLI's refusals."""

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import natural_image
from PIL import Image
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.generators.resshift import ResShiftGenerator
from sr1step.methods.resshift import NETWORKS
from sr1step.methods.rsd import RSD, RSDConfig, RSDRecipe
from sr1step.training.recipe import Batch
from sr1step.training.trainer import Trainer

runner = CliRunner()


@pytest.fixture
def teacher(tmp_path):
    """A random tiny pixel-space teacher saved as a weight folder (its output conv non-zero)."""
    torch.manual_seed(0)
    gen = ResShiftGenerator(NETWORKS["tiny"])
    return gen.save_folder(tmp_path / "teacher", "resshift")


def distill_run(method, teacher, steps=2, overrides=(), values=None):
    """The method's tiny preset on ``teacher``, shrunk to 32 px crops and a few steps on the CPU."""
    settings = [
        f'model.teacher="{teacher}"',
        f"train.max_steps={steps}",
        'train.device="cpu"',
        "train.validate_every=0",
        "train.checkpoint_every=2",
        "train.log_every=1",
        "data.gt_size=32",
        "data.crop_pad_size=32",
        "data.val_count=2",
    ]
    return method.run_config("distill", "tiny", None, [*settings, *overrides], values)


def tiny_run(teacher, steps=2, overrides=(), **values):
    return distill_run(RSD, teacher, steps, overrides, values)


def batch(seed=0, size=32):
    hr = torch.stack([torch.from_numpy(natural_image(size, seed + i)).permute(2, 0, 1) for i in range(2)])
    return Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="bicubic").clamp(0, 1))


def test_student_starts_as_the_teachers_one_step_prediction(teacher):
    recipe = RSDRecipe(tiny_run(teacher))
    teacher_gen = ResShiftGenerator.from_folder(teacher)
    teacher_gen.set_sampling(teacher_gen.config.with_steps(1))
    b = batch()
    noise = torch.randn(2, 3 + 1, 32, 32)  # the student's noise map: one channel more
    with torch.no_grad():
        ours = recipe.student(b.lr, noise)
        ref = teacher_gen(b.lr, noise[:, :3])
    assert recipe.student.config.noise_input and recipe.student.steps == 1
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    # ... and the noise channel is wired: a non-zero weight makes the noise matter
    with torch.no_grad():
        recipe.student.unet.input_blocks[0][0].weight[:, -1].fill_(0.1)
        assert (recipe.student(b.lr, noise) - ref).abs().max() > 1e-3


def _student_grads(recipe, b):
    recipe.bind(recipe.networks())
    recipe.student.unet.zero_grad()
    torch.manual_seed(3)
    loss, logs = recipe.loss("generator", b, {})
    loss.backward()
    return torch.cat([p.grad.flatten() for p in recipe.student.unet.parameters() if p.grad is not None]), logs


def test_distribution_matching_is_zero_when_fake_equals_teacher(teacher):
    only_dm = ["model.perceptual_weight=0.0", "model.gan_weight=0.0"]
    recipe = RSDRecipe(tiny_run(teacher, overrides=only_dm))
    grads, logs = _student_grads(recipe, batch())
    assert "dm" in logs and grads.numel() > 0 and grads.abs().max() == 0  # the fake starts as the teacher
    with torch.no_grad():  # a fake that has moved away gives a gradient
        for p in recipe.fake.unet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    grads, _ = _student_grads(recipe, batch())
    assert grads.abs().max() > 0


def test_distribution_matching_gradient_is_fake_minus_teacher(teacher):
    """A fake whose x0 prediction is the teacher's shifted by a constant d: the gradient on the
    student's x0 is d (normalised) everywhere, so a descent step moves the student away from the
    fake's bias, toward what the teacher predicts."""
    recipe = RSDRecipe(tiny_run(teacher, overrides=["model.perceptual_weight=0.0", "model.gan_weight=0.0"]))
    with torch.no_grad():
        recipe.fake.unet.out[2].bias += 0.5  # the fake starts as the teacher; now it is offset
    zero = torch.zeros(1, 3, 1, 1)
    d = (recipe.schedule.x0_from_output(zero + 0.5, zero) - recipe.schedule.x0_from_output(zero, zero))[
        0, 0
    ].item()
    assert abs(d) == 0.5  # +0.5 for x0 prediction, -0.5 for the residual parameterisation of the tiny net
    z = torch.randn(2, 3, 32, 32)
    x0 = torch.randn(2, 3, 32, 32, requires_grad=True)
    lq = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    recipe.distribution_matching(x0, z, torch.tensor([3, 3]), z, lq).backward()
    assert torch.all(x0.grad * d > 0)
    # |gradient| = |d| / (mean |x0 - teacher x0| per sample) / numel (the mean of the MSE)
    norm = x0.grad.abs().flatten(1).mean(1) * x0[0].numel() / abs(d)
    assert torch.all((norm > 0.1) & (norm < 10))


def test_distribution_matching_draws_below_the_node_and_normalises_per_sample(teacher):
    """The reference computation of the DM gradient: fake and teacher are queried at one z_s drawn
    at t_s in 0..t_node-1, and (fake - teacher) is divided by each sample's own mean |x0 - teacher|."""
    recipe = RSDRecipe(tiny_run(teacher, overrides=["model.perceptual_weight=0.0", "model.gan_weight=0.0"]))
    with torch.no_grad():
        recipe.fake.unet.out[2].bias += 0.5
    calls = []
    real_x0 = recipe.x0

    def recording_x0(net, x_t, t, z_y, lq, noise_map=None):
        out = real_x0(net, x_t, t, z_y, lq, noise_map)
        calls.append((net is recipe.fake.unet, x_t.clone(), t.clone(), out.clone()))
        return out

    recipe.x0 = recording_x0
    z, lq = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    x0 = torch.randn(2, 3, 32, 32) * torch.tensor([1.0, 20.0]).view(2, 1, 1, 1)  # very different scales
    x0.requires_grad_(True)
    t_node = torch.tensor([1, 3])
    seen = set()
    torch.manual_seed(0)
    for _ in range(12):
        calls.clear()
        x0.grad = None
        recipe.distribution_matching(x0, z, t_node, z, lq).backward()
        (is_fake, z_fake, t_fake, f_fake), (is_fake2, z_teacher, t_teacher, f_teacher) = calls
        assert is_fake and not is_fake2 and torch.equal(z_fake, z_teacher) and torch.equal(t_fake, t_teacher)
        assert torch.all(t_fake < t_node) and torch.all(t_fake >= 0)
        seen.update(t_fake[1:].tolist())
        norm = (x0 - f_teacher).abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8
        expected = (f_fake - f_teacher) / norm / x0.numel()
        torch.testing.assert_close(x0.grad, expected, rtol=1e-4, atol=1e-9)
    assert seen == {0, 1, 2}  # every level below the node is drawn


def test_perceptual_term_is_weighted(teacher):
    for weight in (1.0, 2.5):
        recipe = RSDRecipe(
            tiny_run(
                teacher,
                overrides=[
                    "model.dm_weight=0.0",
                    "model.gan_weight=0.0",
                    f"model.perceptual_weight={weight}",
                ],
            )
        )
        recipe.bind(recipe.networks())
        with torch.no_grad():
            loss, logs = recipe.loss("generator", batch(), {})
        assert logs["mse"] > 0 and loss.item() == pytest.approx(weight * logs["mse"], rel=1e-6)


def test_fake_loss_falls_on_a_fixed_student(teacher):
    recipe = RSDRecipe(tiny_run(teacher, overrides=["model.gan_weight=0.0"]))
    recipe.bind(recipe.networks())
    opt = torch.optim.Adam(recipe.fake.parameters(), lr=1e-3)
    b = batch(5)

    def fake_mse(seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            return recipe.loss("fake", b, {})[1]["fake_mse"]

    before = np.mean([fake_mse(s) for s in range(4)])
    for i in range(30):
        torch.manual_seed(100 + i)
        loss, _ = recipe.loss("fake", b, {})
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = np.mean([fake_mse(s) for s in range(4)])
    assert after < 0.8 * before, (before, after)


def same(a, b) -> bool:
    """Exact equality of nested checkpoint states (dicts, lists, tensors, numbers)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def test_resume_equals_straight_and_export_loads(teacher, tmp_path):
    straight = Trainer(tiny_run(teacher, steps=4), RSD.build_recipe, tmp_path / "a", log=lambda m: None).fit()
    Trainer(tiny_run(teacher, steps=2), RSD.build_recipe, tmp_path / "b", log=lambda m: None).fit()
    resumed = Trainer(tiny_run(teacher, steps=4), RSD.build_recipe, tmp_path / "b", log=lambda m: None)
    resumed_result = resumed.fit(resume="latest")
    assert resumed_result.steps == straight.steps == 4
    for name in ("networks/generator.safetensors", "networks/fake.safetensors", "ema.pt", "optimizers.pt"):
        a = tmp_path / "a" / "checkpoints" / "checkpoint-0000004" / name
        b = tmp_path / "b" / "checkpoints" / "checkpoint-0000004" / name
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            sa, sb = load_file(str(a)), load_file(str(b))
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), name
        else:
            assert same(torch.load(a, weights_only=True), torch.load(b, weights_only=True)), name
    # the export is an RSD student: loads by folder, and by card from the converted folder
    student = RSD.load_generator(str(straight.export_dir))
    assert student.steps == 1 and student.config.noise_input
    src = tmp_path / "in.png"
    Image.fromarray((natural_image(16, 1) * 255).astype(np.uint8)).save(src)
    cmd = ["upscale", str(src), str(tmp_path / "o"), "--method", "rsd", "--weights", str(straight.export_dir)]
    assert runner.invoke(app, cmd).exit_code == 0
    assert Image.open(tmp_path / "o" / "in.png").size == (64, 64)


def test_export_loads_through_a_card(teacher, tmp_path, sr1step_home):
    result = Trainer(tiny_run(teacher, steps=1), RSD.build_recipe, tmp_path / "r", log=lambda m: None).fit()
    shutil.copytree(result.export_dir, sr1step_home / "models" / "my-rsd" / "converted")
    cards = sr1step_home / "cards"
    cards.mkdir()
    (cards / "my-rsd.toml").write_text(
        'name = "my-rsd"\nmethod = "rsd"\nsummary = "t"\nscale = 4\nlicense = "test"\n'
        'commercial_use = false\nsource_url = "https://example.org/x"\nfiles = ["unused.pth"]\n'
    )
    student = RSD.load_generator("my-rsd")
    ref = RSD.load_generator(str(result.export_dir))
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), ref.state_dict().values()))


def test_distill_cli_runs_the_tiny_preset(teacher, tmp_path):
    out = tmp_path / "cli"
    args = [
        "distill",
        "-m",
        "rsd",
        "--teacher",
        str(teacher),
        "-p",
        "tiny",
        "-o",
        str(out),
        "--max-steps",
        "1",
    ]
    args += [
        "--device",
        "cpu",
        "--set",
        "data.gt_size=32",
        "--set",
        "data.crop_pad_size=32",
        "--set",
        "data.val_count=1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "export" / "unet.safetensors").is_file() and (
        out / "checkpoints" / "checkpoint-0000001"
    ).is_dir()


@pytest.mark.parametrize(
    "make_teacher, extra, message",
    [
        (lambda p: "sd-turbo", [], "not a ResShift-family"),
        (lambda p: str(p / "missing.pth"), [], "does not exist"),
        (lambda p: str(p), [], "not a ResShift-family"),  # a folder without our config.json
        (lambda p: "TEACHER", ["--set", "data.scale=2"], "must equal the teacher"),
    ],
)
def test_distill_refuses_bad_teachers_before_training(teacher, tmp_path, make_teacher, extra, message):
    spec = make_teacher(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    spec = str(teacher) if spec == "TEACHER" else spec
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["distill", "-m", "rsd", "--teacher", spec, "-p", "tiny", "-o", str(out), "--device", "cpu", *extra],
    )
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not (out / "checkpoints").exists()


def test_presets_hold_the_official_values():
    run = RSD.presets["rsd"]()
    m, t = run.model, run.train
    assert isinstance(m, RSDConfig) and m.teacher == "resshift-realsr-x4-v1" and m.fake_steps == 5
    assert (m.perceptual, m.perceptual_weight, m.gan_weight, m.sid_normalization) == (
        "lpips",
        2.0,
        3e-3,
        True,
    )
    assert (t.lr, t.betas, t.weight_decay, t.lr_schedule, t.ema_decay, t.max_steps) == (
        5e-5,
        (0.9, 0.95),
        0.0,
        "constant",
        0.999,
        3000,
    )
    assert t.batch_size * t.grad_accum == 64 and run.data.gt_size == 256


def test_the_perceptual_term_compares_the_decoded_image_in_0_1_with_the_hr(teacher):
    recipe = RSDRecipe(tiny_run(teacher, overrides=["model.dm_weight=0.0", "model.gan_weight=0.0"]))
    recipe.bind(recipe.networks())
    b = batch()
    seen = []
    decode = recipe.student.autoencoder.decode
    recipe.student.autoencoder.decode = lambda z: seen.append(decode(z)) or seen[-1]
    with torch.no_grad():
        _, logs = recipe.loss("generator", b, {})
    image = (seen[0].clamp(-1, 1) + 1) / 2  # the decoder works in [-1, 1], the HR in [0, 1]
    assert logs["mse"] == pytest.approx(F.mse_loss(image, b.hr).item(), rel=1e-6)
    assert abs(logs["mse"] - F.mse_loss(seen[0].clamp(0, 1), b.hr).item()) > 1e-4  # the range shows
