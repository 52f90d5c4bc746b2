"""The sidecar's RPC server: one ROUTER socket, owned by the main thread (docs/protocol.md).

Threads:
  * main ("socket thread"): every socket operation; answers ping/hello/inline ops at once, so the
    TypeScript heartbeat keeps working while a heavy op runs.
  * worker: runs heavy ops one at a time (a second one while busy gets ``busy``).
  * short-lived threads for ops that only wait (``hello`` waits for the device probe).
Other threads never touch the socket: they append frames to an outbox and wake the main loop
through a pipe that the zmq poller watches.
"""

from __future__ import annotations

import collections
import importlib.metadata
import itertools
import logging
import os
import platform
import queue
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import zmq

from . import __version__, wire
from .wire import PROTOCOL_VERSION, WireError

log = logging.getLogger("dataflex_bridge")

Handler = Callable[[dict[str, Any], "CallContext"], "Mapping[str, Any] | None"]
Mode = Literal["worker", "inline", "thread"]
RESERVED_OPS = frozenset({"hello", "ping", "echo", "sleep", "shutdown", "cancel"})


@dataclass(frozen=True)
class Op:
    """A handler plus where it runs. A bare callable in a handler dict means ``Op(fn, "worker")``.

    ``worker``: the single heavy-op thread (busy while it runs). ``inline``: the socket thread; must
    return in microseconds and cannot call ``ctx.request``. ``thread``: its own thread, not counted
    as busy; for ops that mostly wait. ``check`` validates the args first (the executor's ops: their
    catalog schema).
    """

    fn: Handler
    mode: Mode = "worker"
    # Validates the args before the handler is scheduled (on the socket thread, so even while busy); raises an
    # exception with a ``code`` (e.g. catalog.BadArgs) that becomes the error reply.
    check: Callable[[dict[str, Any]], None] | None = None


class OpError(Exception):
    """Raise from a handler to answer with a specific error ``code`` (e.g. ``config_error``)."""

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class RemoteError(Exception):
    """TypeScript answered a ``ctx.request`` with an error reply."""

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class RequestTimeout(Exception):
    """TypeScript did not answer a ``ctx.request`` in time."""

    code = "deadline"


