"""Two CPU ranks under torchrun (gloo): rank 0 serves a DEALER client, rank 1 follows its broadcasts.

One 2-rank sidecar (2 rows per device) and one plain sidecar (4 rows per device) load the same tiny run, so both
train the same global batch. `losses`, sharded across the ranks and gathered back in order, must equal the plain
sidecar's; so must a whole pass of training steps (each rank trains its slice of every global micro-batch, a
one-row micro-batch leaves rank 0 a masked pad row) and a weighted sample_mean pass. A failure on rank 1 alone is
reported by rank 0, an op without a rank policy is refused, a stop request reaches both ranks, and `shutdown`
releases the follower so torchrun exits 0.
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

    def call(self, op: str, args: dict[str, Any], deadline_ms: int | None = None) -> dict[str, Any]:
        msg_id = next(_ids)
        full = catalog.with_defaults(op, args) if op in catalog.ops() else args
        self.sock.send_multipart(wire.encode(wire.request(msg_id, op, full, deadline_ms)))
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


# No dropout: each rank draws its own dropout masks, so only a deterministic forward can match one process. One eval
# row per batch: Hugging Face's eval loss is a mean of per-batch means, so only then is it independent of the layout.
def _config(out: str, per_device: int) -> dict:
    return tiny_config(out, lora_dropout=0.0, per_device_train_batch_size=per_device, per_device_eval_batch_size=1)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Iterator[Sidecar]:
    out = tmp_path_factory.mktemp("ranks")
    side = Sidecar([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    try:
        side.load = side.ok("load", {"config": _config(str(out), 2)})  # type: ignore[attr-defined]
        yield side
    finally:
        side.close()


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory) -> Iterator[Sidecar]:
    out = tmp_path_factory.mktemp("one")
    side = Sidecar([sys.executable])
    try:
        side.load = side.ok("load", {"config": _config(str(out), 4)})  # type: ignore[attr-defined]
        yield side
    finally:
        side.close()


INDICES = np.array([7, 0, 3, 12, 5, 9, 1, 20, 4, 15, 2], dtype=np.int32)  # unsorted, odd count: uneven shards


def test_sharded_losses_equal_one_process(two_ranks: Sidecar, one_rank: Sidecar) -> None:
    assert two_ranks.load["world_size"] == 2  # type: ignore[attr-defined]
    assert one_rank.load["world_size"] == 1 and one_rank.load["num_train"] == two_ranks.load["num_train"]  # type: ignore[attr-defined]
    got = two_ranks.ok("losses", {"split": "train", "indices": INDICES})["losses"]
    want = one_rank.ok("losses", {"split": "train", "indices": INDICES})["losses"]
    assert got.shape == want.shape == INDICES.shape
    assert_close_scaled(got, want, 1e-5)


def test_sharded_gradients_and_embeddings_equal_one_process(two_ranks: Sidecar, one_rank: Sidecar) -> None:
    grads = {"split": "train", "indices": INDICES, "proj_dim": 16, "precondition": "sgd"}
    got, want = two_ranks.ok("gradients", grads), one_rank.ok("gradients", grads)
    assert got["grads"].shape == want["grads"].shape == (INDICES.size, 16)
    assert got["trainable_params"] == want["trainable_params"]
    assert_close_scaled(got["grads"], want["grads"], 1e-4)
    emb = {"split": "train", "indices": INDICES}
    got, want = two_ranks.ok("embeddings", emb)["embeddings"], one_rank.ok("embeddings", emb)["embeddings"]
    assert got.shape == want.shape and got.shape[0] == INDICES.size
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
    h = two_ranks.call("generate", {"split": "train", "indices": INDICES[:2], "max_new_tokens": 2})
    assert not h["ok"] and h["error"]["code"] == "config_error" and "several ranks" in h["error"]["message"]


# Global micro-batches of 4 rows (2 per rank), an uneven one (3: rank 1 takes 2), and one of a single row (rank 0
# trains a masked pad row), in steps of 2, 2 and 1 micro-batches.
PLAN = {"epoch": 0, "indices": np.array([3, 17, 8, 0, 11, 5, 22, 14, 9, 1, 19, 6, 13, 2, 24, 7], dtype=np.int32),
        "micro_sizes": np.array([4, 4, 4, 3, 1], dtype=np.int32), "step_sizes": np.array([2, 2, 1], dtype=np.int32),
        "micro_in_epoch": 5, "micro_done": 0}
WEIGHTED = {"epoch": 1, "indices": np.array([4, 10, 15, 20, 21, 23, 12], dtype=np.int32),
            "micro_sizes": np.array([4, 3], dtype=np.int32), "step_sizes": np.array([2], dtype=np.int32),
            "micro_in_epoch": 2, "micro_done": 0, "reduction": "sample_mean",
            "weights": np.array([0.5, 1.5, 1.0, 2.0, 0.25, 1.0, 0.75], dtype=np.float32)}


def _train(side: Sidecar) -> list[dict[str, Any]]:
    side.ok("begin", {"total_steps": 4})
    out = []
    for plan, steps in ((PLAN, 3), (WEIGHTED, 1)):
        side.ok("begin_pass", plan)
        out.append(side.ok("train_steps", {"count": steps, "log": np.ones(steps, np.bool_),
                                           "evaluate": np.zeros(steps, np.bool_), "save": np.zeros(steps, np.bool_)}))
        side.ok("end_pass", {"log": False, "evaluate": False, "save": False})
    out.append(side.ok("evaluate", {})["metrics"])
    return out


def test_two_ranks_train_as_one_process_with_the_same_global_batch(two_ranks: Sidecar, one_rank: Sidecar) -> None:
    got, want = _train(two_ranks), _train(one_rank)
    for g, w in zip(got[:2], want[:2]):
        assert g["done"] == w["done"] and g["global_step"] == w["global_step"]
        np.testing.assert_array_equal(g["tokens"], w["tokens"])  # label tokens of the whole global group
        np.testing.assert_array_equal(g["sample_tokens"], w["sample_tokens"])  # per row, in plan order
        assert_close_scaled(g["sample_loss_sum"], w["sample_loss_sum"], 1e-4)
        assert_close_scaled(g["loss"], w["loss"], 1e-4)
        assert_close_scaled(g["grad_norm"], w["grad_norm"], 1e-4)
    assert got[0]["sample_loss_sum"].shape == (16,) and got[1]["sample_loss_sum"].shape == (7,)
    # Evaluation runs on both ranks through Hugging Face's own distributed loop. Its eval_loss is not compared: on
    # two ranks it differs from one rank's by about 0.1% although every row's loss agrees to 1e-6 (`losses` on the
    # eval split below), an aggregation of that loop not traced yet (docs/adr/0002-several-ranks.md).
    assert np.isfinite(got[2]["eval_loss"]) and abs(got[2]["eval_loss"] - want[2]["eval_loss"]) < 0.01 * want[2]["eval_loss"]
    rows = np.arange(two_ranks.load["num_eval"], dtype=np.int32)  # type: ignore[attr-defined]
    assert_close_scaled(two_ranks.ok("losses", {"split": "eval", "indices": rows})["losses"],
                        one_rank.ok("losses", {"split": "eval", "indices": rows})["losses"], 1e-5)


# After the training test (its `begin`).
def test_train_steps_past_its_deadline_stops_on_every_rank_and_leaves_them_in_step(two_ranks: Sidecar) -> None:
    steps = 40
    rows = np.resize(PLAN["indices"], 4 * steps).astype(np.int32)
    two_ranks.ok("begin_pass", {"epoch": 5, "indices": rows, "micro_sizes": np.full(steps, 4, np.int32),
                                "step_sizes": np.ones(steps, np.int32), "micro_in_epoch": steps, "micro_done": 0})
    flags = np.zeros(steps, np.bool_)
    h = two_ranks.call("train_steps", {"count": steps, "log": flags, "evaluate": flags, "save": flags}, deadline_ms=300)
    assert not h["ok"] and h["error"]["code"] in ("deadline", "cancelled"), h
    two_ranks.ok("end_pass", {"log": False, "evaluate": False, "save": False})
    assert two_ranks.ok("losses", {"split": "train", "indices": INDICES})["losses"].shape == INDICES.shape


def test_a_stop_request_reaches_every_rank(two_ranks: Sidecar) -> None:
    """request_stop runs on rank 0's socket thread alone; the step loop's safe point tells the follower, so both end
    the call before the same step and neither is left waiting in a collective (the evaluation after it completes)."""
    assert two_ranks.ok("request_stop", {}) == {}
    two_ranks.ok("begin_pass", {**PLAN, "epoch": 2})
    r = two_ranks.ok("train_steps", {"count": 3, "log": np.ones(3, np.bool_), "evaluate": np.zeros(3, np.bool_),
                                      "save": np.zeros(3, np.bool_)})
    assert r["done"] == 0 and r["should_training_stop"] is True
    two_ranks.ok("end_pass", {"log": False, "evaluate": False, "save": False})
    assert np.isfinite(two_ranks.ok("evaluate", {})["metrics"]["eval_loss"])


def test_shutdown_releases_the_follower(two_ranks: Sidecar) -> None:
    assert two_ranks.call("shutdown", {})["ok"]
    assert two_ranks.proc.wait(120) == 0
