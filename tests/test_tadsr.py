"""TAD-SR distillation on a tiny random teacher: initialisation, HFSD, the feature tap, the
time-aware discriminator, resume and export."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import natural_image
from PIL import Image
from test_rsd import distill_run, same
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.diffusion.resshift import ResShiftSchedule, ResShiftScheduleConfig
from sr1step.generators.resshift import ResShiftGenerator
from sr1step.methods.resshift import NETWORKS
from sr1step.methods.tadsr import TADSR, TADSRConfig, TADSRRecipe, TimeAwareDiscriminator, hfsd_gradient
from sr1step.nets.resshift_unet import ResShiftUNet
from sr1step.training.recipe import Batch
from sr1step.training.trainer import Trainer

runner = CliRunner()


@pytest.fixture
def teacher(tmp_path):
    torch.manual_seed(0)
    return ResShiftGenerator(NETWORKS["tiny"]).save_folder(tmp_path / "teacher", "resshift")


def tiny_run(teacher, steps=2, overrides=()):
    return distill_run(TADSR, teacher, steps, overrides)


def batch(seed=0, size=32):
    hr = torch.stack([torch.from_numpy(natural_image(size, seed + i)).permute(2, 0, 1) for i in range(2)])
    return Batch(hr=hr, lr=F.interpolate(hr, scale_factor=0.25, mode="bicubic").clamp(0, 1))


def test_student_starts_as_the_teachers_one_step_prediction(teacher):
    recipe = TADSRRecipe(tiny_run(teacher))
    ref = ResShiftGenerator.from_folder(teacher)
    ref.set_sampling(ref.config.with_steps(1))
    b, noise = batch(), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(recipe.student(b.lr, noise), ref(b.lr, noise), atol=0, rtol=0)
    assert recipe.student.steps == 1 and not recipe.student.config.noise_input


def test_teacher_target_is_its_deterministic_chain(teacher):
    recipe = TADSRRecipe(tiny_run(teacher))
    ref = ResShiftGenerator.from_folder(teacher)
    ref.set_sampling(ref.config.__class__(**{**ref.config.__dict__, "sampler": "ddim"}))
    b, noise = batch(1), torch.randn(2, 3, 32, 32)
    z_y, lq, _ = recipe.latents(b)
    with torch.no_grad():
        ours = (recipe.student.autoencoder.decode(recipe.teacher_target(z_y, lq, noise)) + 1) / 2
        torch.testing.assert_close(ours, ref(b.lr, noise), atol=1e-6, rtol=0)


def _constant_teacher(offset: float):
    """A teacher UNet whose output is a constant: its x0 prediction is a point mass."""
    net = ResShiftUNet(NETWORKS["tiny"].unet).eval()
    with torch.no_grad():
        net.out[2].weight.zero_()
        net.out[2].bias.fill_(offset)
    return net


def test_hfsd_is_zero_at_the_teacher_and_pulls_the_student_toward_it():
    sched = ResShiftSchedule(ResShiftScheduleConfig(steps=4, min_noise_level=0.2, latent=False))
    net = _constant_teacher(0.3)
    lq = torch.zeros(2, 3, 16, 16)
    z_y = torch.rand(2, 3, 16, 16) * 2 - 1
    target = sched.x0_from_output(torch.full_like(z_y, 0.3), z_y)  # what the teacher believes x0 is

    def teacher_x0(x, t):
        return sched.x0_from_output(net(x, sched.model_timesteps(t), lq), z_y)

    t, noise = torch.tensor([0, 0]), torch.randn_like(z_y)
    x_target = sched.q_sample(target, z_y, t, noise)
    g = hfsd_gradient(sched, teacher_x0, x_target.clone(), x_target, z_y, t)
    assert torch.count_nonzero(g) == 0
    # A student above the teacher's output gets a positive gradient (descent moves it down), and
    # one below a negative gradient.
    for delta in (0.2, -0.2):
        student = target + delta
        x_s = sched.q_sample(student, z_y, t, noise)
        g = hfsd_gradient(sched, teacher_x0, x_s, x_target, z_y, t)
        assert torch.all(g * delta > 0)
        z = student.clone().requires_grad_(True)
        (g * z).mean().backward()
        torch.testing.assert_close(z.grad * z.numel(), g)  # the loss's gradient is g itself
        stepped = z.detach() - 0.1 * g
        assert (stepped - target).abs().mean() < (student - target).abs().mean()


def test_feature_tap_leaves_the_unet_unchanged():
    torch.manual_seed(0)
    net = ResShiftUNet(NETWORKS["tiny"].unet).eval()
    keys = list(net.state_dict())
    x, lq, t = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.tensor([1, 3])
    with torch.no_grad():
        before = net(x, t, lq)
        feats = net.encoder_features(x, t, lq)
        after = net(x, t, lq)
        # the original forward, written out: input blocks, middle, output blocks with skips
        emb = net.time_embed(
            __import__("sr1step.nets.resshift_unet", fromlist=["x"]).timestep_embedding(t, 32)
        )
        h, hs = torch.cat([x, lq], 1), []
        for block in net.input_blocks:
            h = block(h, emb)
            hs.append(h)
        mid = net.middle_block(h, emb)
        h = mid
        for block in net.output_blocks:
            h = block(torch.cat([h, hs.pop()], 1), emb)
        manual = net.out(h)
    assert torch.equal(before, after) and torch.equal(before, manual)
    assert list(net.state_dict()) == keys
    assert torch.equal(feats[-1], mid)
    assert [f.shape[1] for f in feats] == net.feature_channels == [32, 64, 64]
    assert [f.shape[-1] for f in feats] == [16, 8, 8]


def test_discriminator_loss_falls_when_real_and_fake_differ():
    torch.manual_seed(0)
    disc = TimeAwareDiscriminator([8, 16], embed_dim=16, c_dim=8)
    real = [torch.randn(4, 8, 8, 8) + 1.0, torch.randn(4, 16, 4, 4) + 1.0]
    fake = [torch.randn(4, 8, 8, 8) - 1.0, torch.randn(4, 16, 4, 4) - 1.0]
    t = torch.tensor([0, 1, 2, 1])
    opt = torch.optim.AdamW(disc.parameters(), lr=3e-3)

    def d_loss():
        logits_r, logits_f = disc(real, t), disc(fake, t)
        return F.relu(1 - logits_r).mean() + F.relu(1 + logits_f).mean()

    with torch.no_grad():
        first = d_loss().item()
    assert first == pytest.approx(2.0)  # the zero-initialised convs make every logit 0 at the start
    for _ in range(40):
        opt.zero_grad()
        loss = d_loss()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_discriminator_times_shared_noise_and_the_hfsd_surrogate(teacher, monkeypatch):
    """t_d ~ U{0..disc_max_timestep} in both phases, real and fake noised alike; HFSD noises the
    student's output and its target with the same noise, so only their difference is scored."""
    from sr1step.methods import tadsr

    recipe = TADSRRecipe(tiny_run(teacher))
    recipe.bind(recipe.networks())
    seen = {"discriminator": set(), "generator": set()}
    phase = ["discriminator"]
    real_features = recipe.teacher_features

    def features(x0, z_y, lq, t, noise):
        seen[phase[0]].update(t.tolist())
        if phase[0] == "discriminator":  # real and fake halves: same t, same noise
            b = x0.shape[0] // 2
            assert torch.equal(t[:b], t[b:]) and torch.equal(noise[:b], noise[b:])
        return real_features(x0, z_y, lq, t, noise)

    sampled, pairs = [], []
    real_q_sample, real_hfsd = recipe.schedule.q_sample, tadsr.hfsd_gradient

    def q_sample(x0, y, t, noise):
        out = real_q_sample(x0, y, t, noise)
        sampled.append((out, noise))
        return out

    def hfsd(schedule, teacher_x0, x_s, x_r, *args):
        noise = {id(out): n for out, n in sampled}
        pairs.append((noise[id(x_s)], noise[id(x_r)]))
        return real_hfsd(schedule, teacher_x0, x_s, x_r, *args)

    monkeypatch.setattr(recipe, "teacher_features", features)
    monkeypatch.setattr(recipe.schedule, "q_sample", q_sample)
    monkeypatch.setattr(tadsr, "hfsd_gradient", hfsd)
    b = batch()
    torch.manual_seed(0)
    with torch.no_grad():
        for name in ["discriminator"] * 12 + ["generator"] * 12:
            phase[0] = name
            recipe.loss(name, b, {})
    top = recipe.cfg.disc_max_timestep
    assert seen["discriminator"] == seen["generator"] == set(range(top + 1))
    assert len(pairs) == 12 and all(torch.equal(a, b) for a, b in pairs)
    # the HFSD term is the mean of (direction * student output): a surrogate whose gradient is the
    # direction / numel; with a direction of ones it is the student output's mean
    students = []
    real_student_x0 = recipe.student_x0
    monkeypatch.setattr(recipe, "student_x0", lambda *a: students.append(real_student_x0(*a)) or students[-1])
    monkeypatch.setattr(tadsr, "hfsd_gradient", lambda schedule, teacher_x0, x_s, *a: torch.ones_like(x_s))
    with torch.no_grad():
        logs = recipe.loss("generator", b, {})[1]
    assert logs["hfsd"] == pytest.approx(students[-1].float().mean().item(), rel=1e-6)


