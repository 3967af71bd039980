"""The library entry point: load a model once, upscale images of any kind.

    import sr1step
    up = sr1step.Upscaler()                                        # the bundled default model
    up = sr1step.Upscaler("rsd", "runs/rsd/export", device="auto", tile=256)
    big = up(Image.open("photo.jpg"))          # PIL in, PIL out (mode kept)
    arr = up(np.asarray(...))                  # numpy (H, W[, C]) uint8/uint16/float in, the same back
    t = up(torch.rand(3, 64, 64))              # tensor (C, H, W) or (B, C, H, W) in [0, 1], the same back

``sr1step upscale`` and ``sr1step benchmark`` load models through here too.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .engine import Engine, EngineOptions
from .imageio import quantize
from .registry import method_for


def load_engine(
    method: str | None = None,
    weights: str | None = None,
    options: EngineOptions | None = None,
    *,
    steps: int | None = None,
    scale: float | None = None,
) -> Engine:
    """Load the generator of ``method`` from ``weights`` and wrap it in an Engine. With no method,
    the weights' card or folder names it; with neither, the bundled default model runs.
    ``options`` are validated when built, before anything is loaded."""
    m, weights = method_for(method, weights)
    engine = Engine(m.load_generator(weights, steps=steps, scale=scale), options or EngineOptions())
    engine.use_channels_last()
    return engine


def check_outscale(scale: float | None) -> None:
    if scale is not None and not 0 < scale <= 16:
        raise ValueError(f"--scale must be in (0, 16], got {scale:g}")


class Upscaler:
    """A loaded SR model: call it on a PIL image, a numpy array or a tensor.

    Args:
        method, weights: as ``sr1step upscale --method/--weights`` (None: the embedded default).
        scale: output scale; the model's own by default, other scales are resized with Lanczos.
        steps: sampling steps of multi-step methods.
        engine options (keywords): device, dtype, tile, tile_overlap, tile_space, batch_size,
            color_fix, seed, ensemble, as on the command line; or ``options=EngineOptions(...)``.
    """

    def __init__(
        self,
        method: str | None = None,
        weights: str | None = None,
        *,
        scale: float | None = None,
        steps: int | None = None,
        options: EngineOptions | None = None,
        **engine_options,
    ):
        check_outscale(scale)
        if options is not None and engine_options:
            raise ValueError("give either options=EngineOptions(...) or engine keywords, not both")
        self.engine = load_engine(
            method, weights, options or EngineOptions(**engine_options), steps=steps, scale=scale
        )
        self.scale = scale if scale is not None else self.engine.generator.scale

    @property
    def notes(self) -> list[str]:
        return self.engine.notes

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return max(1, round(width * self.scale)), max(1, round(height * self.scale))

    def upscale_rgb(
        self, rgb: np.ndarray, alpha: np.ndarray | None = None, progress=None, out_dtype=np.float32
    ):
        """(H, W, 3) float32 RGB in [0, 1] (+ (H, W) alpha) -> the upscaled (rgb, alpha).

        ``out_dtype`` np.uint8 / np.uint16 returns rgb quantised as image files store it, written
        band by band as the engine streams it (with pixel tiles the float output never exists)."""
        lr = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        target = self.output_size(rgb.shape[1], rgb.shape[0])
        native = self.engine.generator.scale
        as_float = np.issubdtype(out_dtype, np.floating)
        if target == (rgb.shape[1] * native, rgb.shape[0] * native):
            sr = np.empty((target[1], target[0], 3), out_dtype)

            def sink(y0: int, y1: int, rows: torch.Tensor) -> None:
                band = rows[0].permute(1, 2, 0).numpy()
                sr[y0:y1] = band if as_float else quantize(band, out_dtype)

            self.engine.stream(lr, sink, progress=progress)
        else:
            sr = self.engine.run(lr, progress=progress)[0].permute(1, 2, 0).numpy()
            interp = cv2.INTER_LANCZOS4 if target[0] > sr.shape[1] else cv2.INTER_AREA
            sr = np.clip(cv2.resize(sr, target, interpolation=interp), 0, 1)
            if not as_float:
                sr = quantize(sr, out_dtype)
        if alpha is not None:  # alpha is not an image for the model: plain bicubic
            a = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
            a = F.interpolate(a, size=(target[1], target[0]), mode="bicubic", align_corners=False)
            alpha = a.clamp(0, 1)[0, 0].numpy()
        return sr, alpha

    def __call__(self, image):
        if isinstance(image, torch.Tensor):
            return self._tensor(image)
        if isinstance(image, np.ndarray):
            return self._array(image)
        from PIL import Image

        if isinstance(image, Image.Image):
            return self._pil(image)
        raise TypeError(f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")

    def _tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(
                f"expected a (3, H, W) or (B, 3, H, W) tensor in [0, 1], got shape {tuple(x.shape)}"
            )
        _check_not_empty(x.shape[-2:])
        top = _INT_TOPS.get(x.dtype)
        if top is None and not x.is_floating_point():
            raise ValueError(f"unsupported tensor dtype {x.dtype}; use uint8, uint16 or float in [0, 1]")
        values = x.detach().float() / top if top else x.detach().float()
        if top is None:
            _check_finite(values)
        batch = values[None] if x.dim() == 3 else values
        out = self.engine.run(batch)
        h, w = batch.shape[-2:]
        tw, th = self.output_size(w, h)
        if out.shape[-2:] != (th, tw):
            out = F.interpolate(
                out, size=(th, tw), mode="bicubic", align_corners=False, antialias=True
            ).clamp(0, 1)
        out = (out * top).round().to(x.dtype) if top else out.to(x.dtype)
        out = out.to(x.device)
        return out[0] if x.dim() == 3 else out

    def _array(self, a: np.ndarray) -> np.ndarray:
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(
                f"expected an (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) array, got shape {a.shape}"
            )
        _check_not_empty(a.shape[:2])
        if a.dtype == np.uint8:
            values, top = a.astype(np.float32) / 255, 255
        elif a.dtype == np.uint16:
            values, top = a.astype(np.float32) / 65535, 65535
        elif np.issubdtype(a.dtype, np.floating):
            values, top = a.astype(np.float32), None
            _check_finite(torch.from_numpy(values))
        else:
            raise ValueError(f"unsupported array dtype {a.dtype}; use uint8, uint16 or float in [0, 1]")
        plane = values if values.ndim == 3 else values[:, :, None]
        gray = plane.shape[2] in (1, 2)  # L or LA
        rgb = np.repeat(plane[:, :, :1], 3, axis=2) if gray else plane[:, :, :3]
        alpha = plane[:, :, -1] if plane.shape[2] in (2, 4) else None
        sr, sr_alpha = self.upscale_rgb(rgb, alpha)
        out = sr.mean(axis=2, keepdims=True) if gray else sr
        if alpha is not None:
            out = np.concatenate([out, sr_alpha[:, :, None]], axis=2)
        if a.ndim == 2:
            out = out[:, :, 0]
        if top is not None:
            return (np.clip(out, 0, 1) * top + 0.5).astype(a.dtype)
        return out.astype(a.dtype)

    def _pil(self, im):
        from PIL import Image

        mode = im.mode
        if mode.startswith("I;16") or mode == "I":  # 16-bit gray (PNG's 16-bit files open as "I")
            a = np.asarray(im)
            if a.size and (a.min() < 0 or a.max() > 65535):
                raise ValueError(f"mode {mode} image with values outside 0..65535; convert it first")
            out = self._array(a.astype(np.uint16))
            return Image.fromarray(out) if mode != "I" else Image.fromarray(out.astype(np.int32), "I")
        if mode == "F":  # float gray, kept in its range (expected [0, 1])
            return Image.fromarray(self._array(np.asarray(im, dtype=np.float32)), "F")
        if mode == "LA":  # gray + alpha: a 2-channel array, kept gray
            work = im
        else:
            has_alpha = "A" in mode or "transparency" in im.info
            work = im.convert("RGBA" if has_alpha else ("L" if mode in ("1", "L") else "RGB"))
        out = Image.fromarray(self._array(np.asarray(work)))
        return out if out.mode == mode or mode not in ("RGB", "RGBA", "L") else out.convert(mode)


_INT_TOPS = {torch.uint8: 255, torch.uint16: 65535}


def _check_not_empty(hw) -> None:
    if min(hw) < 1:
        raise ValueError(f"empty image (size {tuple(hw)})")


def _check_finite(values: torch.Tensor) -> None:
    if not bool(torch.isfinite(values).all()):
        raise ValueError("the input has NaN or Inf values")
