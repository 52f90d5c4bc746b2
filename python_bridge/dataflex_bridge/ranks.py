"""Several ranks under torchrun: rank 0 serves TypeScript, the other ranks follow it (docs/adr/0002-several-ranks.md).

Rank 0 binds the socket as a one-process sidecar does. Before its worker runs an executor op it broadcasts the op's
name and args to every rank, so all ranks run the same ops in the same order; then it gathers each rank's outcome
and answers alone. A follower opens no socket: it loops on the broadcast until rank 0 broadcasts the stop.

Each op has a rank policy:
  * replicated (load, begin, the step loop's ops): every rank runs it on the same args; rank 0's result is the
    answer. The step loop itself takes each rank's rows of the global plan and gathers the per-sample results
    (executor/shards.py, step_loop.py).
  * sharded (losses, gradients, embeddings, router_loads): each rank runs it on a contiguous slice of the index
    array, and rank 0 concatenates the per-row results in rank order, so the answer equals the one-rank answer.
    Under DeepSpeed or FSDP they run replicated instead (reading sharded state whole is a collective).
  * rank 0 alone: the inline request_stop sets a flag the step loop's safe point shares with every rank.
Any other op (NICE's generate, reward and policy_gradients) is refused with several ranks: running it unchanged on
every rank would look right and be wrong.

Replicated ops run collectives inside (DDP, the step loop's agreements). An error the code raises on every rank at
the same point (ExecutorError: bad state, config, NaN loss, cancellation) is gathered and answered like any other.
Any other exception leaves the ranks out of step: a follower then exits at once (torchrun stops the group), and rank
0 answers the error without waiting for the others, refuses every later op, and exits non-zero when told to stop.

All collectives of a rank run on one thread (rank 0: the worker; a follower: its main thread), as torch.distributed
requires the same collective order on every rank.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .executor.errors import ExecutorError
from .executor.shards import bounds, engine_shards_state
from .server import Handler, Op, OpError, error_code, error_message

log = logging.getLogger("dataflex_bridge")

STOP = "__stop__"  # the broadcast that ends the followers' loop
# A follower waits in a broadcast while TypeScript thinks between ops; the default 30 min would end a run whose
# decisions take longer, so the wait is bounded by the supervisor instead (it stops torchrun).
IDLE_TIMEOUT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Sharded:
    """Split the index array `key` contiguously across ranks; concatenate the result arrays `concat` in rank order."""

    key: str
    concat: tuple[str, ...]


REPLICATED = frozenset({
    "load", "begin", "sample_order", "begin_pass", "train_steps", "end_pass", "evaluate", "save_checkpoint", "finish",
})
SHARDED: Mapping[str, Sharded] = {
    "losses": Sharded("indices", ("losses",)),
    "gradients": Sharded("indices", ("grads",)),
    "embeddings": Sharded("indices", ("embeddings",)),
    "router_loads": Sharded("indices", ("loads",)),
}


def _sharded(name: str) -> Sharded | None:
    """The op's sharding, or None to run it replicated: under DeepSpeed or FSDP the model ops read sharded state with
    collectives, so they run on the whole index list on every rank (rank 0's result is the reply)."""
    spec = SHARDED.get(name)
    return None if spec is None or engine_shards_state() else spec


def env_world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init() -> tuple[int, int]:
    """(rank, world size); with several ranks, the process group is set up here, before any op (the first
    broadcast carries `load`). LLaMA-Factory and accelerate later find it initialised and use it."""
    world = env_world_size()
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=IDLE_TIMEOUT)
    return dist.get_rank(), dist.get_world_size()


def shard(indices: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's contiguous slice (executor/shards.bounds)."""
    flat = np.asarray(indices).reshape(-1)
    lo, hi = bounds(flat.size, rank, world)
    return flat[lo:hi]


class OutOfStep(Exception):
    """An exception inside a replicated op that not every rank raised: the ranks are out of step."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def args_digest(args: Mapping[str, Any]) -> str:
    """A digest of an op's args (arrays by dtype, shape and bytes): equal on every rank that ran the same op."""
    h = hashlib.blake2b(digest_size=8)
    for key in sorted(args):
        value = args[key]
        h.update(key.encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=repr).encode())
    return h.hexdigest()


