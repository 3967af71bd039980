"""Checkpoints on their own: newest first for ``latest``, every state restored, each process's
staged pool file moved in and found again, and only dead processes' temp folders removed."""

import os

import torch
from torch import nn

from sr1step.training.checkpoint import (
    find_checkpoints,
    load_checkpoint,
    load_process_state,
    remove_stale_temps,
    save_checkpoint,
    stage_process_state,
    staged_process_files,
)


def net_and_optimizer(seed: int):
    torch.manual_seed(seed)
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()  # optimizer state with moments
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    sched.step()
    return net, opt, sched


def test_latest_is_the_newest_checkpoint_first(tmp_path):
    net, opt, sched = net_and_optimizer(0)
    for step in (5, 40, 300):
        save_checkpoint(tmp_path, step, {"g": net}, {"g": opt}, {"g": sched}, None, keep=0, meta={})
    assert [p.name for p in find_checkpoints(tmp_path, "latest")] == [
        "checkpoint-0000300",
        "checkpoint-0000040",
        "checkpoint-0000005",
    ]


def test_a_checkpoint_restores_weights_optimizer_and_scheduler(tmp_path):
    net, opt, sched = net_and_optimizer(0)
    path = save_checkpoint(tmp_path, 7, {"g": net}, {"g": opt}, {"g": sched}, None, keep=1, meta={})
    other, other_opt, other_sched = net_and_optimizer(1)
    assert not torch.equal(other.weight, net.weight)
    step = load_checkpoint(path, {"g": other}, {"g": other_opt}, {"g": other_sched}, None)
    assert step == 7
    assert torch.equal(other.weight, net.weight) and torch.equal(other.bias, net.bias)
    moments = [s["exp_avg"] for s in opt.state_dict()["state"].values()]
    restored = [s["exp_avg"] for s in other_opt.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(moments, restored))
    assert other_sched.state_dict()["last_epoch"] == sched.state_dict()["last_epoch"]


def test_each_process_state_is_moved_into_the_checkpoint_and_found_again(tmp_path):
    net, opt, sched = net_and_optimizer(0)
    for rank in (0, 1):
        stage_process_state(tmp_path, rank, {"pool": torch.full((2,), float(rank))})
    path = save_checkpoint(
        tmp_path, 3, {"g": net}, {"g": opt}, {"g": sched}, None, keep=1, meta={},
        extra_files=staged_process_files(tmp_path),
    )  # fmt: skip
    assert not staged_process_files(tmp_path)
    for rank in (0, 1):
        assert torch.equal(load_process_state(path, rank)["pool"], torch.full((2,), float(rank)))
    assert load_process_state(path, 2) is None


def test_only_the_temp_folders_of_dead_processes_are_removed(tmp_path):
    ours = tmp_path / f".checkpoint-0000009.tmp-{os.getpid()}"
    dead = tmp_path / ".checkpoint-0000008.tmp-999999999"
    for folder in (ours, dead):
        folder.mkdir()
    assert remove_stale_temps(tmp_path) == [dead]
    assert ours.is_dir() and not dead.exists()
