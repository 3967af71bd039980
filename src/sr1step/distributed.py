"""Inference on many processes (``accelerate launch`` / ``torchrun``): who am I, my share, gathering.

A launch sets ``WORLD_SIZE`` and ``RANK`` for every process; ``init`` then brings up accelerate's
process group (NCCL on GPUs, gloo on CPUs) and gives each process its own device. Without those
variables nothing is initialised and every helper is the single-process identity, so a plain
``sr1step upscale`` is unchanged.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    device: str | None = None  # this process's device (distributed runs), else the user's choice

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(cpu: bool = False) -> Shard:
    """This process's place in the launch; ``cpu`` (or a machine without CUDA) uses gloo on CPUs."""
    if not launched():
        return Shard()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=cpu or not torch.cuda.is_available())
    device = "cpu" if state.device.type == "cpu" else str(state.device)
    return Shard(state.process_index, state.num_processes, device)


def balanced_split(costs: list[int], world: int) -> list[list[int]]:
    """Indices of ``costs`` in ``world`` shares of near-equal total: the largest first, each to the
    share with the least so far (ties: the lower rank). Deterministic; each share keeps input order."""
    heap = [(0, rank) for rank in range(world)]
    shares: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        total, rank = heapq.heappop(heap)
        shares[rank].append(i)
        heapq.heappush(heap, (total + costs[i], rank))
    return [sorted(s) for s in shares]


def gather(obj: Any, shard: Shard) -> list[Any] | None:
    """Every process's ``obj``, on rank 0 (in rank order); None elsewhere."""
    if not shard.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * shard.world if shard.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj: Any, shard: Shard) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not shard.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(shard: Shard) -> None:
    if shard.distributed:
        import torch.distributed as dist

        dist.barrier()


def finish(value: Any, shard: Shard) -> Any:
    """Rank 0's ``value`` (an exit code) on every rank, then the process group is closed on every
    rank together: a process that leaves while another still holds the group can abort it."""
    value = broadcast(value, shard)
    if shard.distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return value
