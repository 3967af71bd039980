"""Parameter counts and a memory estimate for D3SR presets, from configs (no weights needed).

    python benchmarks/d3sr_params.py [--preset sd-turbo]

Memory = frozen weights (in frozen_dtype) + trainable parameters with their gradients and AdamW
states (fp32: 16 bytes each) + the EMA copy; activations are not estimated here (measure them
on a GPU with `sr1step train ... --max-steps 5` and torch.cuda.max_memory_allocated).
"""

import argparse

from sr1step.methods.d3sr import D3SR, parameter_report

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sd-turbo", choices=sorted(D3SR.presets))
    args = ap.parse_args()
    cfg = D3SR.presets[args.preset]().model
    r = parameter_report(cfg)
    frozen_b = BYTES[cfg.frozen_dtype]
    trainable = r["generator_lora"] + r["discriminator_trainable"]
    frozen = r["generator_unet"] + r["generator_vae"] + r["discriminator_backbone"]
    gib = 2**30
    print(
        f"preset {args.preset}: generator {r['generator_total'] / 1e6:.2f}M (UNet "
        f"{r['generator_unet'] / 1e6:.2f}M + "
        f"VAE {r['generator_vae'] / 1e6:.2f}M + LoRA {r['generator_lora'] / 1e6:.2f}M); discriminator "
        f"{(r['discriminator_backbone'] + r['discriminator_trainable']) / 1e6:.2f}M "
        f"(backbone {r['discriminator_backbone'] / 1e6:.2f}M + LoRA/head "
        f"{r['discriminator_trainable'] / 1e6:.2f}M)"
    )
    print(
        f"frozen weights ({cfg.frozen_dtype}): {frozen * frozen_b / gib:.2f} GiB; trainable + grads + AdamW: "
        f"{trainable * 16 / gib:.2f} GiB; EMA: {r['generator_lora'] * 4 / gib:.2f} GiB; "
        f"total before activations: "
        f"{(frozen * frozen_b + trainable * 16 + r['generator_lora'] * 4) / gib:.2f} GiB"
    )


if __name__ == "__main__":
    main()
