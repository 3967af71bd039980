"""OSEDiff: a synthetic release in the official layout, on a tiny SD 2.x base, against peft."""

import json

import numpy as np
import pytest
import torch
from conftest import natural_image
from PIL import Image
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.engine import Engine
from sr1step.generators.sd_onestep import SDOneStepConfig, SDOneStepGenerator
from sr1step.nets.sd_base import embed_prompt, load_sd_unet, load_sd_vae, merge_peft_lora
from sr1step.nets.sd_configs import SD_SCHEDULER
from sr1step.registry import get_method

runner = CliRunner()
# The official target patterns (OSEDiff initialize_unet / initialize_vae).
PATTERNS = (
    "to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut", "conv_out",
    "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj",
)  # fmt: skip


def official_module_groups(unet):
    """(encoder, decoder, others) module lists, grouped as the official code groups them."""
    groups = ([], [], [])
    for name, _ in unet.named_parameters():
        if "bias" in name or "norm" in name:
            continue
        module = name.replace(".weight", "")
        if any(p in name for p in PATTERNS):
            if "down_blocks" in name or "conv_in" in name:
                groups[0].append(module)
            elif "up_blocks" in name or "conv_out" in name:
                groups[1].append(module)
            else:
                groups[2].append(module)
    return groups


def write_tiny_base(folder):
    """A diffusers-layout SD 2.x-like base: tiny UNet, VAE, scheduler, CLIP text encoder, tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet, _ = load_sd_unet("tiny")
    unet.save_pretrained(folder / "unet")
    load_sd_vae("tiny").save_pretrained(folder / "vae")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD_SCHEDULER))
    (folder / "vocab.json").write_text(
        json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3})
    )
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    ).save_pretrained(folder / "tokenizer")
    text_cfg = CLIPTextConfig(
        vocab_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )  # fmt: skip
    CLIPTextModel(text_cfg).save_pretrained(folder / "text_encoder")
    return [
        str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file() and p.parent != folder
    ]


def peft_reference(base, rank=4):
    """The official model: three UNet adapters + a VAE-encoder adapter (alpha = peft default 8),
    trained conv_in; random non-zero B. Returns (release dict, generator running the adapters)."""
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(1)
    unet, sched = load_sd_unet(base)
    vae = load_sd_vae(base)
    names = ("default_encoder", "default_decoder", "default_others")
    for name, modules in zip(names, official_module_groups(unet)):
        unet.add_adapter(
            LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=modules), adapter_name=name
        )
    unet.set_adapters(list(names))
    vae_modules = [
        n
        for n, _ in vae.named_modules()
        if n == "quant_conv" or (n.startswith("encoder.") and n.split(".")[-1] in PATTERNS)
    ]
    inject_adapter_in_model(
        LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=vae_modules),
        vae,
        adapter_name="default_encoder",
    )
    with torch.no_grad():
        for model in (unet, vae):
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
        unet.conv_in.base_layer.weight.add_(0.01 * torch.randn_like(unet.conv_in.base_layer.weight))
    release = {
        "unet_lora_encoder_modules": official_module_groups(unet)[0],
        "rank_unet": rank,
        "rank_vae": rank,
        "state_dict_unet": {
            k: v.clone() for k, v in unet.state_dict().items() if "lora" in k or "conv_in" in k
        },
        "state_dict_vae": {k: v.clone() for k, v in vae.state_dict().items() if "lora" in k},
    }
    prompt = embed_prompt(base, "", unet.config.cross_attention_dim)
    reference = SDOneStepGenerator(
        SDOneStepConfig(base=str(base), vae_tile=0), unet, vae, sched, prompt
    ).eval()
    return release, reference


@pytest.fixture
def osediff_card(sr1step_home, tmp_path):
    base = sr1step_home / "models" / "tiny-sd21"
    base.mkdir(parents=True)
    files = write_tiny_base(base)
    release, reference = peft_reference(base)
    (sr1step_home / "models" / "tiny-osediff").mkdir(parents=True)
    torch.save(release, sr1step_home / "models" / "tiny-osediff" / "osediff.pkl")
    cards = sr1step_home / "cards"
    cards.mkdir()
    common = 'license = "test"\ncommercial_use = false\nsource_url = "https://example.org/x"\n'
    (cards / "tiny-sd21.toml").write_text(
        f'name = "tiny-sd21"\nmethod = "base-model"\nsummary = "t"\nscale = 1\n{common}files = '
        f"{json.dumps(files)}\n"
    )
    (cards / "tiny-osediff.toml").write_text(
        f'name = "tiny-osediff"\nmethod = "osediff"\nsummary = "t"\nscale = 4\n{common}files = '
        '["osediff.pkl"]\nrequires = ["tiny-sd21"]\n'
    )
    return reference


def test_merged_release_equals_peft_adapters(osediff_card):
    lr = torch.from_numpy(natural_image(16, 3)).permute(2, 0, 1)[None]
    ours = get_method("osediff").load_generator("tiny-osediff")
    assert not any("lora" in n for n, _ in ours.named_parameters())  # folded into the base weights
    assert ours.config.timestep == 999 and ours.steps == 1 and ours.scale == 4
    with torch.no_grad():
        ref = osediff_card(lr)
        out = ours(lr)
        torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)
        # ... and the LoRA matters: the bare base gives something else
        base_unet, _ = load_sd_unet(ours.config.base)
        bare = SDOneStepGenerator(
            ours.config, base_unet, load_sd_vae(ours.config.base), dict(SD_SCHEDULER), ours.prompt_embeds
        )
        assert (bare.eval()(lr) - ref).abs().max() > 1e-3
    assert Engine(ours).run(lr).shape == (1, 3, 64, 64)


def test_upscale_osediff_cli(osediff_card, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray((natural_image(16, 4) * 255).astype(np.uint8)).save(src)
    result = runner.invoke(
        app, ["upscale", str(src), str(tmp_path / "o"), "--method", "osediff", "--weights", "tiny-osediff"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o" / "in.png").size == (64, 64)


def test_merge_rejects_keys_of_another_network():
    unet, _ = load_sd_unet("tiny")
    with pytest.raises(KeyError, match="not found"):
        merge_peft_lora(
            unet, {"nope.lora_A.x.weight": torch.zeros(4, 8), "nope.lora_B.x.weight": torch.zeros(8, 4)}, 8.0
        )
    with pytest.raises(KeyError, match="lora_A only"):
        merge_peft_lora(unet, {"conv_in.lora_A.x.weight": torch.zeros(4, 4, 3, 3)}, 8.0)


def test_release_that_is_not_osediff_is_refused(tmp_path):
    path = tmp_path / "other.pkl"
    torch.save({"params": {"w": torch.zeros(1)}}, path)
    src = tmp_path / "in.png"
    Image.fromarray((natural_image(16, 4) * 255).astype(np.uint8)).save(src)
    result = runner.invoke(
        app, ["upscale", str(src), str(tmp_path / "o"), "--method", "osediff", "--weights", str(path)]
    )
    assert result.exit_code == 1 and "not an OSEDiff release" in result.output
