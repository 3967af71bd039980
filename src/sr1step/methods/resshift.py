"""The ResShift family: ResShift (multi-step), SinSR, RSD and TAD-SR (one step) as upscale methods.

One method class parameterised by data: the members differ only in their name, default model,
published row and whether they run the single prediction at t = T-1. Which network a weight
file holds (step count, an RSD noise input channel) comes from the card, the folder's
config.json, or the checkpoint itself. ``NETWORKS`` names the official configurations; official
``.pth`` files load directly (keys checked with ``strict=True``) or convert once with
``sr1step models convert``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, apply_overrides, unknown_name_error
from ..contract import WeightFolderError
from ..data.degradations import MILD_REALESRGAN, REAL_REALESRGAN
from ..diffusion.resshift import ResShiftScheduleConfig
from ..generators.resshift import ResShiftConfig, ResShiftGenerator
from ..hub import ModelCard, WeightsNotFoundError, converted_dir, download_card, get_card
from ..nets.autoencoders import AutoencoderConfig, convert_ldm_vq_state_dict
from ..nets.resshift_unet import (
    ResShiftUNetConfig,
    load_official_state,
    narrow_input_conv,
    widen_input_conv,
)
from ..training.config import RunConfig
from ..training.recipe import Batch, Recipe
from ..weights import WeightFileError, describe_mismatch, load_state_dict
from .base import Method

VQ_CARD = "resshift-vq-f4"

# A 0.8M-parameter UNet for CPU tests and demos.
TINY_RESSHIFT_UNET = ResShiftUNetConfig(
    image_size=16,
    model_channels=32,
    num_res_blocks=(1, 1),
    attention_resolutions=(16, 8),
    channel_mult=(1, 2),
    num_head_channels=16,
    swin_embed_dim=32,
    window_size=4,
    mlp_ratio=2.0,
    lq_size=16,
)

# Network configurations: the official ones (configs/*.yaml of zsyOAOA/ResShift) and tiny test networks.
NETWORKS: dict[str, ResShiftConfig] = {
    # realsr_swinunet_realesrgan256.yaml (v1, v2): 15 steps, sqrt(eta_1) = 0.02
    "realsr-v1": ResShiftConfig(schedule=ResShiftScheduleConfig(steps=15, min_noise_level=0.04)),
    # realsr_swinunet_realesrgan256_journal.yaml (v3) and bicx4_swinunet_lpips.yaml: 4 steps
    "realsr-v3": ResShiftConfig(schedule=ResShiftScheduleConfig(steps=4, min_noise_level=0.2)),
    # A tiny pixel-space network (no autoencoder) for CPU tests and demos.
    "tiny": ResShiftConfig(
        unet=TINY_RESSHIFT_UNET,
        # residual parameterisation: the tiny net starts at bicubic and learns details in minutes
        schedule=ResShiftScheduleConfig(steps=4, min_noise_level=0.2, latent=False, predict="residual"),
        autoencoder=AutoencoderConfig(kind="pixel"),
    ),
    # sr1step's embedded default (teacher and students): a 5.0M-parameter UNet that runs at the LR
    # resolution on the 4x space-to-depth of the image (48 channels), residual parameterisation and
    # a small kappa (its samples stay close to the image: a PSNR-friendly default). Our choice; two
    # residual blocks per level gained 0.06 dB over one in the same GPU time (docs/default-model.md).
    "compact": ResShiftConfig(
        unet=ResShiftUNetConfig(
            image_size=64,
            in_channels=48,
            out_channels=48,
            model_channels=64,
            num_res_blocks=(2, 2, 2),
            attention_resolutions=(16,),
            channel_mult=(1, 1, 2),
            num_head_channels=32,
            swin_embed_dim=64,
            window_size=8,
            mlp_ratio=2.0,
            lq_size=64,
        ),
        schedule=ResShiftScheduleConfig(
            steps=4, kappa=0.25, min_noise_level=0.2, latent=False, predict="residual"
        ),
        autoencoder=AutoencoderConfig(kind="unshuffle", unshuffle=4),
    ),
    # The same tiny UNet on a tiny VQ-f4 (the production latent path).
    "tiny-vq": ResShiftConfig(
        unet=TINY_RESSHIFT_UNET,
        schedule=ResShiftScheduleConfig(steps=4, min_noise_level=0.2),
        autoencoder=AutoencoderConfig(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=256, tile=64),
    ),
}


def network_config(name: str) -> ResShiftConfig:
    if name not in NETWORKS:
        raise unknown_name_error("ResShift network", name, list(NETWORKS))
    return NETWORKS[name]


def guess_network(path: Path) -> str:
    """Official file names carry the step count (``_s15_`` / ``_s4``); SinSR, RSD and TAD-SR
    files are v1 (15-step) students."""
    m = re.search(r"_s(\d+)", path.name)
    if m and int(m[1]) == 4:
        return "realsr-v3"
    return "realsr-v1"


def with_noise_input(cfg: ResShiftConfig, channels: int) -> ResShiftConfig:
    """The network with ``channels`` extra N(0, I) input channels (RSD's student takes one)."""
    if channels not in (0, 1):
        raise ValueError(f"a ResShift-family network takes 0 or 1 noise input channels, not {channels}")
    unet = dataclasses.replace(cfg.unet, extra_in_channels=channels)
    return dataclasses.replace(cfg, unet=unet, noise_input=channels == 1)


def generator_from_official(
    unet_path: Path, vq_file: Callable[[], Path | None], cfg: ResShiftConfig
) -> ResShiftGenerator:
    """Build a generator from official ``.pth`` files (loaded with ``weights_only=True``). The
    number of input channels of the checkpoint's first conv decides whether the network has a
    noise input (RSD's released student does), whatever ``cfg`` says. ``vq_file`` is asked for
    the autoencoder only once the UNet file has proved to be one."""
    state = load_state_dict(unet_path)
    first = state.get("input_blocks.0.0.weight")
    if first is not None:
        u = cfg.unet
        cfg = with_noise_input(cfg, first.shape[1] - u.in_channels - u.lq_channels)
    gen = ResShiftGenerator(cfg)
    try:
        load_official_state(gen.unet, state)
    except RuntimeError:  # another network's file
        mismatch = describe_mismatch(gen.unet.state_dict(), state)
        raise WeightFileError(f"{unet_path}: not a checkpoint of this ResShift network: {mismatch}") from None
    if gen.autoencoder.vq is not None:
        vq_path = vq_file()
        if vq_path is None:
            raise WeightsNotFoundError("this model needs the VQ-f4 autoencoder (model resshift-vq-f4)")
        levels = len(cfg.autoencoder.ch_mult)
        gen.autoencoder.vq.load_state_dict(
            convert_ldm_vq_state_dict(load_state_dict(vq_path), levels), strict=True
        )
    return gen.eval()


def _vq_file(card: ModelCard | None = None) -> Path | None:
    """The autoencoder file a model needs: its card's first requirement (default: the VQ-f4)."""
    name = (card.requires[0] if card.requires else None) if card is not None else VQ_CARD
    return None if name is None else _card_file(name)


def _card_file(name: str) -> Path:
    """The (first) file of a single-file model card, downloaded or found locally."""
    card = get_card(name)
    return download_card(card)[card.files[0]]


def load_teacher(spec: str) -> ResShiftGenerator:
    """A frozen ResShift-family model to distill: a card of any family member, one of our
    ResShift-family weight folders, or an official checkpoint file."""
    from ..hub import REPO_SPEC, load_cards, resolve_weights

    path = Path(spec).expanduser()
    if not spec:
        raise ConfigError(
            "distillation needs a teacher: --teacher MODEL (a card name, weight folder or file)"
        )
    if spec not in load_cards() and not path.exists() and not REPO_SPEC.match(spec):
        raise ConfigError(
            f"teacher {spec!r} does not exist (not a file, a folder, a model name or a Hub repo)"
        )
    target = resolve_weights(spec)
    if isinstance(target, ModelCard):
        if target.method not in FAMILY:
            family = ", ".join(FAMILY)
            raise ConfigError(
                f"teacher {spec!r} is a {target.method} model, not a ResShift-family one ({family})"
            )
        gen = RESSHIFT.from_card(target)
    elif target.is_dir():
        try:
            gen = ResShiftGenerator.from_folder(target)
        except WeightFolderError as err:
            raise ConfigError(f"teacher {spec!r} is not a ResShift-family model: {err}") from None
    else:
        gen = RESSHIFT.from_file(target)
    return gen.requires_grad_(False).eval()


def card_config(card: ModelCard) -> ResShiftConfig:
    cfg = network_config(card.preset or "realsr-v1")
    if card.params:
        cfg = apply_overrides(cfg, card.params)
    return cfg


# --- training -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResShiftTraining:
    """The [model] section of a ResShift training run."""

    network: ResShiftConfig = NETWORKS["realsr-v3"]
    autoencoder_weights: str = VQ_CARD  # model card, file, or "random" (smoke tests only)
    init_weights: str = ""  # start from a ResShift-family model (card, folder or file) instead of scratch
    lpips_weight: float = 0.0  # v3/bicsr: 1.0, LPIPS(VGG) on the decoded x0 prediction
    lpips_net: Literal["vgg", "alex"] = "vgg"


class ResShiftDistillation(Recipe):
    """What the ResShift-family distillation recipes share (RSD, TAD-SR): the frozen teacher on
    its full chain, a one-step student initialised from it (plus ``noise_channels`` zero-weight
    N(0, I) inputs), the shared frozen autoencoder, and latents of a batch. ``run.model`` has a
    ``teacher`` field."""

    def __init__(self, run: RunConfig, noise_channels: int = 0):
        super().__init__()
        spec = run.model.teacher
        teacher = load_teacher(spec)
        if run.data.scale != teacher.scale:
            raise ConfigError(f"data.scale ({run.data.scale}) must equal the teacher's ({teacher.scale})")
        if teacher.config.noise_input:
            raise ConfigError(f"teacher {spec!r} is an RSD student (noise input); use a multi-step model")
        # Distillation works on the teacher's own, full chain (no respacing).
        schedule = dataclasses.replace(teacher.config.schedule, sample_steps=None)
        teacher.set_sampling(dataclasses.replace(teacher.config, schedule=schedule, steps=None))
        self.teacher_config = teacher.config
        self.schedule = teacher.schedule
        self.teacher = teacher.unet.requires_grad_(False).eval()
        self.student = ResShiftGenerator(with_noise_input(teacher.config, noise_channels).with_steps(1))
        # New input channels get zero weights: at step 0 the student is the teacher's one-step prediction.
        state = teacher.unet.state_dict()
        self.student.unet.load_state_dict(
            widen_input_conv(state, noise_channels) if noise_channels else state
        )
        self.student.autoencoder = teacher.autoencoder.requires_grad_(False).eval()  # shared, frozen

    def generator(self):
        return self.student

    def frozen_modules(self) -> list[nn.Module]:
        return [self.teacher, self.student.autoencoder]

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in self.frozen_modules():
            if frozen is not None:
                frozen.eval()
        return self

    def latents(self, batch: Batch):
        """(z_y: latent of the bicubic-upsampled LR, lq: the UNet's LR input, z0: latent of HR)."""
        with torch.no_grad():
            cond = self.student.encode(batch.lr)
            c = self.student.config.unet.in_channels
            z0 = self.student.autoencoder.encode(batch.hr * 2 - 1)
        return cond[:, :c], cond[:, c:], z0

    def x0(self, net, x_t, t, z_y, lq, noise_map=None):
        """A network's x0 prediction at x_t (its input scaled and its output converted as trained)."""
        s = self.schedule
        extra = () if noise_map is None else (noise_map,)
        return s.x0_from_output(net(s.scale_input(x_t, t), s.model_timesteps(t), lq, *extra), z_y)


class ResShiftRecipe(Recipe):
    """x0-prediction MSE in latent space at t ~ U{0..T-1} (+ optional LPIPS), as ResShift trains."""

    def __init__(self, run: RunConfig):
        super().__init__()
        cfg: ResShiftTraining = run.model
        if run.data.scale != cfg.network.scale:
            raise ValueError(
                f"data.scale ({run.data.scale}) must equal the network scale ({cfg.network.scale})"
            )
        self.gen = ResShiftGenerator(dataclasses.replace(cfg.network, steps=None))
        if cfg.init_weights:
            init = load_teacher(cfg.init_weights)  # any family member's weights
            state = init.state_dict()
            if init.config.noise_input:  # from an RSD student: its noise channel is dropped
                u = cfg.network.unet
                state = narrow_input_conv(state, u.in_channels + u.lq_channels)
            self.gen.load_state_dict(state)
        else:
            if self.gen.autoencoder.vq is not None and cfg.autoencoder_weights != "random":
                state = load_state_dict(_weights_file(cfg.autoencoder_weights))
                if any(k.startswith("encoder.down.") for k in state):  # official layout
                    state = convert_ldm_vq_state_dict(state, len(cfg.network.autoencoder.ch_mult))
                self.gen.autoencoder.vq.load_state_dict(state, strict=True)
            if cfg.network.schedule.predict == "residual":
                # From scratch with the residual parameterisation: a zero output conv starts at bicubic.
                torch.nn.init.zeros_(self.gen.unet.out[2].weight)
                torch.nn.init.zeros_(self.gen.unet.out[2].bias)
        self.gen.autoencoder.requires_grad_(False).eval()
        self.lpips_weight = cfg.lpips_weight
        self.lpips = None
        if cfg.lpips_weight > 0:
            from ..metrics import create_metric

            self.lpips = create_metric({"vgg": "lpips-vgg", "alex": "lpips"}[cfg.lpips_net], as_loss=True)
            self.lpips.requires_grad_(False)

    def networks(self):
        return {"generator": self.gen.unet}

    def train(self, mode: bool = True):
        super().train(mode)
        self.gen.autoencoder.eval()  # frozen, always in eval mode
        return self

    def loss(self, phase, batch, state):
        gen, sched = self.gen, self.gen.schedule
        y = batch.lr * 2 - 1
        with torch.no_grad():
            up = F.interpolate(y, scale_factor=gen.scale, mode="bicubic")
            z0 = gen.autoencoder.encode(batch.hr * 2 - 1)
            z_y = gen.autoencoder.encode(up)
        lq = y if gen.latent_ratio == 1 else up
        t = torch.randint(0, sched.num_steps, (z0.shape[0],), device=z0.device)
        x_t = sched.q_sample(z0, z_y, t, torch.randn_like(z0))
        out = self.wrapped["generator"](sched.scale_input(x_t, t), sched.model_timesteps(t), lq)
        pred = sched.x0_from_output(out, z_y)
        mse = F.mse_loss(pred.float(), z0.float())
        logs = {"mse": mse.item()}
        loss = mse
        if self.lpips is not None:
            image = gen.autoencoder.decode(pred).clamp(-1, 1)
            lp = self.lpips((image + 1) / 2, batch.hr).mean()
            loss = loss + self.lpips_weight * lp
            logs["lpips"] = lp.item()
        return loss, logs

    def generator(self):
        return self.gen


def _weights_file(spec: str) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_file() else _card_file(spec)


def _resshift_run(network: str, model: dict, data: dict, train: dict) -> RunConfig:
    return RunConfig.build("resshift", ResShiftTraining(network=NETWORKS[network], **model), data, train)


# The data of every tiny preset: the built-in photos, bicubic x4, native-resolution 64 px crops
# (the tiny teachers and their students must see the same kind of crops).
TINY_DATA = dict(
    degradation="bicubic",
    gt_size=64,
    crop_pad_size=64,
    val_size=64,
    val_count=8,
    cache_images=True,
    rescale_gt=False,
)

# The data of the compact default's teacher and students (benchmarks/photo_set.py builds the folders).
COMPACT_DATA = dict(
    train="data/photos/train",
    val="data/photos/val",
    degradation="realesrgan",
    realesrgan=MILD_REALESRGAN,
    gt_size=256,
    crop_pad_size=288,
    rescale_gt=False,
    val_size=256,
    val_count=8,
    cache_images=True,
)

# The data of the blind real-world default (sr1step-real-x4): the same photos and crops, stronger
# degradations (REAL_REALESRGAN, 20 % clean) and crops in all eight orientations.
REAL_DATA = {**COMPACT_DATA, "realesrgan": REAL_REALESRGAN, "rotate": True}


def real_variant(compact: RunConfig, **model) -> RunConfig:
    """A student's `real` preset: its `compact` recipe on the blind teacher and REAL_DATA."""
    model = dataclasses.replace(compact.model, teacher="runs/real-teacher/export", **model)
    return dataclasses.replace(compact, model=model, data=dataclasses.replace(compact.data, **REAL_DATA))


# The loop of the compact default's students (the `compact` presets of RSD and TAD-SR).
COMPACT_DISTILL = dict(
    max_steps=300,
    batch_size=4,
    lr=5e-5,
    ema_decay=0.99,
    mixed_precision="bf16",
    validate_every=100,
    checkpoint_every=50,
    log_every=10,
    sample_images=4,
)

TRAIN_PRESETS = {
    # 2 CPU cores: tiny pixel-space network on the built-in photos, bicubic x4 (~0.7 s/step; the
    # one-step prediction beats bicubic within minutes, the 4-step chain after ~2000 steps).
    "tiny": lambda: _resshift_run(
        "tiny",
        {},
        TINY_DATA,
        dict(
            max_steps=3000,
            batch_size=8,
            lr=1e-3,
            warmup_steps=20,
            ema_decay=0.99,
            validate_every=500,
            checkpoint_every=500,
            log_every=10,
            device="auto",
            sample_images=4,
        ),
    ),
    # The same on a tiny random VQ-f4: exercises the latent path (not meant to learn much).
    "tiny-vq": lambda: _resshift_run(
        "tiny-vq",
        {"autoencoder_weights": "random"},
        dict(
            degradation="realesrgan",
            gt_size=64,
            crop_pad_size=80,
            val_size=64,
            val_count=4,
            cache_images=True,
            rescale_gt=False,
        ),
        dict(
            max_steps=50,
            batch_size=4,
            lr=2e-4,
            ema_decay=0.99,
            validate_every=0,
            checkpoint_every=50,
            sample_images=2,
        ),
    ),
    # sr1step's embedded default, teacher stage 1 (benchmarks/default_model.py; stage 2 overrides
    # it): the photo set of benchmarks/photo_set.py, MILD_REALESRGAN (90 % clean bicubic), 256 px
    # native crops (the photos are tiles of 4-5K originals), bf16 autocast. Batch 32: 7 it/s on
    # an H100 shared by three runs (8 minutes).
    "compact": lambda: _resshift_run(
        "compact",
        {},
        COMPACT_DATA,
        dict(
            max_steps=2860,
            batch_size=32,
            lr=5e-4,
            warmup_steps=200,
            lr_schedule="cosine",
            ema_decay=0.999,
            mixed_precision="bf16",
            validate_every=500,
            checkpoint_every=250,
            log_every=25,
            sample_images=4,
        ),
    ),
    # The blind real-world default's teacher (benchmarks/default_model.py --model real): the compact
    # network started from the fidelity model's weights (its noise channel dropped), fine-tuned on
    # REAL_DATA at batch 8 on a 2-core CPU.
    "real": lambda: _resshift_run(
        "compact",
        {"init_weights": "sr1step-compact-x4"},
        REAL_DATA,
        dict(
            max_steps=2000,
            batch_size=8,
            lr=2e-4,
            warmup_steps=50,
            lr_schedule="cosine",
            ema_decay=0.995,
            mixed_precision="bf16",
            validate_every=500,
            checkpoint_every=100,
            log_every=25,
            sample_images=4,
        ),
    ),
    # NeurIPS v1 (configs/realsr_swinunet_realesrgan256.yaml): 8 GPUs x 8; one GPU: train.grad_accum = 8.
    "realsr-v1": lambda: _resshift_run(
        "realsr-v1",
        {},
        dict(degradation="realesrgan", gt_size=256, crop_pad_size=300, val_size=256),
        dict(
            max_steps=300_000,
            batch_size=8,
            lr=5e-5,
            warmup_steps=5000,
            ema_decay=0.999,
            mixed_precision="fp16",
            validate_every=10_000,
            checkpoint_every=10_000,
        ),
    ),
    # Journal v3 (configs/realsr_swinunet_realesrgan256_journal.yaml): MSE + LPIPS, cosine after warm-up,
    # total batch 96 (8 GPUs x 12).
    "realsr-v3": lambda: _resshift_run(
        "realsr-v3",
        {"lpips_weight": 1.0},
        dict(degradation="realesrgan", gt_size=256, crop_pad_size=300, val_size=256),
        dict(
            max_steps=400_000,
            batch_size=12,
            lr=5e-5,
            warmup_steps=5000,
            lr_schedule="cosine",
            ema_decay=0.999,
            mixed_precision="fp16",
            validate_every=10_000,
            checkpoint_every=10_000,
        ),
    ),
}


@dataclass
class ResShiftFamily(Method):
    """A member of the ResShift family; ``one_step`` members run only the prediction at t = T-1."""

    one_step: bool = False

    def configure(self, cfg: ResShiftConfig) -> ResShiftConfig:
        return cfg.with_steps(1) if self.one_step else cfg

    def from_card(self, card: ModelCard) -> ResShiftGenerator:
        folder = converted_dir(card)
        if (folder / "config.json").is_file():
            return self.from_folder(folder)
        files = download_card(card)
        return generator_from_official(
            files[card.files[0]], lambda: _vq_file(card), self.configure(card_config(card))
        )

    def random_generator(self) -> ResShiftGenerator:
        torch.manual_seed(0)
        return ResShiftGenerator(self.configure(card_config(get_card(self.default_model)))).eval()

    def from_folder(self, folder: Path) -> ResShiftGenerator:
        gen = ResShiftGenerator.from_folder(folder)
        gen.set_sampling(self.configure(gen.config))
        return gen

    def from_file(self, path: Path) -> ResShiftGenerator:
        if path.suffix not in (".pth", ".pt", ".ckpt", ".safetensors"):
            raise ValueError(f"{path}: expected an official .pth checkpoint or a weight folder")
        return generator_from_official(path, _vq_file, self.configure(network_config(guess_network(path))))

    def with_steps(self, gen: ResShiftGenerator, steps: int) -> ResShiftGenerator:
        if self.one_step:
            return super().with_steps(gen, steps)
        total = gen.config.schedule.steps
        if not 1 <= steps <= total:
            raise ValueError(f"--steps must be between 1 and {total} for this model")
        schedule = dataclasses.replace(gen.config.schedule, sample_steps=steps)
        gen.set_sampling(dataclasses.replace(gen.config, schedule=schedule, steps=None))
        return gen

    def convert_card(self, card: ModelCard, files: dict[str, Path], out: Path) -> None:
        gen = generator_from_official(files[card.files[0]], lambda: _vq_file(card), card_config(card))
        gen.save_folder(
            out, card.method, {"source": card.source_url, "license": card.license, "model": card.name}
        )


RESSHIFT = ResShiftFamily(
    "resshift",
    "ResShift (NeurIPS 2023 / TPAMI 2024): residual-shifting diffusion, 4 or 15 steps",
    default_model="resshift-realsr-x4-v3",
    published_as="ResShift-s15",
    recipe=ResShiftRecipe,
    config_class=ResShiftTraining,
    presets=TRAIN_PRESETS,
    default_preset="realsr-v3",
)
SINSR = ResShiftFamily(
    "sinsr",
    "SinSR (CVPR 2024): ResShift distilled to one step",
    default_model="sinsr-v1",
    published_as="SinSR-s1",
    one_step=True,
)
# RSD (methods/rsd.py) and TAD-SR (methods/tadsr.py) are family members with distillation recipes.

FAMILY = ("resshift", "sinsr", "rsd", "tadsr")  # card methods whose files are ResShift networks
