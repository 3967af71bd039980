"""Model cards and weight resolution, offline, through the real huggingface_hub code paths."""

import json

import pytest
import torch
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.hub import (
    WeightsNotFoundError,
    bundled_dir,
    card_status,
    download_card,
    get_card,
    load_cards,
    resolve_repo,
    resolve_weights,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_repo(cache, repo_id, files, sha=SHA):
    """Lay out ``models--org--name/{refs/main, snapshots/<sha>/...}`` as huggingface_hub does."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(sha)
    for name, data in files.items():
        path = root / "snapshots" / sha / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root / "snapshots" / sha


def write_card(home, name, **fields):
    (home / "cards").mkdir(parents=True, exist_ok=True)
    lines = []
    for k, v in fields.items():
        lines.append(f"{k} = {json.dumps(v)}")
    (home / "cards" / f"{name}.toml").write_text(f'name = "{name}"\n' + "\n".join(lines) + "\n")


BASE = dict(
    method="base-model",
    summary="test",
    scale=1,
    license="MIT",
    commercial_use=True,
    source_url="https://example.org",
)


def test_shipped_cards_are_complete():
    cards = load_cards()
    for name in [
        "resshift-realsr-x4-v1",
        "resshift-realsr-x4-v3",
        "resshift-vq-f4",
        "sinsr-v1",
        "rsd-x4",
        "tadsr-x4",
        "osediff-x4",
        "sd-2-1-base",
        "sd-turbo",
        "sdxl-base",
    ]:
        assert name in cards, name
    for card in cards.values():
        assert card.files and card.license
        if card.bundled:  # ships inside the package, with every file it lists
            assert all((bundled_dir(card) / f).is_file() for f in card.files), card.name
        else:
            assert card.source_url.startswith("https://"), card.name
        if card.on_hub:
            assert len(card.revision) == 40 and all(c in "0123456789abcdef" for c in card.revision), card.name
    assert not cards["resshift-realsr-x4-v1"].commercial_use
    assert cards["rsd-x4"].params == {"noise_input": True, "unet": {"extra_in_channels": 1}}


def test_hub_card_resolves_from_cache_at_pinned_revision(hf_cache, sr1step_home):
    fake_hub_repo(hf_cache, "testorg/tiny-base", {"unet/config.json": b"{}", "vae/config.json": b'{"a": 1}'})
    write_card(
        sr1step_home,
        "tiny-base",
        **BASE,
        repo_id="testorg/tiny-base",
        revision=SHA,
        files=["unet/config.json", "vae/config.json"],
    )
    card = get_card("tiny-base")
    assert card_status(card) == "present"
    paths = download_card(card)
    assert paths["vae/config.json"].read_bytes() == b'{"a": 1}'
    assert SHA in str(paths["unet/config.json"])


def test_a_hub_download_asks_for_the_pinned_revision(hf_cache, sr1step_home, monkeypatch, tmp_path):
    import huggingface_hub

    from sr1step import hub

    write_card(sr1step_home, "net", **BASE, repo_id="testorg/net", revision=SHA, files=["w.safetensors"])
    asked = []

    def fake_download(repo_id, filename, revision=None, **kwargs):
        asked.append((repo_id, filename, revision))
        (tmp_path / filename).write_bytes(b"x")
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub, "hub_online", lambda: True)
    assert download_card(get_card("net"))["w.safetensors"] == tmp_path / "w.safetensors"
    assert asked == [("testorg/net", "w.safetensors", SHA)]


def test_hub_card_other_revision_is_missing_with_clear_message(hf_cache, sr1step_home):
    fake_hub_repo(hf_cache, "testorg/pinned", {"w.safetensors": b"x"})
    other = "f" * 40
    write_card(
        sr1step_home, "pinned", **BASE, repo_id="testorg/pinned", revision=other, files=["w.safetensors"]
    )
    card = get_card("pinned")
    assert card_status(card) == "missing"
    with pytest.raises(WeightsNotFoundError) as err:
        download_card(card)
    msg = str(err.value)
    assert (
        "w.safetensors" in msg
        and "testorg/pinned" in msg
        and other in msg
        and str(sr1step_home / "models" / "pinned") in msg
    )


def test_release_card_explains_where_to_put_file(sr1step_home):
    card = get_card("resshift-realsr-x4-v1")
    with pytest.raises(WeightsNotFoundError) as err:
        download_card(card)
    msg = str(err.value)
    assert "resshift_realsrx4_s15_v1.pth" in msg
    assert "https://github.com/zsyOAOA/ResShift/releases/download/v2.0/resshift_realsrx4_s15_v1.pth" in msg
    assert str(sr1step_home / "models" / "resshift-realsr-x4-v1") in msg and "non-commercial" in msg


def test_local_folder_wins(sr1step_home):
    write_card(sr1step_home, "localonly", **BASE, files=["a.bin"])
    folder = sr1step_home / "models" / "localonly"
    folder.mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"1")
    assert download_card(get_card("localonly"))["a.bin"] == folder / "a.bin"


def test_resolve_repo_offline(hf_cache):
    snap = fake_hub_repo(hf_cache, "testorg/weights-repo", {"config.json": b"{}"})
    assert resolve_repo("testorg/weights-repo") == snap
    assert resolve_repo(f"testorg/weights-repo@{SHA}") == snap
    with pytest.raises(WeightsNotFoundError, match="not in the local cache"):
        resolve_repo("testorg/absent")
    with pytest.raises(WeightsNotFoundError, match="not a file"):
        resolve_weights("no such thing!")


def test_models_cli_list_json_and_download_offline(hf_cache, sr1step_home):
    runner = CliRunner()
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["sd-turbo"]["source"].startswith("hf:stabilityai/sd-turbo@b261bac")
    assert by_name["resshift-realsr-x4-v1"]["status"] == "missing"
    result = runner.invoke(app, ["models", "download", "sd-turbo"])
    assert result.exit_code == 1
    assert (
        "unet/diffusion_pytorch_model.safetensors" in result.output
        and "sr1step models download" in result.output
    )
    result = runner.invoke(app, ["models", "download", "no-such-model"])
    assert result.exit_code == 2 and "unknown model" in result.output


def test_safe_loading_refuses_code_pickles(tmp_path):
    from sr1step.weights import UnsafeCheckpointError, load_state_dict

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": Evil()}, path)
    with pytest.raises(UnsafeCheckpointError, match="refusing"):
        load_state_dict(path)
    ok = tmp_path / "ok.pth"
    torch.save({"state_dict": {"module.w": torch.ones(2)}}, ok)
    assert torch.equal(load_state_dict(ok)["w"], torch.ones(2))
