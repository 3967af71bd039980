"""The ResShift family's presets as data: network configurations (the official ones and sr1step's)
and training runs (``TRAIN_PRESETS``, and the data and loop settings the students' presets share)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ..config import unknown_name_error
from ..data.degradations import MILD_REALESRGAN, REAL_REALESRGAN
from ..diffusion.resshift import ResShiftScheduleConfig
from ..generators.resshift import ResShiftConfig
from ..nets.autoencoders import AutoencoderConfig
from ..nets.resshift_unet import (
    ResShiftUNetConfig,
)
from ..training.config import RunConfig

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


@dataclass(frozen=True)
class ResShiftTraining:
    """The [model] section of a ResShift training run."""

    network: ResShiftConfig = NETWORKS["realsr-v3"]
    autoencoder_weights: str = VQ_CARD  # model card, file, or "random" (smoke tests only)
    init_weights: str = ""  # start from a ResShift-family model (card, folder or file) instead of scratch
    lpips_weight: float = 0.0  # v3/bicsr: 1.0, LPIPS(VGG) on the decoded x0 prediction
    lpips_net: Literal["vgg", "alex"] = "vgg"


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
