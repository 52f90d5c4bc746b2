"""Wire format of the DataFlex bridge (docs/protocol.md).

A message is a list of frames: frame 0 is a msgpack header (a map), frames 1..n are raw little-endian
array payloads referenced from the header as ``{"$nd": i, "dtype": d, "shape": [...]}``.

Everything here is pure (no sockets), so it is unit-tested on its own (tests/test_wire.py). Validation is
explicit: every problem raises :class:`WireError` carrying the protocol error code and, when it could be
read, the message id, so the server can always answer with an error reply.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 1 << 30
ND_KEY = "$nd"
# Bounds on the walks over a header's values, so no peer can exhaust the stack or the socket thread's time:
# nesting deeper than MAX_DEPTH maps/lists, more than MAX_NODES values, or arrays of more than MAX_NDIM
# dimensions are refused (bad_header / bad_array) instead of raising RecursionError deep inside the walk.
MAX_DEPTH = 64
MAX_NODES = 1 << 20
MAX_NDIM = 32

ERROR_CODES = frozenset(
    {
        "bad_header",
        "unknown_op",
        "bad_array",
        "frame_too_large",
        "busy",
        "deadline",
        "config_error",
        "op_failed",
        "protocol_mismatch",
        "cancelled",
        "bad_args",
    }
)

DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("u1"),
}
_NAME_OF_KIND = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items()}
# Dtypes the wire does not carry are widened losslessly instead of being refused.
_WIDEN: dict[tuple[str, int], str] = {
    ("b", 1): "uint8",  # bool
    ("i", 1): "int32",
    ("i", 2): "int32",
    ("u", 2): "int32",
    ("u", 4): "int64",
    ("f", 2): "float32",
}
_MAX_U64 = (1 << 64) - 1
_MIN_I64 = -(1 << 63)


class WireError(Exception):
    """A message that cannot be encoded or decoded. ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str, msg_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.msg_id = msg_id

    @property
    def message(self) -> str:
        return str(self)


# --------------------------------------------------------------------------------------------- encode