class Journal:
    """`<output_dir>/dataflex/ranks/rank-<r>.jsonl`: each op this rank ran, with its args' digest and outcome. Every
    rank applies the same decisions, so the ranks' journals are identical (the multi-rank tests compare them)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.path: str | None = None

    def record(self, name: str, args: Mapping[str, Any], outcome: tuple[bool, Any]) -> None:
        if name == "load" and outcome[0] and self.path is None:
            folder = os.path.join(str(outcome[1]["output_dir"]), "dataflex", "ranks")
            os.makedirs(folder, exist_ok=True)
            self.path = os.path.join(folder, f"rank-{self.rank}.jsonl")
            open(self.path, "w").close()  # a fresh journal per run (a resumed run too)
        if self.path is None:
            return
        line = {"op": name, "args": args_digest(args), "ok": outcome[0]}
        with open(self.path, "a", encoding="utf-8") as f:  # append-only: a killed run leaves whole lines
            f.write(json.dumps(line) + "\n")


def _run_local(name: str, fn: Handler, args: dict[str, Any], ctx: Any, rank: int, world: int) -> tuple[bool, Any]:
    """(True, result) or (False, (code, message, detail)); with a sharded op, this rank's part only (None when its
    slice is empty; with no rows at all, rank 0 runs the op so the reply has the one-rank shape). Raises OutOfStep
    when a replicated op fails in a way the other ranks may not share."""
    try:
        spec = _sharded(name)
        if spec is not None:
            part = shard(args[spec.key], rank, world)
            if part.size == 0 and (rank != 0 or np.asarray(args[spec.key]).size > 0):
                return True, None
            args = {**args, spec.key: part}
        return True, dict(fn(args, ctx) or {})
    except Exception as exc:  # noqa: BLE001 - reported through the gather, by rank 0
        if name in REPLICATED and not isinstance(exc, ExecutorError):
            raise OutOfStep(exc) from exc
        return False, (error_code(exc), error_message(exc), "".join(traceback.format_exception(exc)))


def _combine(name: str, outcomes: list[tuple[bool, Any]]) -> dict[str, Any]:
    failed = [(r, o[1]) for r, o in enumerate(outcomes) if not o[0]]
    if failed:
        code = failed[0][1][0]
        if len(failed) == len(outcomes) and len({err[1] for _, err in failed}) == 1:
            message = f"all ranks: {failed[0][1][1]}"
        else:
            message = "; ".join(f"rank {r}: {err[1]}" for r, err in failed)
        raise OpError(code, f"{name} failed on {len(failed)} of {len(outcomes)} ranks: {message}", failed[0][1][2])
    spec = _sharded(name)
    if spec is None:
        return outcomes[0][1]
    parts = [o[1] for o in outcomes if o[1] is not None]
    result = dict(parts[0])
    for key in spec.concat:
        result[key] = np.concatenate([np.asarray(p[key]) for p in parts])
    if "seconds" in result:
        result["seconds"] = max(float(p["seconds"]) for p in parts)  # the ranks ran side by side
    return result


class Leader:
    """Rank 0's side: wraps the executor's ops so each is broadcast, run on every rank and gathered."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.journal = Journal(0)
        self.out_of_step: str | None = None  # the op after which the ranks lost step

    def wrap(self, handlers: Mapping[str, Op]) -> dict[str, Op]:
        # An inline op (request_stop) runs on rank 0 alone and touches no collective; what it sets reaches the other
        # ranks through the step loop's safe point.
        return {
            name: op if op.mode == "inline" else Op(self._op(name, op.fn), op.mode, check=op.check)
            for name, op in handlers.items()
        }

    def _op(self, name: str, fn: Handler) -> Handler:
        def call(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
            if name not in REPLICATED and name not in SHARDED:
                raise OpError("config_error", f"op {name!r} does not run with several ranks "
                                              f"(WORLD_SIZE={self.world}); run this strategy in one process")
            if self.out_of_step is not None:
                raise OpError("bad_state", f"the ranks are out of step since {self.out_of_step} failed on rank 0; "
                                           "start the run again")
            import torch.distributed as dist

            dist.broadcast_object_list([name, args], src=0)
            try:
                mine = _run_local(name, fn, args, ctx, 0, self.world)
            except OutOfStep as exc:
                self.out_of_step = name
                raise exc.cause
            self.journal.record(name, args, mine)
            outcomes: list[Any] = [None] * self.world
            dist.gather_object(mine, outcomes, dst=0)
            return _combine(name, outcomes)

        return call

    def stop(self) -> int:
        """Release the followers (call when no op runs: the worker holds no collective); the exit code. Out of step,
        the followers may sit in a collective rank 0 never joins: rank 0 exits non-zero and torchrun stops them."""
        if self.out_of_step is not None:
            return 1
        import torch.distributed as dist

        dist.broadcast_object_list([STOP, None], src=0)
        dist.destroy_process_group()
        return 0


def follow(handlers: Mapping[str, Op], rank: int, world: int, on_op: Callable[[str], None] | None = None) -> int:
    """A follower's life: run each broadcast op, send its outcome to rank 0, until the stop. Returns the exit code."""
    import torch.distributed as dist

    journal = Journal(rank)
    while True:
        box: list[Any] = [None, None]
        dist.broadcast_object_list(box, src=0)
        name, args = box
        if name == STOP:
            dist.destroy_process_group()
            return 0
        if on_op is not None:
            on_op(name)
        op = handlers.get(name)
        if op is None:
            mine: tuple[bool, Any] = (False, ("unknown_op", f"rank {rank} has no op {name!r}", ""))
        else:
            # No context: a follower sends no events and never calls TypeScript (rank 0 does, for every rank).
            try:
                mine = _run_local(name, op.fn, args, None, rank, world)
            except OutOfStep as exc:
                log.error("rank %d: %s failed; the ranks are out of step, exiting:\n%s", rank, name,
                          "".join(traceback.format_exception(exc.cause)))
                return 1
            journal.record(name, args, mine)
        dist.gather_object(mine, None, dst=0)
