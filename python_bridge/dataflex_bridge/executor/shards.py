"""This process's part of a global plan when several ranks train together (docs/adr/0002-several-ranks.md).

TypeScript plans global micro-batches. Each rank takes a contiguous slice of every one (accelerate's default
dispatch without split_batches gives rank r the r-th per-device batch of each round, which is the r-th slice of the
round's rows), trains it under DDP, and the per-sample results are gathered back to rank 0 in plan order. With one
process every helper here is the identity, so the one-rank path stays as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def engine_shards_state() -> bool:
    """True under DeepSpeed or FSDP: each rank holds a shard of the optimizer state (ZeRO-1/2) or of the parameters
    too (ZeRO-3, FSDP), and reading them whole, or a ZeRO-3/FSDP forward, is a collective. The ranks must then run the
    same model ops (they run replicated, not sharded)."""
    import os

    return any(os.environ.get(f"ACCELERATE_USE_{engine}", "").lower() == "true" for engine in ("DEEPSPEED", "FSDP"))


def bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """This rank's contiguous [lo, hi) of n rows: sizes differ by at most one, later ranks take the extra rows."""
    return n * rank // world_size, n * (rank + 1) // world_size


def interleave(parts: list[np.ndarray], sizes: list[int], world_size: int) -> np.ndarray:
    """Rank 0's view of a per-sample array: `parts[r]` holds rank r's rows of every micro-batch (global sizes
    `sizes`) one after the other; the result holds each micro-batch's rows in plan order."""
    cursors = [0] * world_size
    out: list[np.ndarray] = []
    for m in sizes:
        for r in range(world_size):
            lo, hi = bounds(m, r, world_size)
            out.append(parts[r][cursors[r] : cursors[r] + hi - lo])
            cursors[r] += hi - lo
    if not out:
        return parts[0][:0]
    return np.concatenate(out)


def gather_to_zero(obj: Any) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (rank order), None elsewhere; [obj] with one process."""
    rank, size = world()
    if size == 1:
        return [obj]
    import torch.distributed as dist

    got: list[Any] | None = [None] * size if rank == 0 else None
    dist.gather_object(obj, got, dst=0)
    return got


def from_zero(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (the others pass None)."""
    _, size = world()
    if size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on some rank: a decision every rank must take together."""
    return max_rank(1 if flag else 0) > 0


def max_rank(value: int) -> int:
    """The largest of every rank's `value`, on every rank (one collective for a decision with several outcomes)."""
    _, size = world()
    if size == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())