def encode(header: Mapping[str, Any], max_frame_bytes: int | None = None) -> list[Any]:
    """Header (arrays anywhere inside) -> frames ``[msgpack header, payload0, payload1, ...]``.

    numpy arrays and torch tensors become raw frames; numpy scalars become Python numbers.
    Payload frames are zero-copy views (pyzmq keeps them alive until sent).
    """
    payloads: list[np.ndarray] = []
    body = _extract(header, payloads, "header", 0)
    for i, arr in enumerate(payloads):
        if max_frame_bytes is not None and arr.nbytes > max_frame_bytes:
            raise WireError(
                "frame_too_large",
                f"array #{i} has {arr.nbytes} bytes, more than the frame limit of {max_frame_bytes}",
            )
    try:
        head = msgpack.packb(body, use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:
        raise WireError("bad_header", f"cannot encode header: {exc}") from exc
    return [head, *(memoryview(a.reshape(-1).view(np.uint8)) for a in payloads)]


_PLAIN = (str, float, bool, type(None))


def _extract(value: Any, payloads: list[np.ndarray], path: str, depth: int) -> Any:
    t = type(value)
    # Exact-type fast paths first (this runs for every value of every message).
    if t in _PLAIN:
        return value
    if depth > MAX_DEPTH and (t is dict or t is list or isinstance(value, (Mapping, list, tuple))):
        raise WireError("bad_header", f"{path}: nested deeper than {MAX_DEPTH} maps/lists")
    if t is dict:
        return _extract_map(value, payloads, path, depth)
    if t is np.ndarray:
        return _array_ref(value, payloads, path)
    if t is list:
        return [_extract(v, payloads, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    # Then subclasses. Order matters: bool before int (bool is an int subclass).
    if isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if value > _MAX_U64 or value < _MIN_I64:
            raise WireError("bad_header", f"{path}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, np.ndarray):
        return _array_ref(value, payloads, path)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return _extract_map(value, payloads, path, depth)
    if isinstance(value, (list, tuple)):
        return [_extract(v, payloads, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if _is_torch_tensor(value):
        return _array_ref(_tensor_to_numpy(value), payloads, path)
    raise WireError("bad_header", f"{path}: cannot encode a value of type {type(value).__name__}")


def _extract_map(value: Mapping[Any, Any], payloads: list[np.ndarray], path: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if type(k) is not str:
            if not isinstance(k, str):
                raise WireError("bad_header", f"{path}: map key {k!r} is not a string")
            k = str(k)
        if k == ND_KEY:
            raise WireError("bad_header", f"{path}: '{ND_KEY}' is a reserved key")
        out[k] = _extract(v, payloads, path + "." + k, depth + 1)
    return out


def _is_torch_tensor(value: Any) -> bool:
    # Duck-typed so this module never imports torch (1+ s) just to check a type.
    t = type(value)
    return t.__module__.startswith("torch") and hasattr(value, "detach") and hasattr(value, "numpy")


def _tensor_to_numpy(t: Any) -> np.ndarray:
    t = t.detach().cpu()
    if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
        t = t.float()  # numpy has no bfloat16; float32 holds both exactly
    return t.numpy()


def wire_dtype(dt: np.dtype) -> str:
    """The wire dtype name for a numpy dtype (after lossless widening), or raise ``bad_array``."""
    key = (dt.kind, dt.itemsize)
    name = _NAME_OF_KIND.get(key) or _WIDEN.get(key)
    if name is None:
        raise WireError("bad_array", f"dtype {dt} cannot be sent; use one of {', '.join(DTYPES)}")
    return name


def _array_ref(arr: np.ndarray, payloads: list[np.ndarray], path: str) -> dict[str, Any]:
    try:
        name = wire_dtype(arr.dtype)
    except WireError as exc:
        raise WireError(exc.code, f"{path}: {exc}") from None
    target = DTYPES[name]
    if arr.dtype != target:
        arr = arr.astype(target)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # (not unconditionally: it turns a 0-d array into 1-d)
    payloads.append(arr)
    return {ND_KEY: len(payloads) - 1, "dtype": name, "shape": list(arr.shape)}


# --------------------------------------------------------------------------------------------- decode


def buffer_of(frame: Any) -> memoryview:
    """A flat byte view of a frame (``zmq.Frame``, bytes or any buffer)."""
    buf = getattr(frame, "buffer", None)  # zmq.Frame
    mv = memoryview(buf if buf is not None else frame)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


def frame_size(frame: Any) -> int:
    return buffer_of(frame).nbytes


def unpack_header(frame: Any, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> dict[str, Any]:
    """Frame 0 -> header map. No field checks yet (see :func:`validate_header`)."""
    size = frame_size(frame)
    if size > max_frame_bytes:
        raise WireError("frame_too_large", f"header frame has {size} bytes, limit is {max_frame_bytes}")
    try:
        obj = msgpack.unpackb(buffer_of(frame), raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage input
        raise WireError("bad_header", f"header is not valid msgpack: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("bad_header", f"header must be a map, got {type(obj).__name__}")
    return obj


def peek_id(header: Mapping[str, Any]) -> int | None:
    """The message id if it is usable for a reply, else None (the reply then uses id 0)."""
    mid = header.get("id")
    if isinstance(mid, int) and not isinstance(mid, bool) and 0 <= mid <= _MAX_U64:
        return mid
    return None


def is_uint(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _MAX_U64


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_header(h: Mapping[str, Any], version: int = PROTOCOL_VERSION) -> str:
    """Check a header's fields; return its kind (``req`` | ``res`` | ``evt``) or raise :class:`WireError`.

    The version is checked first: a header of another version may be shaped differently.
    """
    mid = peek_id(h)

    def bad(msg: str) -> WireError:
        return WireError("bad_header", msg, mid)

    v = h.get("v")
    if not is_uint(v):
        raise bad("'v' (protocol version) must be a non-negative integer")
    if v != version:
        raise WireError(
            "protocol_mismatch",
            f"protocol mismatch: the message is version {v}, this side speaks version {version}",
            mid,
        )
    kind = h.get("kind")
    if kind == "req":
        if not is_uint(h.get("id")):
            raise bad("'id' must be a non-negative integer")
        op = h.get("op")
        if not isinstance(op, str) or not op:
            raise bad("'op' must be a non-empty string")
        if not isinstance(h.get("args"), dict):
            raise bad("'args' must be a map")
        if "deadline_ms" in h and not (_is_number(h["deadline_ms"]) and h["deadline_ms"] >= 0):
            raise bad("'deadline_ms' must be a non-negative number")
    elif kind == "res":
        if not is_uint(h.get("id")):
            raise bad("'id' must be a non-negative integer")
        ok = h.get("ok")
        if ok is True:
            if not isinstance(h.get("result"), dict):
                raise bad("'result' must be a map")
        elif ok is False:
            err = h.get("error")
            if not isinstance(err, dict):
                raise bad("'error' must be a map")
            if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
                raise bad("'error' needs string 'code' and 'message'")
            if "detail" in err and not isinstance(err["detail"], str):
                raise bad("'error.detail' must be a string")
        else:
            raise bad("'ok' must be a boolean")
    elif kind == "evt":
        ev = h.get("event")
        if not isinstance(ev, str) or not ev:
            raise bad("'event' must be a non-empty string")
        if not isinstance(h.get("data"), dict):
            raise bad("'data' must be a map")
    else:
        raise bad(f"'kind' must be 'req', 'res' or 'evt', got {_clip(kind)}")
    return kind


def resolve_arrays(
    value: Any, payloads: Sequence[Any], msg_id: int | None = None, max_frame_bytes: int | None = None
) -> Any:
    """Replace every ``$nd`` reference inside ``value`` with a numpy array built from ``payloads``.

    Arrays are copies (writable, aligned, owned), so handlers get ordinary numpy arrays and the
    message buffers are freed as soon as the message is handled. Every payload must be referenced.
    With ``max_frame_bytes``, a larger payload is ``frame_too_large``.
    """
    views = [buffer_of(p) for p in payloads]
    if max_frame_bytes is not None:
        for i, v in enumerate(views):
            if v.nbytes > max_frame_bytes:
                raise WireError(
                    "frame_too_large", f"array frame {i} has {v.nbytes} bytes, limit is {max_frame_bytes}", msg_id
                )
    used = [False] * len(views)
    out = _Resolver(views, used, msg_id).walk(value, 0)
    unused = [i for i, u in enumerate(used) if not u]
    if unused:
        raise WireError("bad_array", f"array frame(s) {unused} are not referenced from the header", msg_id)
    return out


class _Resolver:
    """One walk over a decoded header body; bounded in depth (MAX_DEPTH) and in values visited (MAX_NODES)."""

    __slots__ = ("views", "used", "msg_id", "nodes")

    def __init__(self, views: list[memoryview], used: list[bool], msg_id: int | None) -> None:
        self.views, self.used, self.msg_id, self.nodes = views, used, msg_id, 0

    def walk(self, value: Any, depth: int) -> Any:
        t = type(value)
        if t is not dict and t is not list:
            return value
        if depth > MAX_DEPTH:
            raise WireError("bad_header", f"header values nest deeper than {MAX_DEPTH} maps/lists", self.msg_id)
        self.nodes += len(value)
        if self.nodes > MAX_NODES:
            raise WireError("bad_header", f"header holds more than {MAX_NODES} values", self.msg_id)
        if t is dict:
            if ND_KEY in value:
                return _ref_to_array(value, self.views, self.used, self.msg_id)
            return {k: self.walk(v, depth + 1) for k, v in value.items()}
        return [self.walk(v, depth + 1) for v in value]


def _ref_to_array(ref: dict[str, Any], views: list[memoryview], used: list[bool], msg_id: int | None) -> np.ndarray:
    def bad(msg: str) -> WireError:
        return WireError("bad_array", msg, msg_id)

    if len(ref) != 3 or "dtype" not in ref or "shape" not in ref:
        raise bad(f"array reference must have exactly the keys $nd, dtype, shape; got {_clip(list(ref))}")
    idx, dtype, shape = ref[ND_KEY], ref["dtype"], ref["shape"]
    if not is_uint(idx) or idx >= len(views):
        raise bad(f"array reference $nd={_clip(idx)} points at no frame ({len(views)} array frame(s))")
    dt = DTYPES.get(dtype) if type(dtype) is str else None
    if dt is None:
        raise bad(f"unknown dtype {_clip(dtype)}; expected one of {', '.join(DTYPES)}")
    if type(shape) is not list or len(shape) > MAX_NDIM or not all(is_uint(d) for d in shape):
        raise bad(f"shape must be a list of at most {MAX_NDIM} non-negative integers, got {_clip(shape)}")
    count = math.prod(shape)
    buf = views[idx]
    if buf.nbytes != count * dt.itemsize:
        raise bad(
            f"frame {idx} has {buf.nbytes} bytes but {dtype}{shape} needs {count * dt.itemsize}"
        )
    used[idx] = True
    return np.frombuffer(buf, dtype=dt, count=count).reshape(shape).copy()


def _clip(value: Any, limit: int = 80) -> str:
    """repr for an error message, cut short: a peer's value may be huge."""
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode(
    frames: Sequence[Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, version: int = PROTOCOL_VERSION
) -> dict[str, Any]:
    """Frames -> validated header with arrays resolved. Raises :class:`WireError`."""
    if not frames:
        raise WireError("bad_header", "empty message")
    header = unpack_header(frames[0], max_frame_bytes)
    mid = peek_id(header)
    kind = validate_header(header, version)
    key = body_key(header, kind)
    header[key] = resolve_arrays(header[key], frames[1:], mid, max_frame_bytes)
    return header


def body_key(header: Mapping[str, Any], kind: str) -> str:
    """The header field that may hold array references."""
    if kind == "req":
        return "args"
    if kind == "evt":
        return "data"
    return "result" if header.get("ok") is True else "error"


# --------------------------------------------------------------------------------------------- builders


def request(
    msg_id: int, op: str, args: Mapping[str, Any], deadline_ms: int | None = None, v: int = PROTOCOL_VERSION
) -> dict[str, Any]:
    h: dict[str, Any] = {"v": v, "kind": "req", "id": msg_id, "op": op, "args": args}
    if deadline_ms is not None:
        h["deadline_ms"] = deadline_ms
    return h


def ok_reply(msg_id: int, result: Mapping[str, Any], v: int = PROTOCOL_VERSION) -> dict[str, Any]:
    return {"v": v, "kind": "res", "id": msg_id, "ok": True, "result": result}


def error_reply(
    msg_id: int, code: str, message: str, detail: str | None = None, v: int = PROTOCOL_VERSION
) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        err["detail"] = detail
    return {"v": v, "kind": "res", "id": msg_id, "ok": False, "error": err}


def event(name: str, data: Mapping[str, Any], v: int = PROTOCOL_VERSION) -> dict[str, Any]:
    return {"v": v, "kind": "evt", "event": name, "data": data}
