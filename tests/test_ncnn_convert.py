"""benchmarks/realesrgan_from_ncnn.py: an ncnn graph written by the test from a known state dict
(fp16-tagged weights, fp32 biases, 4-byte padding) converts back to that state dict."""

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from realesrgan_from_ncnn import FP16_TAG, convert, official_names  # noqa: E402


def ncnn_files(state: dict, names: list[str], fp16: bool = True) -> tuple[str, bytes]:
    lines, blob = ["7767517", f"{len(names)} {len(names)}"], b""
    for i, name in enumerate(names):
        w, b = state[f"{name}.weight"], state[f"{name}.bias"]
        lines.append(f"Convolution Conv_{i} 1 1 in{i} out{i} 0={w.shape[0]} 1=3 4=1 5=1 6={w.numel()} 9=2")
        if fp16:
            data = w.numpy().astype(np.float16).tobytes()
            blob += struct.pack("<I", FP16_TAG) + data + b"\0" * (-len(data) % 4)
        else:
            blob += struct.pack("<I", 0) + w.numpy().astype(np.float32).tobytes()
        blob += b.numpy().astype(np.float32).tobytes()
    return "\n".join(lines) + "\n", blob


def random_state(names: list[str], nf=3, gc=1, seed=0) -> dict:  # odd sizes: padded fp16 arrays
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv_first": (nf, 3), "conv_last": (3, nf)}
    state = {}
    for name in names:
        if ".rdb" in name:
            c = int(name[-1])
            out, inp = (nf if c == 5 else gc), nf + (c - 1) * gc
        else:
            out, inp = shapes.get(name, (nf, nf))
        state[f"{name}.weight"] = torch.randn(out, inp, 3, 3, generator=g)
        state[f"{name}.bias"] = torch.randn(out, generator=g)
    return state


@pytest.mark.parametrize("fp16", [True, False])
def test_an_ncnn_graph_converts_back_to_its_state_dict(fp16):
    names = official_names()
    state = random_state(names)
    param, blob = ncnn_files(state, names, fp16)
    out = convert(param, blob)
    assert list(out) == list(state)
    for key, value in state.items():
        expected = value.half().float() if fp16 and key.endswith("weight") else value
        torch.testing.assert_close(out[key], expected, rtol=0, atol=0)


def test_another_graph_is_refused():
    names = official_names(blocks=2)
    param, blob = ncnn_files(random_state(names), names)
    with pytest.raises(ValueError, match="expected 351 convolutions"):
        convert(param, blob)
