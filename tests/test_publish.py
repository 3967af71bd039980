"""`sr1step models push`: the model card, the upload plan and commit, and a round trip through a
fake local Hub cache."""

import types

import torch
from test_hub import fake_hub_repo
from test_training import tiny_run
from typer.testing import CliRunner

from sr1step.cli import app
from sr1step.methods.resshift import RESSHIFT
from sr1step.publish import plan_push, push
from sr1step.training.trainer import Trainer

runner = CliRunner()


def trained_export(tmp_path):
    run = tiny_run(steps=2, validate_every=2)
    result = Trainer(run, RESSHIFT.build_recipe, tmp_path / "run", log=lambda m: None).fit()
    return result.export_dir, result.validations[-1]


class FakeApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def create_commit(self, repo_id, operations, **kw):
        self.calls.append(("create_commit", repo_id, [op.path_in_repo for op in operations], operations))
        return types.SimpleNamespace(oid="f" * 40)


def test_card_plan_commit_and_round_trip(tmp_path, hf_cache):
    folder, val = trained_export(tmp_path)
    plan = plan_push(folder, "someone/tiny-resshift", private=True)
    card = plan.card
    assert "method: `resshift`" in card and "training steps: 2" in card and "S-Lab" in card
    assert (
        f"| 2 | {round(val['psnr'], 4)} |" in card and "[train]" in card
    )  # validation figures and run config
    assert {"config.json", "unet.safetensors", "train_config.toml", "README.md"} <= set(plan.files)
    api = FakeApi()
    revision = push(plan, api)
    assert revision == "f" * 40
    assert api.calls[0] == (
        "create_repo",
        "someone/tiny-resshift",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    uploaded = api.calls[1][2]
    assert sorted(uploaded) == sorted(plan.files)
    # round trip: the files as the Hub would serve them, loaded by --weights ORG/NAME@REVISION
    files = {f: (folder / f).read_bytes() for f in plan.files if f != "README.md"}
    fake_hub_repo(hf_cache, "someone/tiny-resshift", files, sha=revision)
    loaded = RESSHIFT.load_generator(f"someone/tiny-resshift@{revision}")
    original = RESSHIFT.load_generator(str(folder))
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), original.state_dict().values())
    )


def test_push_cli_dry_run_and_bad_inputs(tmp_path, monkeypatch):
    folder, _ = trained_export(tmp_path)
    dry = runner.invoke(app, ["models", "push", str(folder), "someone/x", "--dry-run"])
    assert dry.exit_code == 0 and "# someone/x" in dry.output and "unet.safetensors" in dry.output
    assert (
        runner.invoke(app, ["models", "push", str(tmp_path), "someone/x"]).exit_code == 2
    )  # not a weight folder
    assert runner.invoke(app, ["models", "push", str(folder), "not a repo"]).exit_code == 2

    import huggingface_hub

    class Offline(FakeApi):
        def create_repo(self, repo_id, **kw):
            raise OSError("cannot reach huggingface.co")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    failed = runner.invoke(app, ["models", "push", str(folder), "someone/x"])
    assert failed.exit_code == 1 and "upload to someone/x failed: cannot reach" in " ".join(
        failed.output.split()
    )