class CallContext:
    """What a handler gets besides its args: events, calls back into TypeScript, its deadline."""

    def __init__(self, server: Server, peer: bytes, msg_id: int, op: str, deadline: float | None, mode: Mode):
        self._server = server
        self._peer = peer
        self.id = msg_id
        self.op = op
        self.deadline = deadline  # absolute, time.time() seconds; None = no deadline
        self._mode = mode
        self.cancel_event = threading.Event()  # set by the ``cancel`` op

    def time_left(self) -> float | None:
        """Seconds until this call's deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - time.time()

    @property
    def cancelled(self) -> bool:
        """TypeScript asked to cancel this call, or its deadline passed (the requester stopped waiting)."""
        return self.cancel_event.is_set() or (self.deadline is not None and time.time() > self.deadline)

    def check_cancelled(self) -> None:
        """Call at an op's safe points: raises ``OpError('cancelled')`` once :attr:`cancelled`."""
        if self.cancelled:
            why = "cancelled by the caller" if self.cancel_event.is_set() else "past its deadline"
            raise OpError("cancelled", f"op {self.op!r} stopped: {why}")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or raise ``OpError('cancelled')`` as soon as the call is cancelled."""
        end = time.monotonic() + seconds
        while True:
            self.check_cancelled()
            left = end - time.monotonic()
            if left <= 0:
                return
            self.cancel_event.wait(min(left, 0.05))

    def emit(self, event: str, data: Mapping[str, Any] | None = None) -> None:
        """Send an event to TypeScript (``on(event, fn)`` there). Safe from any thread."""
        if not isinstance(event, str) or not event:
            raise ValueError("event name must be a non-empty string")
        srv = self._server
        srv.post(self._peer, wire.encode(wire.event(event, data or {}, v=srv.protocol_version), srv.max_frame_bytes))

    def request(self, op: str, args: Mapping[str, Any] | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
        """Call a TypeScript handler (``handle(op, fn)`` there) and block until it answers.

        Raises :class:`RemoteError` for an error reply and :class:`RequestTimeout` after ``timeout_s``.
        """
        if self._mode == "inline":
            raise RuntimeError("ctx.request cannot be used from an inline op (it would block the socket thread)")
        return self._server.call_peer(self._peer, op, args or {}, timeout_s)


class _Waiter:
    __slots__ = ("event", "header")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.header: dict[str, Any] | None = None


def package_versions() -> dict[str, str | None]:
    def ver(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "torch": ver("torch"),
        "transformers": ver("transformers"),
        "llamafactory": ver("llamafactory"),
        "bridge": ver("dataflex-bridge") or __version__,
    }


def probe_device() -> str:
    try:
        import torch  # imported lazily: 1+ s, and the bridge itself does not need it
    except Exception:
        return "unknown"
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(torch.cuda.current_device()))
    except Exception:
        return "unknown"
    return "cpu"


def world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


class Server:
    def __init__(
        self,
        endpoint: str,
        handlers: Mapping[str, Handler | Op],
        max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES,
        *,
        protocol_version: int = PROTOCOL_VERSION,
        info: Mapping[str, Any] | None = None,
        socket_setup: Callable[[zmq.Socket[Any]], None] | None = None,
    ) -> None:
        clash = RESERVED_OPS.intersection(handlers)
        if clash:
            raise ValueError(f"ops {sorted(clash)} are built in and cannot be replaced")
        self.endpoint = endpoint
        self.max_frame_bytes = max_frame_bytes
        self.protocol_version = protocol_version  # differs from PROTOCOL_VERSION only in tests
        self._info = dict(info or {})
        self._socket_setup = socket_setup  # security options (CURVE) that must be set before bind
        self._ops: dict[str, Op] = {
            "hello": Op(self._op_hello, "thread"),
            "ping": Op(lambda a, c: {"busy": self._busy}, "inline"),
            "echo": Op(lambda a, c: a, "inline"),
            "sleep": Op(_op_sleep, "worker"),
            "shutdown": Op(self._op_shutdown, "inline"),
            "cancel": Op(self._op_cancel, "inline"),
        }
        for name, h in handlers.items():
            self._ops[name] = h if isinstance(h, Op) else Op(h, "worker")

        self._zctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._outbox: collections.deque[tuple[bytes, list[Any], bool]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._busy: str | None = None  # name of the running worker op; main thread only
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stopping = False  # graceful: finish the running op, then exit
        self._terminate = False  # now: exit even if an op runs
        self._out_ids = itertools.count(1)
        self._out_pending: dict[int, _Waiter] = {}
        self._running: dict[tuple[bytes, int], CallContext] = {}  # worker/thread calls, for ``cancel``
        self._lock = threading.Lock()
        self._device: str | None = None
        self._device_ready = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def bind(self) -> str:
        sock = self._zctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished peer raises instead of vanishing
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        if self._socket_setup is not None:
            self._socket_setup(sock)
        sock.bind(self.endpoint)
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.endpoint

    def start_device_probe(self) -> None:
        def run() -> None:
            self._device = probe_device()
            self._device_ready.set()

        threading.Thread(target=run, name="device-probe", daemon=True).start()

    def request_stop(self, force: bool) -> None:
        """Ask the main loop to exit; ``force`` also abandons a running op. Signal- and thread-safe."""
        if force:
            self._terminate = True
        self._stopping = True
        self._wake()

    @property
    def busy(self) -> str | None:
        """Name of the running worker op, or None."""
        return self._busy

    @property
    def device_probed(self) -> bool:
        return self._device_ready.is_set()

    def run(self) -> int:
        """Serve until shutdown/terminate. Returns the exit code (0)."""
        if self._sock is None:
            self.bind()
        sock = self._sock
        assert sock is not None
        threading.Thread(target=self._worker_loop, name="worker", daemon=True).start()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while not self._terminate:
            if self._stopping and self._busy is None:
                break
            # A bounded timeout so a flag set by a signal handler is seen promptly.
            ready = dict(poller.poll(100))
            if self._wake_r in ready:
                self._drain_wake()
            if sock in ready:
                for _ in range(256):  # bounded so outgoing traffic is not starved
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._on_message(frames)
                    self._flush()
            self._flush()
        self._flush()
        sock.close(linger=1000)  # let the shutdown reply (and last events) reach TypeScript
        return 0

    # ------------------------------------------------------------------ outgoing

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # pipe full: the main loop is already due to wake up

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def post(self, peer: bytes, frames: list[Any], done: bool = False) -> None:
        """Queue a message for the main loop to send. ``done`` marks the end of the worker op."""
        self._outbox.append((peer, frames, done))
        if threading.current_thread() is not threading.main_thread():
            self._wake()

    def _flush(self) -> None:
        sock = self._sock
        assert sock is not None
        while self._outbox:
            peer, frames, done = self._outbox.popleft()
            if done:
                self._busy = None
            if not frames:
                continue
            try:
                sock.send_multipart([peer, *frames], copy=False)
            except zmq.ZMQError as exc:
                log.warning("dropped an outgoing message: %s", exc)

    def _reply_error(self, peer: bytes, msg_id: int | None, code: str, message: str, detail: str | None = None) -> None:
        if msg_id is None:
            log.warning("error reply without a usable id (sent as id 0): %s: %s", code, message)
        self.post(peer, wire.encode(wire.error_reply(msg_id or 0, code, message, detail, v=self.protocol_version)))

    # ------------------------------------------------------------------ incoming

    def _on_message(self, frames: list[Any]) -> None:
        """Decode and dispatch one message. Nothing a peer sends may end the socket thread: an unexpected
        exception (a bug in a decoder, check or inline op) is logged and answered, and the loop goes on."""
        peer = frames[0].bytes
        if len(frames) < 2:
            return  # an empty message (ZMQ probe); nothing to answer
        try:
            self._handle_message(peer, frames[1:])
        except Exception as exc:  # noqa: BLE001 - the socket thread must survive anything
            log.exception("internal error while handling a message")
            try:
                self._reply_error(peer, None, "bad_header", f"message could not be handled: {type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001
                log.exception("could not answer a message that failed")

    def _handle_message(self, peer: bytes, body: list[Any]) -> None:
        header: dict[str, Any] | None = None
        try:
            header = wire.unpack_header(body[0], self.max_frame_bytes)
            kind = wire.validate_header(header, self.protocol_version)
            key = wire.body_key(header, kind)
            header[key] = wire.resolve_arrays(header[key], body[1:], wire.peek_id(header), self.max_frame_bytes)
        except WireError as exc:
            msg_id = exc.msg_id if exc.msg_id is not None else (wire.peek_id(header) if header else None)
            if header is not None and header.get("kind") == "res":
                # Never answer a reply with a reply; fail the waiting worker call instead.
                self._fail_waiter(msg_id, exc)
            else:
                self._reply_error(peer, msg_id, exc.code, str(exc))
            return
        if kind == "req":
            self._on_request(peer, header)
        elif kind == "res":
            self._on_reply(header)
        else:
            self._reply_error(peer, None, "bad_header", "events are only sent by the sidecar")

    def _on_reply(self, header: dict[str, Any]) -> None:
        with self._lock:
            waiter = self._out_pending.pop(header["id"], None)
        if waiter is None:
            log.debug("reply for unknown or expired request id %s ignored", header["id"])
            return
        waiter.header = header
        waiter.event.set()

    def _fail_waiter(self, msg_id: int | None, exc: WireError) -> None:
        with self._lock:
            waiter = self._out_pending.pop(msg_id, None) if msg_id is not None else None
        if waiter is None:
            log.warning("ignored a malformed reply: %s", exc)
            return
        waiter.header = wire.error_reply(msg_id or 0, exc.code, f"malformed reply from TypeScript: {exc}")
        waiter.event.set()

    def _on_request(self, peer: bytes, header: dict[str, Any]) -> None:
        msg_id: int = header["id"]
        op_name: str = header["op"]
        op = self._ops.get(op_name)
        if op is None:
            known = ", ".join(sorted(self._ops))
            self._reply_error(peer, msg_id, "unknown_op", f"unknown op {op_name!r}; known: {known}")
            return
        deadline_ms = header.get("deadline_ms")
        deadline = None if deadline_ms is None else deadline_ms / 1000.0
        if deadline is not None and time.time() > deadline:
            late = time.time() * 1000.0 - deadline_ms
            self._reply_error(peer, msg_id, "deadline", f"op {op_name!r} arrived {late:.0f} ms after its deadline")
            return
        if self._stopping and op_name not in ("ping", "hello", "shutdown"):
            self._reply_error(peer, msg_id, "cancelled", f"op {op_name!r} refused: the sidecar is shutting down")
            return
        if op.check is not None:
            try:
                op.check(header["args"])
            except Exception as exc:
                self._reply_error(peer, msg_id, error_code(exc), error_message(exc))
                return
        ctx = CallContext(self, peer, msg_id, op_name, deadline, op.mode)
        if op.mode != "inline":
            with self._lock:
                self._running[(peer, msg_id)] = ctx
        if op.mode == "inline":
            self._call(op, header["args"], ctx, peer, done=False)
        elif op.mode == "thread":
            threading.Thread(
                target=self._call, args=(op, header["args"], ctx, peer, False), name=f"op-{op_name}", daemon=True
            ).start()
        else:
            if self._busy is not None:
                with self._lock:
                    self._running.pop((peer, msg_id), None)
                self._reply_error(peer, msg_id, "busy", f"op {op_name!r} refused: {self._busy!r} is still running")
                return
            self._busy = op_name
            self._jobs.put(lambda: self._call(op, header["args"], ctx, peer, done=True))

    def _call(self, op: Op, args: dict[str, Any], ctx: CallContext, peer: bytes, done: bool) -> None:
        frames: list[Any] = []
        try:
            frames = self._run_handler(op, args, ctx)
        except BaseException as exc:  # KeyboardInterrupt on the main thread: answer, then let it stop us
            message = f"internal error in {ctx.op!r}: {type(exc).__name__}: {exc}"
            frames = wire.encode(wire.error_reply(ctx.id, "op_failed", message, v=self.protocol_version))
            raise
        finally:
            if ctx._mode != "inline":
                with self._lock:
                    self._running.pop((peer, ctx.id), None)
            self.post(peer, frames, done)  # always, so ``busy`` is cleared

    def _run_handler(self, op: Op, args: dict[str, Any], ctx: CallContext) -> list[Any]:
        v = self.protocol_version
        try:
            result = op.fn(args, ctx)
            if result is None:
                result = {}
            if not isinstance(result, Mapping):
                raise OpError("op_failed", f"op {ctx.op!r} returned {type(result).__name__}, expected a map")
            try:
                return wire.encode(wire.ok_reply(ctx.id, result, v=v), self.max_frame_bytes)
            except WireError as exc:
                code = exc.code if exc.code == "frame_too_large" else "op_failed"
                return wire.encode(wire.error_reply(ctx.id, code, f"cannot send the result of {ctx.op!r}: {exc}", v=v))
        except (Exception, SystemExit) as exc:  # SystemExit: argument parsers in libraries call sys.exit
            return wire.encode(wire.error_reply(ctx.id, error_code(exc), error_message(exc), error_detail(exc), v=v))

    def _worker_loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except BaseException:  # noqa: BLE001 - the worker thread must survive anything
                log.exception("worker job failed outside its handler")

    # ------------------------------------------------------------------ calls into TypeScript

    def call_peer(self, peer: bytes, op: str, args: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        msg_id = next(self._out_ids)
        waiter = _Waiter()
        with self._lock:
            self._out_pending[msg_id] = waiter
        deadline_ms = int((time.time() + timeout_s) * 1000)
        try:
            header = wire.request(msg_id, op, args, deadline_ms, v=self.protocol_version)
            self.post(peer, wire.encode(header, self.max_frame_bytes))
        except BaseException:
            with self._lock:
                self._out_pending.pop(msg_id, None)
            raise
        if not waiter.event.wait(timeout_s):
            with self._lock:
                self._out_pending.pop(msg_id, None)
            raise RequestTimeout(f"TypeScript did not answer {op!r} within {timeout_s:g} s")
        h = waiter.header
        assert h is not None
        if h["ok"]:
            return h["result"]
        err = h["error"]
        raise RemoteError(err["code"], err["message"], err.get("detail"))

    # ------------------------------------------------------------------ built-in ops

    def _op_hello(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        theirs = args.get("protocol")
        if theirs != self.protocol_version:
            raise OpError(
                "protocol_mismatch",
                f"protocol mismatch: client speaks version {theirs}, "
                f"this sidecar speaks version {self.protocol_version}",
            )
        self._device_ready.wait(120)
        return {
            "protocol": self.protocol_version,
            "pid": os.getpid(),
            "versions": package_versions(),
            "device": self._device or "unknown",
            "world_size": world_size(),
            "max_frame_bytes": self.max_frame_bytes,
            "ops": sorted(self._ops),
            **self._info,
        }

    def _op_shutdown(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        self._stopping = True
        return {}

    def _op_cancel(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        target = args.get("id")
        if not wire.is_uint(target):
            raise OpError("bad_args", "cancel: 'id' must be a non-negative integer")
        with self._lock:
            running = self._running.get((ctx._peer, target))
        if running is not None:
            running.cancel_event.set()
        return {"cancelled": running is not None}


_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def error_code(exc: BaseException) -> str:
    """The protocol code for an exception: its string ``code`` attribute if it looks like one."""
    code = getattr(exc, "code", None)
    if isinstance(exc, SystemExit) or not isinstance(code, str) or not _CODE_RE.fullmatch(code):
        return "op_failed"
    return code


def error_message(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the op called sys.exit({exc.code!r})"
    return str(exc) or type(exc).__name__


def error_detail(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None)
    if isinstance(detail, str):
        return detail
    return "".join(traceback.format_exception(exc))


def _op_sleep(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    seconds = args.get("seconds", 0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds >= 0:  # NaN too
        raise OpError("config_error", "'seconds' must be a non-negative number")
    ctx.sleep(seconds)
    return {}


def serve(
    endpoint: str,
    handlers: Mapping[str, Handler | Op],
    max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES,
    *,
    on_ready: Callable[[Server], None] | None = None,
    **kwargs: Any,
) -> int:
    """Bind, call ``on_ready`` (prints READY in ``__main__``), serve until shutdown. Returns the exit code."""
    server = Server(endpoint, handlers, max_frame_bytes, **kwargs)
    server.bind()
    server.start_device_probe()
    if on_ready is not None:
        on_ready(server)
    return server.run()
