"""The pure parts of several ranks: each rank's slice of a global plan, rank 0's interleaving of the per-sample
results, and when model ops are sharded or replicated (executor/shards.py, step_loop.local_plan, ranks._sharded)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from dataflex_bridge import ranks  # noqa: E402
from dataflex_bridge.executor import shards  # noqa: E402
from dataflex_bridge.executor.step_loop import local_plan  # noqa: E402


@pytest.mark.parametrize(("n", "world", "want"), [
    (4, 2, [(0, 2), (2, 4)]),
    (3, 2, [(0, 1), (1, 3)]),      # later ranks take the extra row
    (1, 2, [(0, 0), (0, 1)]),      # rank 0's slice is empty
    (0, 2, [(0, 0), (0, 0)]),
    (7, 3, [(0, 2), (2, 4), (4, 7)]),
])
def test_bounds_are_contiguous_and_cover_the_rows(n, world, want):
    got = [shards.bounds(n, r, world) for r in range(world)]
    assert got == want
    assert got[0][0] == 0 and got[-1][1] == n and all(a[1] == b[0] for a, b in zip(got, got[1:]))


def test_local_plan_slices_every_micro_batch_and_pads_an_empty_slice():
    indices = np.array([10, 11, 12, 13, 20, 21, 22, 30], dtype=np.int64)
    sizes = np.array([4, 3, 1], dtype=np.int64)
    r0, r1 = local_plan(indices, sizes, 0, 2), local_plan(indices, sizes, 1, 2)
    # micro-batch 0: rows 10 11 | 12 13; micro-batch 1: 20 | 21 22; micro-batch 2: (pad: its first row) | 30
    assert r0.indices.tolist() == [10, 11, 20, 30] and r0.sizes.tolist() == [2, 1, 1]
    assert r1.indices.tolist() == [12, 13, 21, 22, 30] and r1.sizes.tolist() == [2, 2, 1]
    assert [r0.rows(j) for j in range(3)] == [2, 1, 0] and [r1.rows(j) for j in range(3)] == [2, 2, 1]
    one = local_plan(indices, sizes, 0, 1)
    assert one.indices.tolist() == indices.tolist() and one.sizes.tolist() == sizes.tolist()


def test_interleave_restores_plan_order_from_each_ranks_rows():
    sizes = [4, 3, 1]
    plan = np.arange(8, dtype=np.float32)  # a per-sample value equal to its position in the plan
    parts = []
    for r in range(2):
        starts = np.cumsum([0] + sizes[:-1])
        parts.append(np.concatenate([plan[s + shards.bounds(m, r, 2)[0] : s + shards.bounds(m, r, 2)[1]]
                                     for s, m in zip(starts, sizes)]))
    assert shards.interleave(parts, sizes, 2).tolist() == plan.tolist()
    assert shards.interleave([plan[:0], plan[:0]], [], 2).size == 0


def test_model_ops_run_replicated_under_deepspeed_or_fsdp(monkeypatch):
    for var in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(var, raising=False)
    assert ranks._sharded("losses") is not None and ranks._sharded("train_steps") is None
    for var in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.setenv(var, "true")
        assert shards.engine_shards_state()
        assert all(ranks._sharded(op) is None for op in ("losses", "gradients", "embeddings", "router_loads"))
        monkeypatch.delenv(var)
