"""The residual-shifting diffusion process (ResShift, Yue et al. 2023; SinSR's deterministic sampler).

Notation (index t = 0..T-1 as in the official code): x0 the HR latent, y the latent of the
bicubic-upsampled LR, eta_t an increasing schedule, kappa the noise scale.

    q(x_t | x0, y) = N(x0 + eta_t (y - x0), kappa^2 eta_t I)            (forward, ``q_sample``)
    x_T = y + kappa sqrt(eta_T) eps                                    (prior, ``prior_sample``)
    q(x_{t-1} | x_t, x0) = N(eta_{t-1}/eta_t x_t + alpha_t/eta_t x0,
                             kappa^2 eta_{t-1}/eta_t alpha_t I)         (posterior)

The network sees ``x_t / sqrt(kappa^2 eta_t + 1)`` (latent models; pixel models divide by
``3 kappa sqrt(eta_t) + 1``) and predicts x0 (every released model), or the residual y - x0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

# model_fn(scaled x_t, t indices in the original chain) -> x0 prediction
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ResShiftScheduleConfig:
    steps: int = 15  # T
    kappa: float = 2.0
    min_noise_level: float = 0.04  # sqrt(eta_1) = min(min_noise_level / kappa, min_noise_level)
    etas_end: float = 0.99  # sqrt(eta_T), as in the code (the paper text says eta_T)
    power: float = 0.3
    latent: bool = True  # input scaling for latent (vs pixel-space) models
    normalize_input: bool = True
    sample_steps: int | None = None  # respaced sampling chain (official ``timestep_respacing``)
    predict: Literal["xstart", "residual"] = "xstart"  # network output: x0, or y - x0 (official options)


def eta_schedule(
    steps: int, kappa: float, min_noise_level: float, etas_end: float, power: float
) -> np.ndarray:
    """sqrt(eta_t), t = 1..T: exponential in ((t-1)/(T-1))^p between sqrt(eta_1) and ``etas_end``."""
    start = min(min_noise_level / kappa, min_noise_level)
    if steps == 1:
        return np.array([etas_end], dtype=np.float64)
    growth = math.exp(math.log(etas_end / start) / (steps - 1))
    exponent = np.linspace(0, 1, steps, endpoint=True) ** power * (steps - 1)
    return np.power(growth, exponent) * start


def respaced_timesteps(steps: int, sample_steps: int) -> list[int]:
    """The official ``space_timesteps``: ``int(T / n * i)`` for i < n (the last step need not be T-1).

    One step is the exception: the official rule gives [0], a single call at the smallest noise
    level from the prior; sr1step takes [T-1], the one-step prediction the students run."""
    if sample_steps == 1:
        return [steps - 1]
    return sorted({int(steps / sample_steps * i) for i in range(sample_steps)})


class ResShiftSchedule:
    """Coefficients of the process (computed in float64) and its samplers."""

    def __init__(self, cfg: ResShiftScheduleConfig):
        self.config = cfg
        self.kappa = cfg.kappa
        full = eta_schedule(cfg.steps, cfg.kappa, cfg.min_noise_level, cfg.etas_end, cfg.power)
        if cfg.sample_steps is not None and cfg.sample_steps != cfg.steps:
            if not 1 <= cfg.sample_steps <= cfg.steps:
                raise ValueError(f"sample steps must be in 1..{cfg.steps}, got {cfg.sample_steps}")
            self.timesteps = respaced_timesteps(cfg.steps, cfg.sample_steps)
        else:
            self.timesteps = list(range(cfg.steps))
        sqrt_etas = full[self.timesteps]
        self.num_steps = len(self.timesteps)
        etas = sqrt_etas**2
        etas_prev = np.append(0.0, etas[:-1])
        alpha = etas - etas_prev
        post_var = cfg.kappa**2 * etas_prev / etas * alpha
        self.sqrt_etas = torch.from_numpy(sqrt_etas)
        self.etas = torch.from_numpy(etas)
        self.etas_prev = torch.from_numpy(etas_prev)
        self.posterior_variance = torch.from_numpy(post_var)
        # log of the posterior variance with its t = 0 entry (0) replaced by t = 1's, as the official
        # code clips it; a one-step chain has no noisy step at all.
        clipped = np.append(post_var[1], post_var[1:]) if len(post_var) > 1 else np.ones(1)
        self.posterior_log_variance_clipped = torch.from_numpy(np.log(clipped))
        self.posterior_mean_coef1 = torch.from_numpy(etas_prev / etas)
        self.posterior_mean_coef2 = torch.from_numpy(alpha / etas)
        # SinSR's deterministic (sigma = 0) step: x_{t-1} = k x0 + m x_t + j y.
        self.ddim_m = torch.from_numpy(np.sqrt(etas_prev / etas))
        self.ddim_j = torch.from_numpy(etas_prev - np.sqrt(etas_prev * etas))
        self.ddim_k = torch.from_numpy(1 - etas_prev + np.sqrt(etas_prev * etas) - np.sqrt(etas_prev / etas))
        self._timestep_map = torch.tensor(self.timesteps)

    def _at(self, arr: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        # float64 -> float32 first, as the official code does, then to the working dtype.
        v = arr.to(t.device)[t].float().to(like.dtype)
        return v.view(-1, *([1] * (like.dim() - 1)))

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Index in the (possibly respaced) chain -> index in the trained chain, fed to the net."""
        return self._timestep_map.to(t.device)[t]

    def q_sample(
        self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        return (
            x0 + self._at(self.etas, t, x0) * (y - x0) + self._at(self.sqrt_etas * self.kappa, t, x0) * noise
        )

    def prior_sample(self, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        t = torch.full((y.shape[0],), self.num_steps - 1, dtype=torch.long, device=y.device)
        return y + self._at(self.sqrt_etas * self.kappa, t, y) * noise

    def scale_input(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self.config.normalize_input:
            return x
        if self.config.latent:
            return x / torch.sqrt(self._at(self.etas, t, x) * self.kappa**2 + 1)
        return x / (self._at(self.sqrt_etas, t, x) * self.kappa * 3 + 1)

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (
            self._at(self.posterior_mean_coef1, t, x_t) * x_t
            + self._at(self.posterior_mean_coef2, t, x_t) * x0
        )

    def jump_sample(
        self,
        x_t: torch.Tensor,
        x0: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """A draw of x_s ~ q(x_s | x_t, x0, y) for s < t (any gap; s = t - 1 is the posterior step).

        With r_t = x_t - x0 - eta_t (y - x0) ~ N(0, kappa^2 eta_t), the forward chain adds
        independent noise, so r_s | r_t ~ N(eta_s / eta_t r_t, kappa^2 eta_s (eta_t - eta_s) / eta_t).
        """
        eta_t, eta_s = self._at(self.etas, t, x_t), self._at(self.etas, s, x_t)
        r_t = x_t - x0 - eta_t * (y - x0)
        std = self.kappa * torch.sqrt(eta_s * (eta_t - eta_s) / eta_t)
        return x0 + eta_s * (y - x0) + eta_s / eta_t * r_t + std * noise

    def eps_from_x0(
        self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """The noise that, with x0, gives x_t under ``q_sample``."""
        return (x_t - x0 - self._at(self.etas, t, x_t) * (y - x0)) / self._at(
            self.kappa * self.sqrt_etas, t, x_t
        )

    def x0_from_output(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - out if self.config.predict == "residual" else out

    def predict_x0(
        self, model_fn: ModelFn, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor, clip: bool = False
    ) -> torch.Tensor:
        x0 = self.x0_from_output(model_fn(self.scale_input(x_t, t), self.model_timesteps(t)), y)
        return x0.clamp(-1, 1) if clip else x0

    def ancestral_step(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        mean = self.posterior_mean(x0, x_t, t)
        nonzero = (t != 0).to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
        return mean + nonzero * torch.exp(0.5 * self._at(self.posterior_log_variance_clipped, t, x_t)) * noise

    def ddim_step(
        self, x0: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        return (
            self._at(self.ddim_k, t, x_t) * x0
            + self._at(self.ddim_m, t, x_t) * x_t
            + self._at(self.ddim_j, t, x_t) * y
        )

    def sample(
        self,
        model_fn: ModelFn,
        y: torch.Tensor,
        noise: torch.Tensor,
        *,
        sampler: str = "ancestral",
        clip: bool = False,
        steps: int | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Run the reverse chain from the prior (``on_step(done, total)`` after each network call).

        ``noise`` holds the prior noise in its first C channels and, for the ancestral sampler,
        one more C-channel draw for each of the T-1 noisy steps after it (shape (B, C * T, H, W));
        the deterministic sampler uses the prior draw only. ``steps`` stops after that many network
        calls (1 = the one-step prediction at t = T-1, as SinSR/TAD-SR/RSD students run).
        """
        if sampler not in ("ancestral", "ddim"):
            raise ValueError(f"unknown sampler {sampler!r}; use ancestral or ddim")
        c = y.shape[1]
        x = self.prior_sample(y, noise[:, :c])
        n_calls = self.num_steps if steps is None else steps
        for i, step in enumerate(reversed(range(self.num_steps))):
            t = torch.full((y.shape[0],), step, dtype=torch.long, device=y.device)
            x0 = self.predict_x0(model_fn, x, y, t, clip)
            if on_step is not None:
                on_step(i + 1, min(n_calls, self.num_steps))
            if i + 1 == n_calls or step == 0:
                return x0
            if sampler == "ddim":
                x = self.ddim_step(x0, x, y, t)
            else:
                x = self.ancestral_step(x0, x, t, noise[:, c * (i + 1) : c * (i + 2)])
        return x
