"""Synthetic degradations for SR training, batched in torch on the training device.

``RealESRGANDegradation`` is the second-order pipeline of Real-ESRGAN (Wang et al., ICCVW 2021,
section 3) with the parameter ranges ResShift, TAD-SR and RSD train with (ResShift
``configs/realsr_swinunet_realesrgan256.yaml``; identical blocks in TAD-SR and RSD):

    blur (kernel 1) -> random resize -> Gaussian/Poisson noise -> JPEG
    -> [with prob. second_order_prob] blur (kernel 2, prob. second_blur_prob) -> resize -> noise
    -> in random order: {resize to LR size + sinc filter (prob. final_sinc_prob)} and {JPEG}
    -> clamp and quantise to 8 bits.

Kernels: isotropic/anisotropic Gaussian, generalized Gaussian, plateau (iso/aniso), and a
circular-lowpass ("sinc") kernel; odd sizes 3..19 for the first blur and 3..13 for the second blur
and the final sinc (ResShift's ``kernel_range1/2``, from ``blur_kernel_size`` 21 and
``blur_kernel_size2`` 15), padded to 21. Noise is clipped to [0, 1] after it is added and Poisson
noise counts the distinct values of the image rounded to 8 bits, as BasicSR does. Every random
draw comes from a ``torch.Generator``, so a seed reproduces a batch exactly.
``BicubicDegradation`` is the plain antialiased bicubic downscale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .jpeg import jpeg

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


@dataclass(frozen=True)
class RealESRGANConfig:
    """Defaults: ResShift/TAD-SR/RSD training configs (Real-ESRGAN's, with second_order_prob 0.5)."""

    scale: int = 4
    kernel_sizes: tuple[int, ...] = (3, 5, 7, 9, 11, 13, 15, 17, 19)  # first blur: range(3, 21, 2)
    kernel_sizes2: tuple[int, ...] = (3, 5, 7, 9, 11, 13)  # second blur and final sinc: range(3, 15, 2)
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    final_sinc_prob: float = 0.8
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0..255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_order_prob: float = 0.5
    second_blur_prob: float = 0.8
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    bicubic_prob: float = 0.0  # share of each batch given clean bicubic LR instead (not in the papers)


# A mild setting for photos users actually have (sr1step's compact default; our choice, see
# docs/default-model.md): first-order blur/noise/JPEG of moderate strength, a weak second order
# and final sinc, and 90 % of the pairs clean bicubic (measured on held-out photos: each step from
# 30 to 50, 70 and 90 % clean raised PSNR on clean LR and on mildly degraded LR alike).
MILD_REALESRGAN = RealESRGANConfig(
    kernel_sizes=(3, 5, 7, 9, 11, 13),
    sinc_prob=0.05,
    blur_sigma=(0.2, 1.0),
    sinc_prob2=0.05,
    blur_sigma2=(0.2, 1.0),
    final_sinc_prob=0.2,
    resize_range=(0.5, 1.5),
    noise_range=(1.0, 6.0),
    poisson_scale_range=(0.05, 0.5),
    jpeg_range=(60.0, 95.0),
    second_order_prob=0.1,
    resize_range2=(0.6, 1.2),
    noise_range2=(1.0, 5.0),
    poisson_scale_range2=(0.05, 0.5),
    jpeg_range2=(60.0, 95.0),
    bicubic_prob=0.9,
)


# The blind real-world default's setting (sr1step-real-x4; our choice, docs/default-model.md):
# between MILD_REALESRGAN and the papers' (RealESRGANConfig()): blur sigma up to 2.0 (papers 3.0),
# noise up to 15/255 (30), JPEG down to 40 (30), a second order on 30 % of the pairs (50 %), final
# sinc on half; a fifth of the pairs stay clean bicubic so clean input keeps its sharpening.
REAL_REALESRGAN = RealESRGANConfig(
    kernel_sizes=(3, 5, 7, 9, 11, 13, 15),
    sinc_prob=0.1,
    blur_sigma=(0.2, 2.0),
    blur_sigma2=(0.2, 1.2),
    final_sinc_prob=0.5,
    resize_range=(0.3, 1.5),
    noise_range=(1.0, 15.0),
    poisson_scale_range=(0.05, 1.5),
    jpeg_range=(40.0, 95.0),
    second_order_prob=0.3,
    resize_range2=(0.5, 1.2),
    noise_range2=(1.0, 10.0),
    poisson_scale_range2=(0.05, 1.0),
    jpeg_range2=(50.0, 95.0),
    bicubic_prob=0.2,
)


# --- random draws -----------------------------------------------------------------------------


def _uniform(g: torch.Generator, lo: float, hi: float, n: int | None = None):
    u = torch.rand(n if n is not None else 1, generator=g, dtype=torch.float64) * (hi - lo) + lo
    return u if n is not None else u.item()


def _choice(g: torch.Generator, options, probs=None):
    if probs is None:
        return options[int(torch.randint(len(options), (1,), generator=g))]
    p = torch.tensor(probs, dtype=torch.float64)
    return options[int(torch.multinomial(p / p.sum(), 1, generator=g))]


# --- kernels (float64, normalised to sum 1) ---------------------------------------------------


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    return torch.meshgrid(r, r, indexing="ij")


def anisotropic_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, kind: str = "gaussian", beta: float = 1.0
) -> torch.Tensor:
    """Bivariate kernel with covariance R diag(sx^2, sy^2) R^T and q = x^T Sigma^-1 x:
    ``gaussian`` exp(-q/2), ``generalized`` exp(-q^beta / 2), ``plateau`` 1 / (1 + q^beta)."""
    yy, xx = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates in the rotated frame
    v = -s * xx + c * yy
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    if kind == "gaussian":
        k = torch.exp(-0.5 * q)
    elif kind == "generalized":
        k = torch.exp(-0.5 * q**beta)
    elif kind == "plateau":
        k = 1 / (1 + q**beta)
    else:
        raise ValueError(f"unknown kernel kind {kind!r}")
    return k / k.sum()


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernel with cut-off frequency ``cutoff`` in (0, pi]."""
    yy, xx = _grid(size)
    r = torch.sqrt(xx**2 + yy**2)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    k = torch.where(r == 0, torch.full_like(r, cutoff**2 / (4 * math.pi)), k)
    return k / k.sum()


def pad_kernel(k: torch.Tensor, size: int = 21) -> torch.Tensor:
    p = (size - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p))


def random_kernel(g: torch.Generator, cfg: RealESRGANConfig, second: bool = False) -> torch.Tensor:
    """One 21x21 blur kernel drawn as Real-ESRGAN draws them."""
    size = int(_choice(g, cfg.kernel_sizes2 if second else cfg.kernel_sizes))
    sinc_p = cfg.sinc_prob2 if second else cfg.sinc_prob
    if _uniform(g, 0, 1) < sinc_p:
        cutoff = _uniform(g, math.pi / 3, math.pi) if size < 13 else _uniform(g, math.pi / 5, math.pi)
        return pad_kernel(sinc_kernel(size, cutoff))
    kinds, probs = (cfg.kernel_list2, cfg.kernel_prob2) if second else (cfg.kernel_list, cfg.kernel_prob)
    sigma = cfg.blur_sigma2 if second else cfg.blur_sigma
    betag = cfg.betag_range2 if second else cfg.betag_range
    betap = cfg.betap_range2 if second else cfg.betap_range
    kind = _choice(g, kinds, probs)
    sx = _uniform(g, *sigma)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sy, theta = sx, 0.0
    else:
        sy, theta = _uniform(g, *sigma), _uniform(g, -math.pi, math.pi)
    if kind.startswith("generalized"):
        beta = _uniform(g, betag[0], 1) if _uniform(g, 0, 1) < 0.5 else _uniform(g, 1, betag[1])
        k = anisotropic_kernel(size, sx, sy, theta, "generalized", beta)
    elif kind.startswith("plateau"):
        beta = _uniform(g, betap[0], 1) if _uniform(g, 0, 1) < 0.5 else _uniform(g, 1, betap[1])
        k = anisotropic_kernel(size, sx, sy, theta, "plateau", beta)
    else:
        k = anisotropic_kernel(size, sx, sy, theta, "gaussian")
    return pad_kernel(k)


def filter2d(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of (B, C, H, W) with its own (B, k, k) kernel (reflect padding)."""
    b, c, h, w = images.shape
    k = kernels.shape[-1]
    mode = "reflect" if min(h, w) > k // 2 else "replicate"  # tiny images (small crops resized down)
    x = F.pad(images, (k // 2, k // 2, k // 2, k // 2), mode=mode).reshape(1, b * c, h + k - 1, w + k - 1)
    weight = kernels.to(images.dtype)[:, None].repeat_interleave(c, dim=0)
    return F.conv2d(x, weight, groups=b * c).view(b, c, h, w)


# --- noise, resize ------------------------------------------------------------------------------


def add_gaussian_noise(
    x: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """sigma (B,) on the 0..1 scale; gray (B,) bool: one noise map shared by the channels."""
    b, c, h, w = x.shape
    color = torch.randn(b, c, h, w, generator=g, device=x.device, dtype=x.dtype)
    mono = torch.randn(b, 1, h, w, generator=g, device=x.device, dtype=x.dtype).expand(b, c, h, w)
    noise = torch.where(gray.view(b, 1, 1, 1).to(x.device), mono, color)
    return x + noise * sigma.view(b, 1, 1, 1).to(x.device, x.dtype)


def add_poisson_noise(
    x: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Shot noise as BasicSR draws it: on the image rounded to 8 bits, q, Poisson(q * vals) / vals - q
    with vals = 2^ceil(log2(#distinct values of q)) (at most 256), times ``scale``."""
    b, c, h, w = x.shape
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None] if c == 3 else x
    out = torch.empty_like(x)
    for i in range(b):
        src = luma[i] if bool(gray[i]) else x[i]
        q = (src * 255).round().clamp(0, 255) / 255
        vals = 2 ** math.ceil(math.log2(max(int(torch.unique(q).numel()), 2)))
        noise = torch.poisson(q * vals, generator=g) / vals - q
        out[i] = x[i] + noise.expand_as(x[i]) * float(scale[i])
    return out


def _resize_factor(g: torch.Generator, probs, scale_range) -> float:
    kind = _choice(g, ("up", "down", "keep"), probs)
    if kind == "up":
        return _uniform(g, 1, scale_range[1])
    if kind == "down":
        return _uniform(g, scale_range[0], 1)
    return 1.0


def random_resize(x: torch.Tensor, g: torch.Generator, size: tuple[int, int]) -> torch.Tensor:
    """Resize the whole batch (one draw per batch, as Real-ESRGAN) with a random area/bilinear/bicubic."""
    mode = _choice(g, ("area", "bilinear", "bicubic"))
    return F.interpolate(x, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))


class RealESRGANDegradation:
    """``degrade(hr, generator)``: HR (B, 3, H, W) in [0, 1] -> LR (B, 3, H/s, W/s) in [0, 1]."""

    def __init__(self, cfg: RealESRGANConfig | None = None):
        self.cfg = cfg or RealESRGANConfig()

    def _noise(self, x, g, dg, gauss_p, sigma_range, poisson_range, gray_p):
        """Parameters from ``g`` (CPU), noise tensors from ``dg`` (on the images' device)."""
        b = x.shape[0]
        gray = torch.rand(b, generator=g) < gray_p
        if _uniform(g, 0, 1) < gauss_p:
            sigma = _uniform(g, *sigma_range, n=b).float() / 255
            return add_gaussian_noise(x, sigma, gray, dg).clamp(0, 1)
        return add_poisson_noise(x, _uniform(g, *poisson_range, n=b), gray, dg).clamp(0, 1)

    def _jpeg(self, x, g, jpeg_range):
        q = _uniform(g, *jpeg_range, n=x.shape[0])
        return jpeg(x.clamp(0, 1), q)

    @torch.no_grad()
    def __call__(self, hr: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``g`` is a CPU generator: kernels and choices are drawn from it in a fixed order, and it
        seeds a generator on the images' device for the noise, so a seed fixes the batch."""
        cfg = self.cfg
        b, _, h, w = hr.shape
        lr_size = (h // cfg.scale, w // cfg.scale)
        dev = hr.device
        dg = torch.Generator(device=dev).manual_seed(int(torch.randint(2**62, (1,), generator=g)))
        kernels1 = torch.stack([random_kernel(g, cfg) for _ in range(b)]).to(dev)
        out = filter2d(hr, kernels1)
        s = _resize_factor(g, cfg.resize_prob, cfg.resize_range)
        out = random_resize(out, g, size=(max(1, int(out.shape[-2] * s)), max(1, int(out.shape[-1] * s))))
        out = self._noise(
            out, g, dg, cfg.gaussian_noise_prob, cfg.noise_range, cfg.poisson_scale_range, cfg.gray_noise_prob
        )
        out = self._jpeg(out, g, cfg.jpeg_range)
        if _uniform(g, 0, 1) < cfg.second_order_prob:
            if _uniform(g, 0, 1) < cfg.second_blur_prob:
                kernels2 = torch.stack([random_kernel(g, cfg, second=True) for _ in range(b)]).to(dev)
                out = filter2d(out, kernels2)
            s = _resize_factor(g, cfg.resize_prob2, cfg.resize_range2)
            out = random_resize(out, g, size=(max(1, int(h / cfg.scale * s)), max(1, int(w / cfg.scale * s))))
            out = self._noise(
                out,
                g,
                dg,
                cfg.gaussian_noise_prob2,
                cfg.noise_range2,
                cfg.poisson_scale_range2,
                cfg.gray_noise_prob2,
            )
        sinc = torch.stack([self._final_sinc(g) for _ in range(b)]).to(dev)
        if _uniform(g, 0, 1) < 0.5:
            out = filter2d(random_resize(out, g, size=lr_size), sinc)
            out = self._jpeg(out, g, cfg.jpeg_range2)
        else:
            out = self._jpeg(out, g, cfg.jpeg_range2)
            out = filter2d(random_resize(out, g, size=lr_size), sinc)
        out = (out.clamp(0, 1) * 255).round() / 255
        if cfg.bicubic_prob > 0:  # drawn last: settings without a clean share keep their stream
            clean = (torch.rand(b, generator=g) < cfg.bicubic_prob).to(dev)
            out = torch.where(clean[:, None, None, None], BicubicDegradation(cfg.scale)(hr), out)
        return out

    def _final_sinc(self, g):
        if _uniform(g, 0, 1) < self.cfg.final_sinc_prob:
            size = int(_choice(g, self.cfg.kernel_sizes2))
            return pad_kernel(sinc_kernel(size, _uniform(g, math.pi / 3, math.pi)))
        pulse = torch.zeros(21, 21, dtype=torch.float64)
        pulse[10, 10] = 1
        return pulse


class BicubicDegradation:
    """Antialiased bicubic downscale (MATLAB ``imresize``-like), quantised to 8 bits."""

    def __init__(self, scale: int = 4):
        self.scale = scale

    @torch.no_grad()
    def __call__(self, hr: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        h, w = hr.shape[-2:]
        lr = F.interpolate(
            hr, size=(h // self.scale, w // self.scale), mode="bicubic", antialias=True, align_corners=False
        )
        return (lr.clamp(0, 1) * 255).round() / 255


class PairPool:
    """Real-ESRGAN's training-pair pool (``_dequeue_and_enqueue`` of its and ResShift's trainers):
    degraded pairs wait in a queue of ``size`` and leave it in random order, so one batch mixes
    degradations drawn at different steps (one degradation draw covers a whole batch).

    While the pool fills, batches pass through unchanged. ``state_dict`` holds the queue for
    exact resume."""

    def __init__(self, size: int):
        self.size = size
        self.hr: torch.Tensor | None = None
        self.lr: torch.Tensor | None = None
        self.filled = 0

    def __call__(
        self, hr: torch.Tensor, lr: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = hr.shape[0]
        if self.size <= 0:
            return hr, lr
        if self.size % b:
            raise ValueError(f"pair pool size {self.size} is not a multiple of the batch size {b}")
        if self.hr is None:
            self.hr = hr.new_zeros((self.size, *hr.shape[1:]))
            self.lr = lr.new_zeros((self.size, *lr.shape[1:]))
        if self.filled < self.size:
            self.hr[self.filled : self.filled + b] = hr
            self.lr[self.filled : self.filled + b] = lr
            self.filled += b
            return hr, lr
        order = torch.randperm(self.size, generator=g).to(self.hr.device)
        self.hr, self.lr = self.hr[order], self.lr[order]
        out_hr, out_lr = self.hr[:b].clone(), self.lr[:b].clone()
        self.hr[:b], self.lr[:b] = hr, lr
        return out_hr, out_lr

    def state_dict(self) -> dict:
        if self.hr is None:
            return {"filled": 0}
        return {"filled": self.filled, "hr": self.hr.cpu(), "lr": self.lr.cpu()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.filled = int(state["filled"])
        self.hr = state["hr"].to(device) if "hr" in state else None
        self.lr = state["lr"].to(device) if "lr" in state else None
