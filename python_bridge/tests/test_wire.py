"""Wire format: round trips and every validation error (docs/protocol.md)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import msgpack
import numpy as np
import pytest

from dataflex_bridge import wire
from dataflex_bridge.wire import PROTOCOL_VERSION, WireError


def roundtrip(header: dict, **kw) -> dict:
    frames = [bytes(f) for f in wire.encode(header)]
    return wire.decode(frames, **kw)


def req(args: dict, **extra) -> dict:
    return {**wire.request(7, "echo", args), **extra}


def raw_frames(header: dict, *payloads: bytes) -> list[bytes]:
    return [msgpack.packb(header, use_bin_type=True), *payloads]


def code_of(frames: list[bytes], **kw) -> tuple[str, int | None]:
    with pytest.raises(WireError) as info:
        wire.decode(frames, **kw)
    return info.value.code, info.value.msg_id


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8"])
@pytest.mark.parametrize("n", [0, 1, 1 << 20])
def test_arrays_round_trip_bit_exact(dtype: str, n: int) -> None:
    rng = np.random.default_rng(n)
    a = np.frombuffer(rng.bytes(n * wire.DTYPES[dtype].itemsize), dtype=wire.DTYPES[dtype])
    back = roundtrip(req({"a": a}))["args"]["a"]
    assert back.dtype == wire.DTYPES[dtype]
    assert back.shape == (n,)
    assert back.tobytes() == a.tobytes()


def test_float_specials_survive_bit_for_bit() -> None:
    bits = np.array([0x7FC00001, 0xFFC12345, 0x7F800001, 0x00000001, 0x80000000, 0x7F800000], dtype="<u4")
    a = bits.view("<f4")
    back = roundtrip(req({"a": a}))["args"]["a"]
    assert back.view("<u4").tolist() == bits.tolist()


@pytest.mark.parametrize("shape", [(), (3, 4), (2, 3, 4), (0, 5)])
def test_shapes_are_kept(shape: tuple[int, ...]) -> None:
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    back = roundtrip(req({"a": a}))["args"]["a"]
    assert back.shape == shape
    np.testing.assert_array_equal(back, a)


def test_decoded_arrays_are_writable_copies() -> None:
    back = roundtrip(req({"a": np.ones(4, np.float32)}))["args"]["a"]
    assert back.flags.writeable and back.flags.owndata and back.flags.aligned
    back[0] = 5


def test_non_contiguous_and_big_endian_inputs_are_normalised() -> None:
    m = np.arange(20, dtype=np.int32).reshape(4, 5)
    be = np.arange(3, dtype=">f8")
    out = roundtrip(req({"t": m.T, "s": m[:, 1], "be": be}))["args"]
    np.testing.assert_array_equal(out["t"], m.T)
    np.testing.assert_array_equal(out["s"], m[:, 1])
    assert out["be"].dtype == np.dtype("<f8")
    np.testing.assert_array_equal(out["be"], be)


@pytest.mark.parametrize(
    ("src", "wire_dtype"),
    [
        (np.bool_, "uint8"),
        (np.int8, "int32"),
        (np.int16, "int32"),
        (np.uint16, "int32"),
        (np.uint32, "int64"),
        (np.float16, "float32"),
    ],
)
def test_other_dtypes_widen_losslessly(src: type, wire_dtype: str) -> None:
    a = np.array([0, 1, 1], dtype=src)
    frames = wire.encode(req({"a": a}))
    ref = msgpack.unpackb(frames[0])["args"]["a"]
    assert ref["dtype"] == wire_dtype
    back = wire.decode([bytes(f) for f in frames])["args"]["a"]
    np.testing.assert_array_equal(back, a.astype(wire.DTYPES[wire_dtype]))


def test_plain_values_round_trip() -> None:
    args = {
        "s": "héllo ✓",
        "i": [0, -1, 2**40, -(2**63), 2**64 - 1],
        "f": [1.5, float("inf")],
        "b": [True, False, None],
        "bytes": b"\x00\x01",
        "nested": {"a": [{"b": np.int64(3)}, (1, 2)]},
        "scalars": [np.float32(0.5), np.bool_(True)],
    }
    out = roundtrip(req(args))["args"]
    assert out["nested"] == {"a": [{"b": 3}, [1, 2]]}
    assert out["scalars"] == [0.5, True]
    assert out["i"] == args["i"] and out["s"] == args["s"] and out["bytes"] == b"\x00\x01"


def test_torch_tensors_become_arrays() -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3).requires_grad_(True)
    out = roundtrip(wire.ok_reply(1, {"t": t * 1, "i": torch.tensor([1, 2], dtype=torch.int64)}))["result"]
    assert out["t"].dtype == np.float32 and out["t"].shape == (2, 3)
    np.testing.assert_array_equal(out["t"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert out["i"].dtype == np.int64


@pytest.mark.parametrize(
    "header",
    [
        wire.request(1, "op", {"x": 1}, deadline_ms=1_700_000_000_000),
        wire.ok_reply(2, {"r": np.zeros(2, np.uint8)}),
        wire.error_reply(3, "busy", "still running", "detail"),
        wire.error_reply(4, "op_failed", "no detail"),
        wire.event("progress", {"step": 1}),
    ],
)
def test_builders_make_valid_headers(header: dict) -> None:
    out = roundtrip(header)
    assert out["kind"] == header["kind"] and out["v"] == PROTOCOL_VERSION


# ------------------------------------------------------------------------------------------ encode errors


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({1: "x"}, "bad_header"),
        ({"$nd": 0}, "bad_header"),
        ({"o": object()}, "bad_header"),
        ({"big": 2**64}, "bad_header"),
        ({"c": np.zeros(2, np.complex64)}, "bad_array"),
        ({"u": np.zeros(2, np.uint64)}, "bad_array"),
        ({"s": np.array(["a"])}, "bad_array"),
    ],
)
def test_encode_refuses(args: dict, code: str) -> None:
    with pytest.raises(WireError) as info:
        wire.encode(wire.ok_reply(1, args))
    assert info.value.code == code


def test_encode_checks_the_frame_limit() -> None:
    with pytest.raises(WireError) as info:
        wire.encode(wire.ok_reply(1, {"a": np.zeros(100, np.float32)}), max_frame_bytes=399)
    assert info.value.code == "frame_too_large"
    wire.encode(wire.ok_reply(1, {"a": np.zeros(100, np.float32)}), max_frame_bytes=400)


# ------------------------------------------------------------------------------------------ decode errors


def test_header_not_msgpack() -> None:
    assert code_of([b"\xc1\xc1"]) == ("bad_header", None)


def test_header_not_a_map() -> None:
    assert code_of([msgpack.packb([1, 2])]) == ("bad_header", None)


def test_empty_message() -> None:
    assert code_of([])[0] == "bad_header"


def test_header_frame_too_large() -> None:
    frames = raw_frames(req({"pad": "x" * 200}))
    assert code_of(frames, max_frame_bytes=100)[0] == "frame_too_large"


def test_array_frame_too_large_keeps_the_id() -> None:
    frames = raw_frames(req({"a": {"$nd": 0, "dtype": "uint8", "shape": [64]}}), bytes(64))
    assert code_of(frames, max_frame_bytes=63) == ("frame_too_large", 7)


def test_other_protocol_version() -> None:
    assert code_of(raw_frames(req({}, v=PROTOCOL_VERSION + 1))) == ("protocol_mismatch", 7)
    # and a sidecar that speaks another version refuses ours
    assert code_of(raw_frames(req({})), version=PROTOCOL_VERSION + 1) == ("protocol_mismatch", 7)


@pytest.mark.parametrize(
    "change",
    [
        {"v": None},
        {"v": "1"},
        {"kind": "request"},
        {"id": -1},
        {"id": "7"},
        {"id": True},
        {"op": ""},
        {"op": 3},
        {"args": [1]},
        {"deadline_ms": -1},
        {"deadline_ms": "soon"},
        {"deadline_ms": float("nan")},
    ],
)
def test_bad_request_headers(change: dict) -> None:
    h = {**req({}), **change}
    code, msg_id = code_of(raw_frames(h))
    assert code == "bad_header"
    assert msg_id == (7 if "id" not in change else None)


@pytest.mark.parametrize(
    "header",
    [
        {"v": 1, "kind": "res", "id": 1, "ok": True},
        {"v": 1, "kind": "res", "id": 1, "ok": True, "result": [1]},
        {"v": 1, "kind": "res", "id": 1, "ok": "yes", "result": {}},
        {"v": 1, "kind": "res", "id": 1, "ok": False},
        {"v": 1, "kind": "res", "id": 1, "ok": False, "error": {"code": "x"}},
        {"v": 1, "kind": "res", "id": 1, "ok": False, "error": {"code": "x", "message": "m", "detail": 5}},
        {"v": 1, "kind": "res", "ok": True, "result": {}},
        {"v": 1, "kind": "evt", "data": {}},
        {"v": 1, "kind": "evt", "event": "e", "data": None},
    ],
)
def test_bad_reply_and_event_headers(header: dict) -> None:
    assert code_of(raw_frames(header))[0] == "bad_header"


@pytest.mark.parametrize(
    ("ref", "payloads"),
    [
        ({"$nd": 0, "dtype": "float16", "shape": [2]}, [bytes(4)]),
        ({"$nd": 0, "dtype": "float32", "shape": [3]}, [bytes(8)]),
        ({"$nd": 1, "dtype": "uint8", "shape": [1]}, [bytes(1)]),
        ({"$nd": -1, "dtype": "uint8", "shape": [1]}, [bytes(1)]),
        ({"$nd": 0, "dtype": "uint8", "shape": [-1]}, [bytes(1)]),
        ({"$nd": 0, "dtype": "uint8", "shape": 1}, [bytes(1)]),
        ({"$nd": 0, "dtype": "uint8", "shape": [1], "extra": 1}, [bytes(1)]),
        ({"$nd": 0, "dtype": "uint8"}, [bytes(1)]),
        ({"$nd": 0, "dtype": "uint8", "shape": [1]}, []),
    ],
)
def test_bad_array_references(ref: dict, payloads: list[bytes]) -> None:
    assert code_of(raw_frames(req({"x": ref}), *payloads)) == ("bad_array", 7)


def test_unreferenced_frame() -> None:
    assert code_of(raw_frames(req({}), bytes(4))) == ("bad_array", 7)


def test_array_refs_are_resolved_in_error_and_event_bodies_too() -> None:
    h = wire.event("e", {"a": {"$nd": 0, "dtype": "int32", "shape": [1]}})
    out = wire.decode(raw_frames(h, np.array([5], "<i4").tobytes()))
    assert out["data"]["a"].tolist() == [5]


def test_peek_id() -> None:
    assert wire.peek_id({"id": 3}) == 3
    assert wire.peek_id({"id": True}) is None
    assert wire.peek_id({"id": -2}) is None
    assert wire.peek_id({}) is None


def test_error_codes_match_the_protocol_doc() -> None:
    # The codes table of docs/protocol.md, "Validation and errors": one row per code, `| `code` | when |`.
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = doc.split("## Validation and errors", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z][a-z0-9_]*)` \|", section, flags=re.MULTILINE))
    assert wire.ERROR_CODES == documented


def test_walks_are_bounded() -> None:
    """Nesting and size limits (docs/reliability.md): refused with a code, never a RecursionError."""
    deep: object = 0
    for _ in range(wire.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(WireError) as info:
        wire.encode(req({"x": deep}))
    assert info.value.code == "bad_header"
    head = msgpack.packb({**req({}), "args": {}})
    # args {"x": [[...[0]...]]} 500 deep, packed by hand (msgpack's packer stops at 512).
    frames = [head[:-1] + b"\x81\xa1x" + b"\x91" * 500 + b"\x00"]
    assert code_of(frames) == ("bad_header", 7)
    assert code_of(raw_frames(req({"x": [0] * (wire.MAX_NODES + 1)}))) == ("bad_header", 7)
    ref = {"$nd": 0, "dtype": "uint8", "shape": [1] * (wire.MAX_NDIM + 1)}
    assert code_of(raw_frames(req({"a": ref}), b"\x00")) == ("bad_array", 7)
    ok = {"$nd": 0, "dtype": "uint8", "shape": [1] * wire.MAX_NDIM}
    assert wire.decode(raw_frames(req({"a": ok}), b"\x00"))["args"]["a"].ndim == wire.MAX_NDIM