def test_the_discriminator_is_taught_that_hr_latents_are_real_and_student_outputs_fake(teacher, monkeypatch):
    recipe = TADSRRecipe(tiny_run(teacher))
    recipe.bind(recipe.networks())
    disc = recipe.wrapped["discriminator"]
    torch.manual_seed(1)
    with torch.no_grad():  # away from the zero-initialised start, where every logit is 0
        for p in disc.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    monkeypatch.setattr(recipe, "student_x0", lambda net, z_y, *a: torch.full_like(z_y, -0.5))
    seen, logits = [], []
    real_features, real_forward = recipe.teacher_features, disc.forward
    monkeypatch.setattr(recipe, "teacher_features", lambda x0, *a: seen.append(x0) or real_features(x0, *a))
    disc.forward = lambda feats, t: logits.append(real_forward(feats, t)) or logits[-1]
    with torch.no_grad():
        loss, logs = recipe.loss("discriminator", batch(), {})
    x0, out, b = seen[0], logits[0].float(), 2
    fake = torch.full_like(x0[b:], -0.5)
    assert torch.equal(x0[b:], fake) and not torch.equal(x0[:b], fake)  # second half: the student's
    expected = F.relu(1 - out[:b]).mean() + F.relu(1 + out[b:]).mean()
    swapped = F.relu(1 - out[b:]).mean() + F.relu(1 + out[:b]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert abs(swapped.item() - expected.item()) > 1e-3  # the halves can be told apart
    assert logs["d_real"] == pytest.approx(out[:b].mean().item(), rel=1e-6, abs=1e-7)


def test_the_student_loss_weighs_each_term_by_its_setting(teacher):
    weights = ["model.mse_weight=3.0", "model.hfsd_weight=0.5", "model.gan_weight=0.25"]
    recipe = TADSRRecipe(tiny_run(teacher, overrides=weights))
    recipe.bind(recipe.networks())
    torch.manual_seed(0)
    with torch.no_grad():
        loss, logs = recipe.loss("generator", batch(), {})
    assert {"mse", "hfsd", "gan"} <= set(logs) and logs["mse"] > 0
    expected = 3.0 * logs["mse"] + 0.5 * logs["hfsd"] + 0.25 * logs["gan"]
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_official_quirks_are_switches(teacher):
    paper = TADSRRecipe(tiny_run(teacher))
    official = TADSRRecipe(
        tiny_run(
            teacher, overrides=["model.official_uniform_noise=true", "model.official_double_scaling=true"]
        )
    )
    x = torch.zeros(10_000)
    assert paper._noise(x).min() < 0 and official._noise(x).min() >= 0  # N(0, 1) vs U[0, 1)
    for recipe in (paper, official):
        recipe.bind(recipe.networks())
    b = batch(2)
    logs = []
    for recipe in (paper, official):
        torch.manual_seed(0)
        with torch.no_grad():
            logs.append(recipe.loss("generator", b, {})[1]["hfsd"])
    assert logs[0] != logs[1]


def test_resume_equals_straight_and_export_loads(teacher, tmp_path):
    straight = Trainer(
        tiny_run(teacher, steps=4), TADSR.build_recipe, tmp_path / "a", log=lambda m: None
    ).fit()
    Trainer(tiny_run(teacher, steps=2), TADSR.build_recipe, tmp_path / "b", log=lambda m: None).fit()
    Trainer(tiny_run(teacher, steps=4), TADSR.build_recipe, tmp_path / "b", log=lambda m: None).fit(
        resume="latest"
    )
    from safetensors.torch import load_file

    for name in ("generator", "discriminator"):
        a = load_file(
            str(tmp_path / "a" / "checkpoints" / "checkpoint-0000004" / "networks" / f"{name}.safetensors")
        )
        b = load_file(
            str(tmp_path / "b" / "checkpoints" / "checkpoint-0000004" / "networks" / f"{name}.safetensors")
        )
        assert same(a, b), name
    for name in ("ema.pt", "optimizers.pt"):
        a = torch.load(tmp_path / "a" / "checkpoints" / "checkpoint-0000004" / name, weights_only=True)
        b = torch.load(tmp_path / "b" / "checkpoints" / "checkpoint-0000004" / name, weights_only=True)
        assert same(a, b), name
    student = TADSR.load_generator(str(straight.export_dir))
    assert student.steps == 1
    src = tmp_path / "in.png"
    Image.fromarray((natural_image(16, 1) * 255).astype(np.uint8)).save(src)
    cmd = [
        "upscale",
        str(src),
        str(tmp_path / "o"),
        "--method",
        "tadsr",
        "--weights",
        str(straight.export_dir),
    ]
    assert runner.invoke(app, cmd).exit_code == 0
    assert Image.open(tmp_path / "o" / "in.png").size == (64, 64)


def test_presets_hold_the_official_values():
    run = TADSR.presets["tadsr"]()
    m, t = run.model, run.train
    assert isinstance(m, TADSRConfig) and m.teacher == "resshift-realsr-x4-v1"
    assert (m.mse_weight, m.hfsd_weight, m.gan_weight, m.hfsd_timesteps, m.disc_max_timestep) == (
        1.0,
        1.0,
        0.02,
        (0, 1, 2),
        13,
    )
    assert (m.disc_c_dim, m.disc_embed_dim, m.official_uniform_noise, m.official_double_scaling) == (
        64,
        160,
        False,
        False,
    )
    assert (t.lr, t.weight_decay, t.warmup_steps, t.ema_decay, t.max_steps) == (
        5e-5,
        0.0,
        5000,
        0.999,
        30_000,
    )
