"""Mutation sweep: a test that cannot fail is worse than none. Each mutant below is a plausible
bug (a sign, a range end, a weight, a shared noise, a scale); the sweep applies one at a time,
runs tests against it, restores the file, and reports mutants that no test killed and, for the
others, the first test that failed.

    python tests/mutation_sweep.py            # all 138: MUTANTS (68) then SECOND (70)
    python tests/mutation_sweep.py --second   # the second, independent sweep only
    python tests/mutation_sweep.py 3 17       # by index

MUTANTS name the tests they run; SECOND was written before any test was strengthened for it and
runs every test file that imports the mutated module (``importers``). Running times are in the
README. Exit status 1 when a mutant survives. Not part of the pytest run (it edits the source
tree: run it on a clean checkout, never alongside other work). Equivalent mutants (no behaviour
change) are listed in EQUIVALENT with the reason and not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
    file: str
    old: str
    new: str
    tests: str = ""  # test files to run; empty: every test file that imports the module


RESSHIFT = "src/sr1step/diffusion/resshift.py"
UNET = "src/sr1step/nets/resshift_unet.py"
TILING = "src/sr1step/tiling.py"
IMAGEIO = "src/sr1step/imageio.py"
COLORFIX = "src/sr1step/colorfix.py"
LOSSES = "src/sr1step/losses.py"
TADSR = "src/sr1step/methods/tadsr.py"
DEGRADATIONS = "src/sr1step/data/degradations.py"
BENCH_RUNNER = "src/sr1step/benchmark/runner.py"
SWIN = "src/sr1step/nets/swin.py"
CHECKPOINT = "src/sr1step/training/checkpoint.py"
DOWNLOAD = "src/sr1step/download.py"
API = "src/sr1step/api.py"


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
        "src/sr1step/training/config.py",
        "return (step + 1) / warmup",
        "return step / warmup",
        "tests/test_training.py",
    ),
    Mutant(
        "src/sr1step/training/config.py",
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
        "src/sr1step/benchmark/cache.py",
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
        "check_finite_output(out[..., : h * s, : w * s].float()).clamp_(0, 1)",
        "check_finite_output(out[..., : h * s, : w * s].float())",
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
        "src/sr1step/benchmark/cache.py",
        "+ ([weights_fingerprint(ref.weights)] if ref.weights else [])",
        "+ []",
        "tests/test_reliability.py",
    ),
    Mutant(
        "src/sr1step/benchmark/cache.py",
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


# The second, independent sweep (issue 28): written before any test was strengthened for it, in
# places the list above does not touch. ``tests`` is empty: each runs against every test file that
# imports the mutated module (``importers``).
SECOND = [
    # samplers and schedules
    Mutant(
        RESSHIFT,
        "exponent = np.linspace(0, 1, steps, endpoint=True) ** power * (steps - 1)",
        "exponent = np.linspace(0, 1, steps, endpoint=True) * (steps - 1)",
    ),
    Mutant(RESSHIFT, "        return [steps - 1]", "        return [0]"),
    Mutant(
        RESSHIFT,
        "return sorted({int(steps / sample_steps * i) for i in range(sample_steps)})",
        "return sorted({round(steps / sample_steps * i) for i in range(sample_steps)})",
    ),
    Mutant(
        RESSHIFT,
        "self.posterior_mean_coef1 = torch.from_numpy(etas_prev / etas)",
        "self.posterior_mean_coef1 = torch.from_numpy(np.sqrt(etas_prev / etas))",
    ),
    Mutant(
        RESSHIFT,
        "self.ddim_m = torch.from_numpy(np.sqrt(etas_prev / etas))",
        "self.ddim_m = torch.from_numpy(etas_prev / etas)",
    ),
    Mutant(
        RESSHIFT,
        "self._at(self.etas, t, x) * self.kappa**2 + 1)",
        "self._at(self.etas, t, x) * self.kappa + 1)",
    ),
    Mutant(
        RESSHIFT,
        "torch.exp(0.5 * self._at(self.posterior_log_variance_clipped, t, x_t))",
        "torch.exp(self._at(self.posterior_log_variance_clipped, t, x_t))",
    ),
    Mutant(
        RESSHIFT,
        "std = self.kappa * torch.sqrt(eta_s * (eta_t - eta_s) / eta_t)",
        "std = self.kappa * torch.sqrt(eta_t - eta_s)",
    ),
    Mutant(RESSHIFT, "self.kappa * self.sqrt_etas, t, x_t", "self.kappa * self.etas, t, x_t"),
    Mutant(RESSHIFT, "return self._timestep_map.to(t.device)[t]", "return t"),
    Mutant(RESSHIFT, "x0.clamp(-1, 1) if clip else x0", "x0.clamp(0, 1) if clip else x0"),
    Mutant(RESSHIFT, "return y - out if self.config.predict", "return out - y if self.config.predict"),
    # network blocks
    Mutant(
        UNET, "h = self.out_layers[0](h) * (1 + scale) + shift", "h = self.out_layers[0](h) * scale + shift"
    ),
    Mutant(
        SWIN,
        "torch.roll(y, shifts=(shift, shift), dims=(2, 3))",
        "torch.roll(y, shifts=(-shift, -shift), dims=(2, 3))",
    ),
    Mutant(
        SWIN,
        "return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]",
        "return rel[:, :, 1] * (2 * ws - 1) + rel[:, :, 0]",
    ),
    # tiling and blending
    Mutant(TILING, 'mode = "reflect" if pad_h < h and pad_w < w else "replicate"', 'mode = "reflect"'),
    Mutant(
        TILING, "pad_h, pad_w = (-h) % multiple, (-w) % multiple", "pad_h, pad_w = h % multiple, w % multiple"
    ),
    Mutant(
        TILING,
        "torch.minimum(weights[size - n :], ramp[:n].flip(0))",
        "torch.minimum(weights[size - n :], ramp[:n])",
    ),
    Mutant(TILING, "start > 0, start + size < length)", "start > 0, start + size <= length)"),
    Mutant(TILING, "sum_y[y * r : (y + tile_h) * r] += wy[y]", "sum_y[y * r : (y + tile_h) * r] = wy[y]"),
    Mutant(TILING, "for row in range(y0 // n, -(-y1 // n)):", "for row in range(y0 // n, y1 // n):"),
    Mutant(
        "src/sr1step/engine.py",
        "return x.transpose(-1, -2) if k & 4 and not inverse else x",
        "return x.transpose(-1, -2) if k & 4 else x",
    ),
    # image I/O
    Mutant(IMAGEIO, "2: lambda a: a[:, ::-1],", "2: lambda a: a[::-1],"),
    Mutant(
        IMAGEIO, "8: lambda a: np.swapaxes(a, 0, 1)[::-1],", "8: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],"
    ),
    Mutant(
        IMAGEIO, "return array.astype(np.float32) / 255.0, 8", "return array.astype(np.float32) / 256.0, 8"
    ),
    Mutant(IMAGEIO, "        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)", "        return array"),
    Mutant(IMAGEIO, '        ext = ".png"\n    return ext', "        pass\n    return ext"),
    Mutant(IMAGEIO, 'kwargs["quality"] = quality', 'kwargs["quality"] = 75'),
    Mutant(IMAGEIO, "ihdr_end = 8 + 4 + 4 + 13 + 4", "ihdr_end = 8 + 4 + 4 + 13"),
    Mutant(IMAGEIO, "and width * height > max_pixels:", "and width * height >= max_pixels:"),
    Mutant(
        IMAGEIO,
        "return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)",
        "return np.asarray(im).astype(np.uint16)",
    ),
    # colour fix
    Mutant(COLORFIX, "dilation = 2**i", "dilation = i + 1"),
    Mutant(
        COLORFIX,
        "kernel = (kernel[:, None] * kernel[None, :]) / 16",
        "kernel = (kernel[:, None] * kernel[None, :]) / 8",
    ),
    Mutant(
        COLORFIX,
        'padded = F.pad(low, (dilation, dilation, dilation, dilation), mode="replicate")',
        'padded = F.pad(low, (dilation, dilation, dilation, dilation), mode="reflect")',
    ),
    Mutant(
        COLORFIX,
        '    if method == "wavelet":\n        return wavelet(sr, reference)',
        '    if method == "wavelet":\n        return adain(sr, reference)',
    ),
    # losses, shared and per method
    Mutant(LOSSES, "w = torch.tensor([0.299, 0.587, 0.114]", "w = torch.tensor([0.2126, 0.7152, 0.0722]"),
    Mutant(
        LOSSES,
        "gx, gy = F.conv2d(y, kx), F.conv2d(y, kx.transpose(2, 3))",
        "gx, gy = F.conv2d(y, kx), F.conv2d(y, kx)",
    ),
    Mutant(
        LOSSES,
        'y = F.pad(luminance(x), (1, 1, 1, 1), mode="replicate")',
        "y = F.pad(luminance(x), (1, 1, 1, 1))",
    ),
    Mutant(LOSSES, "        return -fake.mean()", "        return fake.mean()"),
    Mutant(
        LOSSES,
        "return F.softplus(-real).mean() + F.softplus(fake).mean()",
        "return F.softplus(real).mean() + F.softplus(-fake).mean()",
    ),
    Mutant(
        "src/sr1step/methods/d3sr.py", "mse = F.mse_loss(sr.float(), hr)", "mse = F.l1_loss(sr.float(), hr)"
    ),
    Mutant("src/sr1step/methods/d3sr.py", "loss = loss + w.gan_weight * adv", "loss = loss + adv"),
    Mutant(
        TADSR,
        "loss = F.relu(1 - logits[:b]).mean() + F.relu(1 + logits[b:]).mean()",
        "loss = F.relu(1 - logits[b:]).mean() + F.relu(1 + logits[:b]).mean()",
    ),
    Mutant(TADSR, "loss = loss + cfg.mse_weight * mse", "loss = loss + mse"),
    # degradations
    Mutant(
        DEGRADATIONS,
        "        return _uniform(g, 1, scale_range[1])",
        "        return _uniform(g, scale_range[0], scale_range[1])",
    ),
    Mutant(DEGRADATIONS, "out = (out.clamp(0, 1) * 255).round() / 255", "out = out.clamp(0, 1)"),
    Mutant(
        DEGRADATIONS,
        "if _uniform(g, 0, 1) < cfg.second_order_prob:",
        "if _uniform(g, 0, 1) > cfg.second_order_prob:",
    ),
    Mutant(
        DEGRADATIONS,
        "int(h / cfg.scale * s)), max(1, int(w / cfg.scale * s))",
        "int(out.shape[-2] * s)), max(1, int(out.shape[-1] * s))",
    ),
    Mutant(
        DEGRADATIONS,
        "gray = torch.rand(b, generator=g) < gray_p",
        "gray = torch.rand(b, generator=g) > gray_p",
    ),
    Mutant(
        DEGRADATIONS,
        "weight = kernels.to(images.dtype)[:, None].repeat_interleave(c, dim=0)",
        "weight = kernels.to(images.dtype)[:, None].repeat(c, 1, 1, 1)",
    ),
    # metrics and the benchmark
    Mutant(
        "src/sr1step/metrics/__init__.py",
        'YCBCR = {"test_y_channel": True, "color_space": "ycbcr"}',
        'YCBCR = {"test_y_channel": True, "color_space": "yiq"}',
    ),
    Mutant(
        "src/sr1step/metrics/__init__.py", 'kwargs["crop_border"] = crop_border', 'kwargs["crop_border"] = 0'
    ),
    Mutant(
        BENCH_RUNNER,
        "m: float(np.mean([cache.scores[n][m] for n in names if m in cache.scores[n]]))",
        "m: float(np.median([cache.scores[n][m] for n in names if m in cache.scores[n]]))",
    ),
    Mutant(
        BENCH_RUNNER,
        "                    sr = _to_tensor(sr_path)  # score what was written (8-bit), as the papers do",
        "                    pass",
    ),
    # checkpoints and resume
    Mutant(CHECKPOINT, "        return found[::-1]", "        return found"),
    Mutant(CHECKPOINT, "        net.load_state_dict(state, strict=False)", "        pass"),
    Mutant(CHECKPOINT, 'os.replace(f, tmp / f.name.lstrip("."))', "os.replace(f, tmp / f.name)"),
    Mutant(CHECKPOINT, "        if not alive_pid_in(tmp):", "        if True:"),
    Mutant(
        "src/sr1step/training/trainer.py",
        "start = start_step * self.micro_per_step * cfg.batch_size * self.acc.num_processes",
        "start = start_step * cfg.batch_size * self.acc.num_processes",
    ),
    # downloads
    Mutant(DOWNLOAD, 'with open(part, "ab" if resumed else "wb") as f:', 'with open(part, "wb") as f:'),
    Mutant(
        DOWNLOAD,
        'request.add_header("Range", f"bytes={have}-")',
        'request.add_header("Range", f"bytes={have + 1}-")',
    ),
    Mutant(DOWNLOAD, "        part.unlink(missing_ok=True)\n", ""),
    Mutant(DOWNLOAD, "            if not resumed:\n                have = 0\n", ""),
    Mutant(
        "src/sr1step/hub.py",
        "found = Path(hf_hub_download(card.repo_id, filename, revision=card.revision or None))",
        "found = Path(hf_hub_download(card.repo_id, filename))",
    ),
    # CLI exit codes and the Python API
    Mutant(
        "src/sr1step/cli/common.py",
        "ConfigError included\n        raise usage_error(str(err))",
        "ConfigError included\n        raise run_error(str(err))",
    ),
    Mutant("src/sr1step/cli/train.py", "raise typer.Exit(130)", "raise typer.Exit(1)"),
    Mutant(
        "src/sr1step/upscale.py",
        'return 1 if self.count("failed") else 0',
        'return 1 if self.count("failed") > 1 else 0',
    ),
    Mutant(
        API,
        "return (np.clip(out, 0, 1) * top + 0.5).astype(a.dtype)",
        "return (np.clip(out, 0, 1) * top).astype(a.dtype)",
    ),
    Mutant(
        API,
        "out = (out * top).round().to(x.dtype) if top else out.to(x.dtype)",
        "out = (out * top).to(x.dtype) if top else out.to(x.dtype)",
    ),
    Mutant(
        API,
        "a = F.interpolate(a, size=(target[1], target[0])",
        "a = F.interpolate(a, size=(target[0], target[1])",
    ),
]

# Written for the second sweep and found to change no behaviour; kept here so nobody re-adds them.
EQUIVALENT = [
    (
        Mutant(RESSHIFT, "np.append(post_var[1], post_var[1:])", "np.append(post_var[0], post_var[1:])"),
        "sampling never reads the clipped variance at t = 0 (its noise is masked out there)",
    ),
    (
        Mutant(TILING, "    ramp[:margin] = 0.0\n", ""),
        "the clamp already gives cos(0) = 1, so weight 0, for every d < margin",
    ),
    (
        Mutant(CHECKPOINT, "key=lambda p: int(p.name[len(PREFIX) :])", "key=lambda p: p.name"),
        "checkpoint folders are zero-padded to 7 digits: name order is step order below 10 million steps",
    ),
    (
        Mutant(
            IMAGEIO,
            "cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_RGB2BGR",
            "cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_BGR2RGB",
        ),
        "both codes swap channels 0 and 2: the same permutation",
    ),
]


ALL = MUTANTS + SECOND


def importers(file: str, top: bool = True) -> list[str]:
    """Test files that import the module ``file`` (by dotted name, or by name from its package)."""
    parts = Path(file).with_suffix("").relative_to("src").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    dotted, package, name = ".".join(parts), ".".join(parts[:-1]), parts[-1]
    # ... or, for what the package re-exports (``from sr1step import Upscaler``), by a name it defines
    defined = re.findall(r"^(?:class|def) ([A-Za-z]\w*)", (ROOT / file).read_text(), re.M)
    exported = [d for d in defined if re.search(rf"\b{d}\b", (ROOT / "src/sr1step/__init__.py").read_text())]
    names = "|".join(exported)
    reexport = rf"|from sr1step import [^\n]*\b({names})\b|\bsr1step\.({names})\b" if exported else ""
    # ... or, for a module of a sub-package, by the package (its __init__ imports its modules' names)
    whole = rf"|\b{re.escape(package)}\b(?!\.)" if package != "sr1step" else ""
    pattern = re.compile(
        rf"\b{re.escape(dotted)}\b(?!\.)|from {re.escape(package)} import [^\n]*\b{name}\b" + reexport + whole
    )
    found = [
        str(t.relative_to(ROOT))
        for t in sorted((ROOT / "tests").glob("test_*.py"))
        if pattern.search(t.read_text())
    ]
    # ... or through a sibling module that imports it (nets/resshift_unet.py imports nets/swin.py)
    for sibling in sorted((ROOT / file).parent.glob("*.py")):
        if sibling.name != "__init__.py" and re.search(rf"^from \.{name} import", sibling.read_text(), re.M):
            found += [t for t in importers(str(sibling.relative_to(ROOT)), top=False) if t not in found]
    if not found and top:
        raise SystemExit(f"no test file imports {dotted}")
    return sorted(found)


def run_mutant(m: Mutant) -> str | None:
    """The first test that failed with the mutant applied, or None when every test passed."""
    path = ROOT / m.file
    source = path.read_text()
    if source.count(m.old) != 1:
        raise SystemExit(f"{m.file}: the mutated text is not there exactly once: {m.old!r}")
    path.write_text(source.replace(m.old, m.new))
    try:
        tests = m.tests.split() or importers(m.file)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # this tree, whatever is installed
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if done.returncode == 0:
            return None
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.M)
        return failed[0] if failed else f"pytest exit {done.returncode}"
    finally:
        path.write_text(source)


def main() -> int:
    args = sys.argv[1:]
    if args == ["--second"]:
        chosen = range(len(MUTANTS), len(ALL))
    else:
        chosen = [int(a) for a in args] or range(len(ALL))
    survivors = 0
    for i in chosen:
        m = ALL[i]
        killer = run_mutant(m)
        survivors += killer is None
        status = f"killed by {killer}" if killer else "SURVIVED"
        print(f"[{i}] {status}: {m.file}: {m.old[:60]!r} -> {m.new[:60]!r}", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed")
    if args == ["--second"] or not args:
        for m, why in EQUIVALENT:
            print(f"equivalent (not run): {m.file}: {m.old.strip()[:60]!r}: {why}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
