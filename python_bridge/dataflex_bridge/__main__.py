"""``python -m dataflex_bridge``: the sidecar process that TypeScript spawns and supervises.

Prints ``READY <pid> <endpoint>`` on stdout once the socket is bound. Under torchrun (WORLD_SIZE > 1) only rank 0
binds and prints READY; the other ranks follow it (ranks.py). Exits when told to
(``shutdown`` op, SIGTERM) and also when its parent goes away: stdin EOF (the parent holds the other end
of the pipe) and PR_SET_PDEATHSIG, so the sidecar never outlives the orchestrator.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import importlib.util
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import traceback
from typing import Any

import numpy as np
import zmq

from . import ranks, remote, wire
from .server import CallContext, Handler, Op, OpError, Server

log = logging.getLogger("dataflex_bridge")

EXIT_PARENT_GONE = 70  # stdin EOF
EXIT_ORPHANED = 71  # parent died before PR_SET_PDEATHSIG was armed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dataflex_bridge", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", help="ZeroMQ endpoint to bind (default: ipc in a private temp dir)")
    p.add_argument("--max-frame-bytes", type=int, default=wire.DEFAULT_MAX_FRAME_BYTES)
    p.add_argument("--no-executor", action="store_true", help="do not load dataflex_bridge.executor ops")
    p.add_argument("--test-ops", action="store_true", help="enable ops used by the bridge tests and benchmark")
    p.add_argument("--no-parent-watch", action="store_true", help="do not exit on stdin EOF / parent death")
    p.add_argument(
        "--cleanup-dir",
        action="append",
        default=[],
        help="remove this directory on exit, however we exit (the supervisor's private socket dir)",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--keys",
        help="CURVE key folder (dataflex keys <dir>): encrypt tcp and accept only the authorised clients",
    )
    p.add_argument(
        "--remote",
        action="store_true",
        help="serve clients on other hosts: one client at a time, stop when it falls silent (dataflex serve)",
    )
    p.add_argument("--client-timeout", type=float, default=60.0, help="with --remote: seconds of client silence")
    # Tests only: claim another protocol version to exercise the mismatch path.
    p.add_argument("--test-protocol", type=int, default=wire.PROTOCOL_VERSION, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.max_frame_bytes <= 0:
        p.error("--max-frame-bytes must be positive")
    if args.client_timeout <= 0:
        p.error("--client-timeout must be positive")
    return args


_cleanup_dirs: list[str] = []


def cleanup() -> None:
    for d in _cleanup_dirs:
        shutil.rmtree(d, ignore_errors=True)


def exit_now(code: int) -> None:
    """os._exit, after removing our directories (nobody else will if our parent is gone)."""
    cleanup()
    os._exit(code)


def watch_parent() -> None:
    """Exit when the parent goes away, even if it was SIGKILLed and could not stop us."""
    mode = os.fstat(0).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):  # Node's stdio 'pipe' is a socketpair

        def watch() -> None:
            try:
                # os.read, not sys.stdin: a daemon thread blocked inside a BufferedReader holds its lock
                # at interpreter exit and turns a clean exit into SIGABRT.
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            exit_now(EXIT_PARENT_GONE)

        threading.Thread(target=watch, name="stdin-watchdog", daemon=True).start()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            log.warning("PR_SET_PDEATHSIG unavailable; relying on the stdin watchdog")
        if os.getppid() == 1:
            exit_now(EXIT_ORPHANED)


def load_executor() -> tuple[dict[str, Handler | Op], dict[str, Any]]:
    """The executor's ops (one table, built from the op catalog), if that package exists. Its absence is fine
    (bridge-only sidecar)."""
    name = "dataflex_bridge.executor"
    try:
        if importlib.util.find_spec(name) is None:
            return {}, {"status": "absent", "error": None}
        handlers = importlib.import_module(name).Executor().handlers()
    except Exception as exc:  # a broken executor must not take the bridge down: hello reports it
        log.warning("could not load %s:\n%s", name, traceback.format_exc())
        return {}, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return dict(handlers), {"status": "loaded", "error": None}


def test_ops() -> dict[str, Handler | Op]:
    """Ops for tests and the benchmark (``--test-ops``); never enabled in a real run."""
    cache: dict[tuple[int, str], np.ndarray] = {}

    def call_back(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        answer = ctx.request(str(args["op"]), args.get("args") or {}, float(args.get("timeout_s", 30)))
        return {"answer": answer}

    def emit(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        count = int(args.get("count", 1))
        extra = {"array": args["array"]} if "array" in args else {}
        for i in range(count):
            ctx.emit(str(args.get("event", "progress")), {"i": i, **extra})
        return {"count": count}

    def fail(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        if "exit" in args:
            raise SystemExit(args["exit"])
        message = str(args.get("message", "failed on purpose"))
        if args.get("code"):
            raise OpError(str(args["code"]), message)
        raise ValueError(message)

    def exit_now(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        print(f"exiting with code {args.get('code', 3)} on request", file=sys.stderr, flush=True)
        os._exit(int(args.get("code", 3)))

    def sink(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"nbytes": sum(v.nbytes for v in args.values() if isinstance(v, np.ndarray))}

    def source(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        key = (int(args["n"]), str(args.get("dtype", "float32")))
        if key not in cache:
            cache[key] = np.random.default_rng(0).standard_normal(key[0]).astype(wire.DTYPES[key[1]])
        return {"array": cache[key]}

    return {
        "call_back": Op(call_back, "worker"),
        "emit": Op(emit, "worker"),
        "fail": Op(fail, "worker"),
        "echo_worker": Op(lambda a, c: a, "worker"),
        "exit": Op(exit_now, "inline"),
        "sink": Op(sink, "inline"),
        "source": Op(source, "inline"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank, world = ranks.init()
    where = "" if world == 1 else f" rank {rank}"
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format=f"dataflex_bridge{where} %(levelname)s %(message)s"
    )
    if not args.no_parent_watch:
        watch_parent()
    if rank != 0:
        return follow(args, rank, world)
    _cleanup_dirs.extend(args.cleanup_dir)

    endpoint = args.endpoint
    if endpoint is None:
        tmpdir = tempfile.mkdtemp(prefix="dfx-")  # mkdtemp makes it 0700: only we can connect
        _cleanup_dirs.append(tmpdir)
        endpoint = f"ipc://{tmpdir}/s.ipc"

    try:
        keys = remote.load_server_keys(args.keys) if args.keys else None
        remote.check_bind(endpoint, keys)
    except remote.KeysError as exc:
        print(f"error [config_error]: {exc}", file=sys.stderr, flush=True)
        cleanup()
        return 2

    handlers: dict[str, Handler | Op] = {}
    executor: dict[str, Any] = {"status": "disabled", "error": None}
    leader = None if world == 1 else ranks.Leader(world)
    if not args.no_executor:
        handlers, executor = load_executor()
        if leader is not None:
            handlers = dict(leader.wrap({k: v for k, v in handlers.items() if isinstance(v, Op)}))
    if args.test_ops:
        handlers.update(test_ops())

    auth = None if keys is None else remote.start_authenticator(zmq.Context.instance(), keys)
    extra: dict[str, Any] = {"client_timeout_s": args.client_timeout} if args.remote else {}
    server = (remote.RemoteServer if args.remote else Server)(
        endpoint,
        handlers,
        args.max_frame_bytes,
        protocol_version=args.test_protocol,
        info={"executor": executor},
        socket_setup=None if keys is None else remote.curve_server(keys),
        **extra,
    )
    bound = server.bind()
    # The handler only sets flags: stopping happens on the main loop, which polls with a timeout.
    signal.signal(signal.SIGTERM, lambda signum, frame: server.request_stop(force=True))
    server.start_device_probe()
    print(f"READY {os.getpid()} {bound}", flush=True)
    try:
        code = server.run()
        if leader is not None and server.busy is None:
            # An op still running holds a collective: the followers end when torchrun stops them.
            code = leader.stop() or code
    finally:
        if auth is not None:
            auth.stop()  # its sockets would otherwise hold the zmq context open at exit
        cleanup()
    sys.stdout.flush()
    sys.stderr.flush()
    if server.busy is not None or not server.device_probed:
        # An abandoned op (SIGTERM) or the device probe still runs: skip interpreter teardown, which
        # could run into that thread (e.g. half-imported torch) and turn a clean stop into a crash.
        os._exit(code)
    return code


def follow(args: argparse.Namespace, rank: int, world: int) -> int:
    """A rank other than 0: no socket, no READY; run what rank 0 broadcasts until it broadcasts the stop."""
    handlers = {} if args.no_executor else load_executor()[0]
    ops = {k: v for k, v in handlers.items() if isinstance(v, Op)}
    code = ranks.follow(ops, rank, world, on_op=lambda name: log.debug("op %s", name))
    sys.stdout.flush()
    sys.stderr.flush()
    if code != 0:
        os._exit(code)  # out of step: no teardown of a group other ranks may still be waiting in
    return code


if __name__ == "__main__":
    sys.exit(main())
