"""Mutation sweep: a test that cannot fail is worse than none. Each mutant below is a plausible
bug (a sign, a range end, a weight, a shared noise, a scale); the sweep applies one at a time,
runs the tests named beside it, restores the file, and reports mutants that no test killed.

    python tests/mutation_sweep.py            # all (about 13 minutes on 2 cores)
    python tests/mutation_sweep.py 3 17       # by index

Exit status 1 when a mutant survives. Not part of the pytest run (it edits the source tree:
run it on a clean checkout, never alongside other work). Equivalent mutants (no behaviour
change, e.g. the t = 0 entry of the clipped posterior variance, which sampling never reads) are
left out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
    file: str
    old: str
    new: str
    tests: str


MUTANTS = [
    Mutant("src/sr1step/losses.py", "/ (4 * math.sqrt(2))", "/ 4", "tests/test_d3sr.py"),
    Mutant(
        "src/sr1step/losses.py",
        "sobel_magnitude(x_hat), sobel_magnitude(x))",
        "sobel_magnitude(x_hat), sobel_magnitude(x_hat))",
        "tests/test_d3sr.py",
    ),
    Mutant(
        "src/sr1step/losses.py",
        "F.relu(1 + fake).mean()",
        "F.relu(1 - fake).mean()",
        "tests/test_d3sr.py tests/test_tadsr.py tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/losses.py",
        "return F.softplus(-fake).mean()",
        "return F.softplus(fake).mean()",
        "tests/test_d3sr.py tests/test_tadsr.py tests/test_rsd.py",
    ),
    Mutant("src/sr1step/diffusion/resshift.py", "/ (steps - 1))", "/ steps)", "tests/test_resshift.py"),
    Mutant(
        "src/sr1step/diffusion/resshift.py",
        "x0 + self._at(self.etas, t, x0) * (y - x0)",
        "x0 + self._at(self.sqrt_etas, t, x0) * (y - x0)",
        "tests/test_resshift.py tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/diffusion/resshift.py",
        "* self.kappa * 3 + 1)",
        "* self.kappa * 2 + 1)",
        "tests/test_resshift.py tests/test_compact.py",
    ),
    Mutant(
        "src/sr1step/diffusion/resshift.py",
        "etas_prev - np.sqrt(etas_prev * etas))",
        "etas_prev + np.sqrt(etas_prev * etas))",
        "tests/test_resshift.py tests/test_tadsr.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        "q = (src * 255).round().clamp(0, 255) / 255",
        "q = src",
        "tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        "out[i] = x[i] + noise.expand_as(x[i]) * float(scale[i])",
        "out[i] = x[i] + noise.expand_as(x[i]) * float(scale[i]) * 0.5",
        "tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        "mono = torch.randn(b, 1, h, w, generator=g, device=x.device, dtype=x.dtype).expand(b, c, h, w)",
        "mono = torch.randn(b, c, h, w, generator=g, device=x.device, dtype=x.dtype)",
        "tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/data/datasets.py",
        "side = max(min(h, w), self.crop) if self.rescale else self.crop",
        "side = self.crop",
        "tests/test_training.py tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/colorfix.py",
        "return (content - c_mean) / c_std * r_std + r_mean",
        "return (content - c_mean) / c_std * r_std + c_mean",
        "tests/test_engine.py",
    ),
    Mutant(
        "src/sr1step/methods/tadsr.py",
        "return torch.nan_to_num(eps[0] - eps[1])",
        "return torch.nan_to_num(eps[1] - eps[0])",
        "tests/test_tadsr.py",
    ),
    Mutant(
        "src/sr1step/methods/rsd.py",
        "grad = f_fake - f_teacher",
        "grad = f_teacher - f_fake",
        "tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/methods/rsd.py",
        "t_s = (torch.rand(t_node.shape, device=t_node.device) * t_node).long()",
        "t_s = t_node.clone()",
        "tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/methods/rsd.py",
        "(x0_node - f_teacher).abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)",
        "(x0_node - f_teacher).abs().mean() + 1e-8)",
        "tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/training/trainer.py",
        "return (step + 1) / warmup",
        "return step / warmup",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/training/trainer.py",
        "0.5 * (1 + math.cos(math.pi * progress))",
        "0.5 * (1 + math.cos(0.5 * math.pi * progress))",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/training/checkpoint.py",
        "for old in _checkpoints(root)[:-keep] if keep > 0 else []:",
        "for old in _checkpoints(root)[:-keep - 1] if keep > 0 else []:",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/training/checkpoint.py",
        '        torch.save(ema.state_dict(), tmp / "ema.pt")',
        "        pass",
        "tests/test_training.py tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/methods/tadsr.py",
        "t_d = torch.randint(0, self.cfg.disc_max_timestep + 1, (b,), device=z0.device)",
        "t_d = torch.randint(0, self.cfg.disc_max_timestep, (b,), device=z0.device)",
        "tests/test_tadsr.py",
    ),
    Mutant(
        "src/sr1step/methods/tadsr.py",
        "x_r = s.q_sample(reference, z_y, t_h, noise)",
        "x_r = s.q_sample(reference, z_y, t_h, torch.randn_like(noise))",
        "tests/test_tadsr.py",
    ),
    Mutant(
        "src/sr1step/nets/diffusion_discriminator.py",
        "return torch.randint(self.config.t_min, self.config.t_max + 1, (batch,), device=device)",
        "return torch.randint(self.config.t_min, self.config.t_max, (batch,), device=device)",
        "tests/test_d3sr.py",
    ),
    Mutant(
        "src/sr1step/nets/diffusion_discriminator.py",
        "return abar.sqrt() * latents + (1 - abar).sqrt() * noise",
        "return abar * latents + (1 - abar).sqrt() * noise",
        "tests/test_d3sr.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        "k = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)",
        "k = cutoff * torch.special.bessel_j0(cutoff * safe) / (2 * math.pi * safe)",
        "tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        "return jpeg(x.clamp(0, 1), q)",
        "return jpeg(x.clamp(0, 1), q * 0 + 95)",
        "tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        'hr, size=(h // self.scale, w // self.scale), mode="bicubic", antialias=True, align_corners=False',
        'hr, size=(h // self.scale, w // self.scale), mode="bicubic", antialias=False, align_corners=False',
        "tests/test_degradations.py tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/colorfix.py",
        "return content - wavelet_lowpass(content, levels) + wavelet_lowpass(reference, levels)",
        "return content - wavelet_lowpass(content, levels - 1) + wavelet_lowpass(reference, levels - 1)",
        "tests/test_engine.py",
    ),
    Mutant(
        "src/sr1step/tiling.py",
        "ramp = 0.5 - 0.5 * torch.cos(math.pi * ((d - margin + 0.5) / width).clamp(0, 1))",
        "ramp = ((d - margin + 0.5) / width).clamp(0, 1)",
        "tests/test_engine.py",
    ),
    Mutant(
        "src/sr1step/engine.py",
        'ref = F.interpolate(lr.to(out.device).float(), scale_factor=s, mode="bicubic").clamp(0, 1)',
        'ref = F.interpolate(lr.to(out.device).float(), scale_factor=s, mode="nearest").clamp(0, 1)',
        "tests/test_engine.py tests/test_cli.py",
    ),
    Mutant(
        "src/sr1step/api.py",
        "interp = cv2.INTER_LANCZOS4 if target[0] > sr.shape[1] else cv2.INTER_AREA",
        "interp = cv2.INTER_NEAREST",
        "tests/test_api.py tests/test_cli.py",
    ),
    Mutant(
        "src/sr1step/data/datasets.py",
        "if self.flip and rng.random() < 0.5:",
        "if self.flip and rng.random() < 0.0:",
        "tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/imageio.py",
        "return (np.clip(pixels, 0, 1) * np.iinfo(dtype).max + 0.5).astype(dtype)",
        "return (np.clip(pixels, 0, 1) * np.iinfo(dtype).max).astype(dtype)",
        "tests/test_imageio.py tests/test_cli.py",
    ),
    Mutant(
        "src/sr1step/imageio.py",
        "6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],",
        "6: lambda a: np.swapaxes(a, 0, 1)[::-1],",
        "tests/test_imageio.py",
    ),
    Mutant(
        "src/sr1step/imageio.py",
        "return array.astype(np.float32) / 65535.0, 16",
        "return array.astype(np.float32) / 65536.0, 16",
        "tests/test_imageio.py",
    ),
    Mutant(
        "src/sr1step/imageio.py",
        "rgb = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]",
        "rgb = rgb.mean(axis=2, keepdims=True)",
        "tests/test_imageio.py tests/test_cli.py",
    ),
    Mutant(
        "src/sr1step/upscale.py",
        "if target.resolve() in inputs:",
        "if target in inputs:",
        "tests/test_cli.py",
    ),
    Mutant(
        "src/sr1step/benchmark/__init__.py",
        "[asdict(ref), e.dtype, e.tile, e.tile_overlap, e.color_fix, e.seed, str(opts.device.type)]",
        "[asdict(ref), e.dtype, e.tile, e.tile_overlap, e.color_fix, str(opts.device.type)]",
        "tests/test_benchmark.py",
    ),
    Mutant("src/sr1step/methods/d3sr.py", "loss = w.mse_weight * mse", "loss = mse", "tests/test_d3sr.py"),
    Mutant(
        "src/sr1step/methods/d3sr.py",
        "torch.cat([t, t]), torch.cat([noise, noise])",
        "torch.cat([t, t]), torch.cat([noise, -noise])",
        "tests/test_d3sr.py",
    ),
    Mutant(
        "src/sr1step/methods/d3sr.py",
        "gen.vae.encode(batch.hr.to(z_hat.dtype) * 2 - 1).latent_dist.mode() * gen.scaling_factor",
        "gen.vae.encode(batch.hr.to(z_hat.dtype) * 2 - 1).latent_dist.mode()",
        "tests/test_d3sr.py",
    ),
    Mutant(
        "src/sr1step/download.py",
        "expected = sha256 or _recorded(dest).get(dest.name)",
        "expected = sha256",
        "tests/test_download.py",
    ),
    Mutant(
        "src/sr1step/data/datasets.py",
        "if score <= self.flat_psnr:",
        "if score < 0:",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/methods/tadsr.py",
        "hfsd = (g * z0_s.float()).mean()",
        "hfsd = (g * z0_s.float()).sum()",
        "tests/test_tadsr.py",
    ),
    Mutant(
        "src/sr1step/methods/rsd.py",
        "loss = loss + cfg.perceptual_weight * perc",
        "loss = loss + perc",
        "tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/training/trainer.py",
        "self.ema.step(self.ema_params())",
        "pass",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/colorfix.py",
        "c_std = (content.var(dim=(2, 3), keepdim=True) + eps).sqrt()",
        "c_std = (content.var(dim=(2, 3), keepdim=True) + eps)",
        "tests/test_engine.py",
    ),
    Mutant(
        "src/sr1step/engine.py",
        "out = out[..., : h * s, : w * s].float().clamp_(0, 1)",
        "out = out[..., : h * s, : w * s].float()",
        "tests/test_engine.py",
    ),
    Mutant(
        "src/sr1step/tiling.py",
        "    margin = overlap // 4",
        "    margin = overlap // 8",
        "tests/test_engine.py",
    ),
    # Second sweep (issue 28): behaviours the first 50 did not reach, and this stop's fixes.
    Mutant(
        "src/sr1step/diffusion/resshift.py",
        "noise[:, c * (i + 1) : c * (i + 2)]",
        "noise[:, c * i : c * (i + 1)]",
        "tests/test_pinned.py tests/test_resshift.py",
    ),
    Mutant(
        "src/sr1step/nets/resshift_unet.py",
        "torch.cat([torch.cos(args), torch.sin(args)], dim=-1)",
        "torch.cat([torch.sin(args), torch.cos(args)], dim=-1)",
        "tests/test_pinned.py tests/test_resshift.py",
    ),
    Mutant(
        "src/sr1step/data/degradations.py",
        "(0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])",
        "(0.2126 * x[:, 0] + 0.7152 * x[:, 1] + 0.0722 * x[:, 2])",
        "tests/test_pinned.py tests/test_degradations.py",
    ),
    Mutant(
        "src/sr1step/methods/d3sr.py",
        "d_loss(logits[:b], logits[b:], self.losses.gan_loss)",
        "d_loss(logits[b:], logits[:b], self.losses.gan_loss)",
        "tests/test_d3sr.py",
    ),
    Mutant(
        "src/sr1step/methods/rsd.py",
        "(self.student.autoencoder.decode(x0_one).clamp(-1, 1) + 1) / 2",
        "self.student.autoencoder.decode(x0_one).clamp(0, 1)",
        "tests/test_rsd.py",
    ),
    Mutant(
        "src/sr1step/training/trainer.py",
        "EMAModel(self.ema_params(), decay=cfg.ema_decay)",
        "EMAModel(self.ema_params(), decay=0.999)",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/metrics/detail.py",
        "[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]",
        "[[1.0, 1.0, 1.0], [1.0, -8.0, 1.0], [1.0, 1.0, 1.0]]",
        "tests/test_eval_degradations.py",
    ),
    Mutant(
        "src/sr1step/data/eval_degradations.py",
        "interpolation=cv2.INTER_AREA",
        "interpolation=cv2.INTER_LINEAR",
        "tests/test_eval_degradations.py",
    ),
    Mutant(
        "src/sr1step/benchmark/__init__.py",
        "+ ([weights_fingerprint(ref.weights)] if ref.weights else [])",
        "+ []",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/benchmark/__init__.py",
        "have = self.scores.get(image, {}) if self.content.get(image) == content else {}",
        "have = self.scores.get(image, {})",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/weights.py",
        "    check_finite(state, path)\n    return state",
        "    return state",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/engine.py",
        "check_finite_output(out[..., : h * s, : w * s].float())",
        "out[..., : h * s, : w * s].float()",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/api.py",
        "values = x.detach().float() / top if top else x.detach().float()",
        "values = x.detach().float()",
        "tests/test_reliability.py tests/test_api.py",
    ),
    Mutant(
        "src/sr1step/imageio.py",
        "and head[25] == 4  # colour type 4",
        "and head[25] == 6  # colour type 4",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/upscale.py",
        "list_images(input_path, options.recursive, skip_written=True)",
        "list_images(input_path, options.recursive)",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/training/checkpoint.py",
        "        shutil.rmtree(tmp, ignore_errors=True)\n        full =",
        "        full =",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/training/checkpoint.py",
        "differ = [k for k in state if state[k].shape != own[k].shape]",
        "differ = []",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/training/trainer.py",
        "        if main and not resume:\n            save_run_config",
        "        if main:\n            save_run_config",
        "tests/test_reliability.py",
    ),
]


def killed(m: Mutant) -> bool:
    path = ROOT / m.file
    source = path.read_text()
    if source.count(m.old) != 1:
        raise SystemExit(f"{m.file}: the mutated text is not there exactly once: {m.old!r}")
    path.write_text(source.replace(m.old, m.new))
    try:
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests.split()]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode != 0
    finally:
        path.write_text(source)


def main() -> int:
    chosen = [int(a) for a in sys.argv[1:]] or range(len(MUTANTS))
    survivors = 0
    for i in chosen:
        m = MUTANTS[i]
        ok = killed(m)
        survivors += not ok
        print(
            f"[{i}] {'killed' if ok else 'SURVIVED'}: {m.file}: {m.old[:60]!r} -> {m.new[:60]!r}", flush=True
        )
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
