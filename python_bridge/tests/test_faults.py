"""Faults a peer can cause (docs/reliability.md), against a real sidecar (``--no-executor``: the bridge alone).

The wire survives anything a peer can send: malformed messages from a raw ZeroMQ DEALER socket (truncated and garbage
frames, wrong dtypes and lengths, huge declared sizes, deep nesting, non-map headers, ops that raise). After each one
the sidecar must still answer a ``ping``, and a request whose id could be read gets an error reply for that id.

A running op is cancelled, not left running: by the ``cancel`` op, and by its deadline passing.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import NamedTuple
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from dataflex_bridge import wire

BRIDGE_DIR = Path(__file__).resolve().parents[1]
REPLY_TIMEOUT_MS = 5000
_ids = iter(range(1000, 1 << 30))


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def req(args: object, op: str = "echo", **extra: object) -> dict:
    return {"v": 1, "kind": "req", "id": next(_ids), "op": op, "args": args, **extra}


def nested(depth: int, as_map: bool = False) -> bytes:
    """msgpack of a one-element list (or ``{"k": ...}`` map) ``depth`` levels deep (msgpack's packer stops at 512)."""
    return (b"\x81\xa1k" if as_map else b"\x91") * depth + b"\x00"


def req_nested(depth: int, op: str = "echo", as_map: bool = False) -> tuple[int, bytes]:
    """A request whose args are ``{"x": nested(depth)}``, packed by hand; returns (id, header bytes)."""
    h = req({}, op=op)
    head = pack({k: v for k, v in h.items() if k != "args"})
    # Add "args" to the map: bump the fixmap count, append the key and the hand-made value.
    return h["id"], bytes([head[0] + 1]) + head[1:] + pack("args") + b"\x81\xa1x" + nested(depth, as_map)


def ref(i: object = 0, dtype: object = "float32", shape: object = (2,)) -> dict:
    return {"$nd": i, "dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape}


def cases() -> list[tuple[str, list[bytes]]]:
    """(name, frames) of every malformed message the sidecar must survive."""
    f32 = np.arange(2, dtype=np.float32).tobytes()
    out: list[tuple[str, list[bytes]]] = []

    def add(name: str, *frames: bytes) -> None:
        out.append((name, list(frames)))

    good = pack(req({"x": ref()}))
    # Truncated headers: every prefix of a valid one.
    for n in range(len(good)):
        add(f"truncated header[:{n}]", good[:n], f32)
    add("array frame truncated", good, f32[:5])
    add("array frame missing", good)
    add("extra unreferenced frame", good, f32, f32)
    # Non-map and garbage headers.
    for name, obj in [("int", 5), ("str", "req"), ("list", [1, 2]), ("nil", None), ("bin", b"\x00"), ("float", 1.5)]:
        add(f"header is {name}", pack(obj))
    rng = random.Random(0)
    for i in range(40):
        add(f"garbage #{i}", rng.randbytes(rng.randint(1, 64)), rng.randbytes(rng.randint(0, 16)))
    add("msgpack ext type", msgpack.packb(msgpack.ExtType(5, b"xyz")))
    add("map with a list key", b"\x81\x91\x01\x01")  # {[1]: 1}: unhashable key
    add("declared 4 GiB string", b"\xdb\xff\xff\xff\xff")
    add("declared 4G-entry map", b"\xdf\xff\xff\xff\xff")
    add("trailing bytes after header", good + b"\xc1", f32)
    # Header fields missing or mistyped.
    for change in [
        {"v": "1"}, {"v": -1}, {"v": 2}, {"v": 2**64 - 1}, {"kind": "evt"}, {"kind": 7},
        {"kind": "x" * 100_000}, {"id": -1}, {"id": "1"}, {"id": 2**64 - 1}, {"id": True}, {"op": ""}, {"op": 3},
        {"op": "no_such_op"}, {"op": "x" * 10_000}, {"args": [1]}, {"args": None}, {"deadline_ms": -5},
        {"deadline_ms": float("nan")}, {"deadline_ms": float("inf")}, {"deadline_ms": 1.0}, {"deadline_ms": "soon"},
    ]:
        add(f"request with {str(change)[:40]}", pack({**req({}), **change}))
    add("request without op", pack({k: v for k, v in req({}).items() if k != "op"}))
    add("reply for no request", pack({"v": 1, "kind": "res", "id": 77, "ok": True, "result": {}}))
    add("reply with bad ok", pack({"v": 1, "kind": "res", "id": 77, "ok": 1}))
    add("reply with bad error", pack({"v": 1, "kind": "res", "id": 77, "ok": False, "error": {"code": 1}}))
    add("event to the sidecar", pack({"v": 1, "kind": "evt", "event": "x", "data": {}}))
    add("event with bad data", pack({"v": 1, "kind": "evt", "event": "", "data": 3}))
    # Array references: wrong dtype, wrong lengths, huge declared sizes, bad shapes and indices.
    for dtype in ["float16", "complex64", "", 5, None, ["float32"], "x" * 5000]:
        add(f"dtype {str(dtype)[:20]!r}", pack(req({"a": ref(dtype=dtype)})), f32)
    add("dtype float64 for 8 bytes of shape [2]", pack(req({"a": ref(dtype="float64")})), f32)
    for shape in [(3,), (1,), (0,), (2, 2), (2**62, 2**62), (2**64 - 1,), (0, 2**64 - 1), (1,) * 40, (1,) * 33,
                  (-1, -2), (2.0,), "2", None, [[2]], [True, 2]]:
        add(f"shape {str(shape)[:30]}", pack(req({"a": ref(shape=shape)})), f32)
    add("zero-size huge shape", pack(req({"a": ref(shape=(0,) + (2**63,) * 31)})), b"")
    for idx in [1, -1, 2**64 - 1, "0", None, 0.0, True]:
        add(f"$nd {idx!r}", pack(req({"a": ref(i=idx)})), f32)
    add("ref with extra key", pack(req({"a": {**ref(), "x": 1}})), f32)
    add("ref missing shape", pack(req({"a": {"$nd": 0, "dtype": "float32"}})), f32)
    add("ref with int keys", pack(req({"a": {"$nd": 0, 1: 2, 3: 4}})), f32)
    add("two refs to one frame", pack(req({"a": ref(), "b": ref()})), f32)
    add("ref in a reply", pack({"v": 1, "kind": "res", "id": 5, "ok": True, "result": {"a": ref(i=3)}}), f32)
    # Deep nesting and wide values.
    for depth in [65, 100, 500, 1000, 5000, 200_000]:
        add(f"list nested {depth} deep", req_nested(depth)[1])
        add(f"map nested {depth} deep", req_nested(depth, as_map=True)[1])
    add("deep nesting under a worker op", req_nested(500, op="sleep")[1])
    add("deep nesting under an inline test op", req_nested(500, op="sink")[1])
    add("many values", pack(req({"x": [0] * (wire.MAX_NODES + 1)})))
    add("non-string map keys in args", pack(req({1: 2, None: 3})))
    add("non-string map keys deep in args", pack(req({"a": [{(1, 2): 3}]})))
    # Ops that raise inside: the handler's error is the reply, the thread lives on.
    add("sleep NaN", pack(req({"seconds": float("nan")}, op="sleep")))
    add("sleep negative", pack(req({"seconds": -1}, op="sleep")))
    add("cancel without id", pack(req({}, op="cancel")))
    add("cancel of nothing", pack(req({"id": 12345}, op="cancel")))
    add("hello with a wrong protocol", pack(req({"protocol": "one"}, op="hello")))
    add("sink of nested lists", req_nested(60, op="sink")[1])
    add("source of an unknown dtype", pack(req({"n": 3, "dtype": "bogus"}, op="source")))
    add("source of a negative size", pack(req({"n": -3}, op="source")))
    add("call_back with no args", pack(req({}, op="call_back")))
    return out


CASES = cases()


class Peer(NamedTuple):
    sock: zmq.Socket
    proc: subprocess.Popen


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Peer]:
    env = {**os.environ, "PYTHONPATH": str(BRIDGE_DIR), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflex_bridge", "--no-executor", "--test-ops", "--endpoint", "tcp://127.0.0.1:*",
         "--log-level", "CRITICAL", "--max-frame-bytes", str(64 << 20)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        line = proc.stdout.readline().decode().split()  # type: ignore[union-attr]
        assert line[:1] == ["READY"], line
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, REPLY_TIMEOUT_MS)
        sock.connect(line[2])
        yield Peer(sock, proc)
        sock.close()
    finally:
        proc.kill()
        proc.wait()


def ping(sock: zmq.Socket) -> dict:
    """Send a ping and return its reply, skipping the replies to earlier malformed messages."""
    pid = next(_ids)
    sock.send_multipart([pack({"v": 1, "kind": "req", "id": pid, "op": "ping", "args": {}})])
    while True:
        try:
            frames = sock.recv_multipart()
        except zmq.Again:
            raise AssertionError("no answer to ping: the socket thread is gone") from None
        h = msgpack.unpackb(frames[0], strict_map_key=False)
        if h.get("id") == pid:
            return h


@pytest.mark.parametrize(("name", "frames"), CASES, ids=[c[0] for c in CASES])
def test_sidecar_survives(sidecar: Peer, name: str, frames: list[bytes]) -> None:
    sidecar.sock.send_multipart(frames)
    reply = ping(sidecar.sock)
    assert reply["ok"] is True and set(reply["result"]) == {"busy"}, reply
    assert sidecar.proc.poll() is None


def test_a_readable_request_id_gets_its_error_reply(sidecar: Peer) -> None:
    sock = sidecar.sock
    deep_id, deep = req_nested(500)
    for msg_id, frames, code in [
        (deep_id, [deep], "bad_header"),
        *(
            (h["id"], [pack(h), b"\0" * 8], "bad_array")
            for h in [req({"a": ref(shape=(1,) * 40)}), req({"a": ref(dtype="complex64")}),
                      req({"a": ref(shape=(2**62, 2**62))})]
        ),
    ]:
        sock.send_multipart(frames)
        while True:
            got = msgpack.unpackb(sock.recv_multipart()[0], strict_map_key=False)
            if got.get("id") == msg_id:
                break
        assert got["ok"] is False and got["error"]["code"] == code, got
    ping(sock)


def test_fuzz_case_count() -> None:
    """The number of fuzzed messages (reported in docs/reliability.md); a floor so cases are not lost silently."""
    print(f"fuzzed cases: {len(CASES)}")
    assert len(CASES) >= 150


# ------------------------------------------------------------------------------------------ cancellation


def recv_reply(sock: zmq.Socket, msg_id: int) -> dict:
    while True:
        h = msgpack.unpackb(sock.recv_multipart()[0], strict_map_key=False)
        if h.get("id") == msg_id:
            return h


def test_cancel_stops_a_running_op(sidecar: Peer) -> None:
    sock = sidecar.sock
    sleep = req({"seconds": 30}, op="sleep")  # no deadline: only the cancel op can stop it
    sock.send_multipart([pack(sleep)])
    time.sleep(0.2)
    assert ping(sock)["result"]["busy"] == "sleep"
    t0 = time.monotonic()
    cancel = req({"id": sleep["id"]}, op="cancel")
    sock.send_multipart([pack(cancel)])
    assert recv_reply(sock, cancel["id"])["result"] == {"cancelled": True}
    got = recv_reply(sock, sleep["id"])
    assert got["ok"] is False and got["error"]["code"] == "cancelled", got
    assert time.monotonic() - t0 < 1.0
    assert ping(sock)["result"]["busy"] is None
    again = req({"id": sleep["id"]}, op="cancel")
    sock.send_multipart([pack(again)])
    assert recv_reply(sock, again["id"])["result"] == {"cancelled": False}


def test_an_op_past_its_deadline_stops_by_itself(sidecar: Peer) -> None:
    sock = sidecar.sock
    sleep = req({"seconds": 30}, op="sleep", deadline_ms=int(time.time() * 1000) + 300)
    t0 = time.monotonic()
    sock.send_multipart([pack(sleep)])
    got = recv_reply(sock, sleep["id"])
    assert got["ok"] is False and got["error"]["code"] == "cancelled", got
    assert "deadline" in got["error"]["message"]
    assert time.monotonic() - t0 < 1.5
    assert ping(sock)["result"]["busy"] is None
