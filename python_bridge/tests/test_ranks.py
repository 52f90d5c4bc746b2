"""Two CPU ranks under torchrun (gloo): rank 0 serves a DEALER client, rank 1 follows its broadcasts.

One 2-rank sidecar and one plain sidecar load the same tiny run; `losses`, sharded across the ranks and gathered back
in order, must equal the plain sidecar's. A failure on rank 1 alone is reported by rank 0, an op without a rank policy
is refused, `begin` runs on both ranks, and `shutdown` releases the follower so torchrun exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from close import assert_close_scaled
from dataflex_bridge import catalog, wire
from tiny_run import tiny_config

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

BRIDGE_DIR = Path(__file__).resolve().parents[1]
REPLY_TIMEOUT_MS = 300_000  # a load on two ranks sharing two busy cores
_ids = count(1)


class Sidecar:
    def __init__(self, launcher: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(BRIDGE_DIR), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [*launcher, "-m", "dataflex_bridge", "--endpoint", "tcp://127.0.0.1:*", "--log-level", "WARNING"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )
        line = self.proc.stdout.readline().split()  # type: ignore[union-attr]
        assert line[:1] == ["READY"], line
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, REPLY_TIMEOUT_MS)
        self.sock.connect(line[2])

    def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        msg_id = next(_ids)
        full = catalog.with_defaults(op, args) if op in catalog.ops() else args
        self.sock.send_multipart(wire.encode(wire.request(msg_id, op, full)))
        while True:  # skip events (progress) and anything else that is not this reply
            h = wire.decode(self.sock.recv_multipart())
            if h["kind"] == "res" and h["id"] == msg_id:
                return h

    def ok(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        h = self.call(op, args)
        assert h["ok"], h["error"]
        return h["result"]

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(60)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Iterator[Sidecar]:
    out = tmp_path_factory.mktemp("ranks")
    side = Sidecar([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    try:
        side.load = side.ok("load", {"config": tiny_config(str(out))})  # type: ignore[attr-defined]
        yield side
    finally:
        side.close()


INDICES = np.array([7, 0, 3, 12, 5, 9, 1, 20, 4, 15, 2], dtype=np.int32)  # unsorted, odd count: uneven shards


def test_sharded_losses_equal_one_process(two_ranks: Sidecar, tmp_path) -> None:
    assert two_ranks.load["world_size"] == 2  # type: ignore[attr-defined]
    got = two_ranks.ok("losses", {"split": "train", "indices": INDICES})["losses"]
    one = Sidecar([sys.executable])
    try:
        loaded = one.ok("load", {"config": tiny_config(str(tmp_path))})
        assert loaded["world_size"] == 1 and loaded["num_train"] == two_ranks.load["num_train"]  # type: ignore[attr-defined]
        want = one.ok("losses", {"split": "train", "indices": INDICES})["losses"]
    finally:
        one.close()
    assert got.shape == want.shape == INDICES.shape
    assert_close_scaled(got, want, 1e-5)


def test_a_failure_on_the_follower_alone_is_reported_by_rank_0(two_ranks: Sidecar) -> None:
    # The bad index is in the second half, so only rank 1's shard holds it.
    bad = np.array([0, 1, 2, 10_000], dtype=np.int32)
    h = two_ranks.call("losses", {"split": "train", "indices": bad})
    assert not h["ok"] and "rank 1:" in h["error"]["message"] and "rank 0" not in h["error"]["message"], h["error"]
    assert two_ranks.ok("losses", {"split": "train", "indices": INDICES[:2]})["losses"].shape == (2,)  # still in step
    assert two_ranks.ok("losses", {"split": "train", "indices": INDICES[:1]})["losses"].shape == (1,)  # rank 0 idle
    assert two_ranks.ok("losses", {"split": "train", "indices": INDICES[:0]})["losses"].shape == (0,)


def test_an_op_without_a_rank_policy_is_refused(two_ranks: Sidecar) -> None:
    h = two_ranks.call("evaluate", {})
    assert not h["ok"] and h["error"]["code"] == "config_error" and "several ranks" in h["error"]["message"]


def test_begin_runs_on_both_ranks(two_ranks: Sidecar) -> None:
    two_ranks.ok("begin", {"total_steps": 3})
    assert two_ranks.ok("losses", {"split": "train", "indices": INDICES[:3]})["losses"].shape == (3,)


def test_shutdown_releases_the_follower(two_ranks: Sidecar) -> None:
    assert two_ranks.call("shutdown", {})["ok"]
    assert two_ranks.proc.wait(120) == 0
