"""A sidecar on another host (docs/remote.md): CURVE keys, the bind check, and one run at a time.

Key folder layout (written by ``dataflex keys <dir>``; every key is a 40-character z85 string on one line):

  server.public, server.secret   the sidecar's key pair
  client.public, client.secret   the TypeScript client's key pair
  authorized_clients             public keys the sidecar accepts: one per line, optionally followed by a space
                                 and a note; empty lines and lines starting with ``# `` are ignored (z85 keys
                                 may contain ``#`` but never a space)

The sidecar reads ``server.*`` and ``authorized_clients``. Every file it reads, and the folder, must be private
to the user (no group or other permission bits): a secret key that others can read is no secret.
"""

from __future__ import annotations

import ipaddress
import math
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from .server import CallContext, OpError, Server

log = logging.getLogger("dataflex_bridge")

SERVER_PUBLIC = "server.public"
SERVER_SECRET = "server.secret"
AUTHORIZED = "authorized_clients"


class KeysError(Exception):
    """The key folder is missing, malformed, or readable by others; the message says which file and the fix."""

    code = "config_error"


@dataclass(frozen=True)
class ServerKeys:
    public: bytes  # z85
    secret: bytes  # z85
    authorized: frozenset[bytes]  # z85 client public keys


def check_private(path: Path) -> None:
    """Refuse a file or folder that is not ours or that group/others may access."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeysError(f"{path} does not exist (create the keys with `dataflex keys <dir>`)") from None
    # root (e.g. in the Docker image, with the folder mounted from the host user) can read anything anyway
    if os.getuid() != 0 and st.st_uid != os.getuid():
        raise KeysError(f"{path} belongs to another user (uid {st.st_uid}); keys must be owned by the user running dataflex")
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        raise KeysError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run `chmod {want:o} {path}`"
        )


def parse_key(text: str, where: str) -> bytes:
    """A z85 CURVE key: 40 characters decoding to 32 bytes."""
    key = text.strip()
    if len(key) != 40:
        raise KeysError(f"{where}: expected a 40-character z85 key, got {len(key)} characters")
    try:
        if len(z85.decode(key)) != 32:
            raise ValueError
    except Exception:  # pyzmq raises ValueError, KeyError or struct.error by the kind of damage
        raise KeysError(f"{where}: not a valid z85 key") from None
    return key.encode("ascii")


def read_private(path: Path) -> str:
    check_private(path)
    return path.read_text(encoding="ascii", errors="replace")


def load_server_keys(folder: str | os.PathLike[str]) -> ServerKeys:
    d = Path(folder)
    if not d.is_dir():
        raise KeysError(f"{d} is not a folder of keys (create one with `dataflex keys {d}`)")
    check_private(d)
    public = parse_key(read_private(d / SERVER_PUBLIC), str(d / SERVER_PUBLIC))
    secret = parse_key(read_private(d / SERVER_SECRET), str(d / SERVER_SECRET))
    if zmq.curve_public(secret) != public:
        raise KeysError(f"{d / SERVER_PUBLIC} is not the public half of {d / SERVER_SECRET}")
    authorized = set()
    path = d / AUTHORIZED
    for n, line in enumerate(read_private(path).splitlines(), 1):
        words = line.split()
        if words and not line.startswith("# "):
            authorized.add(parse_key(words[0], f"{path} line {n}"))
    if not authorized:
        raise KeysError(f"{path} lists no client public key: no client could connect")
    return ServerKeys(public, secret, frozenset(authorized))


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or a host name: may face the network


def check_bind(endpoint: str, keys: ServerKeys | None) -> None:
    """tcp without keys is loopback only: anyone who can reach the port could run code in the sidecar."""
    if keys is not None or not endpoint.startswith("tcp://"):
        return
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0]
    if not is_loopback_host(host):
        raise KeysError(
            f"refusing to bind {endpoint} without keys: plain tcp is for loopback only (127.0.0.1). "
            "Pass --keys <dir> (create it with `dataflex keys <dir>`) to encrypt and authenticate the connection"
        )


class _Allow:
    """pyzmq's ZAP credentials provider: accept exactly the authorised client keys."""

    def __init__(self, authorized: frozenset[bytes]) -> None:
        self.authorized = authorized

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.authorized
        if not ok:
            log.warning("refused a client whose public key is not in %s: %s", AUTHORIZED, key.decode("ascii"))
        return ok


def start_authenticator(ctx: zmq.Context[Any], keys: ServerKeys) -> ThreadAuthenticator:
    """The ZAP handler: without one, a CURVE server would accept any client key."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback("*", _Allow(keys.authorized))
    return auth


def curve_server(keys: ServerKeys) -> Callable[[zmq.Socket[Any]], None]:
    """Socket setup for Server(socket_setup=...): CURVE server with our key pair."""

    def setup(sock: zmq.Socket[Any]) -> None:
        sock.curve_secretkey = keys.secret
        sock.curve_publickey = keys.public
        sock.curve_server = True

    return setup


class RemoteServer(Server):
    """A sidecar that clients on other hosts drive: one run (one client) at a time.

    The first client's ``hello`` makes it the owner; another client's ``hello`` is answered ``busy``. If the owner
    falls silent (its heartbeat pings stop: the client died or the network went) for ``client_timeout_s``, the
    sidecar stops, so ``dataflex serve`` can start a fresh one for the next run.
    """

    def __init__(self, *args: Any, client_timeout_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner: bytes | None = None
        self._owner_seen = time.monotonic()
        self._client_timeout_s = client_timeout_s
        self._owner_lock = threading.Lock()
        threading.Thread(target=self._watch_owner, name="owner-watch", daemon=True).start()

    def _on_message(self, frames: list[Any]) -> None:
        if frames and self._owner is not None and frames[0].bytes == self._owner:
            self._owner_seen = time.monotonic()
        super()._on_message(frames)

    def _op_hello(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        peer = ctx._peer
        with self._owner_lock:
            if self._owner is not None and self._owner != peer:
                raise OpError("busy", "this sidecar is serving another run; try again when it has finished")
            self._owner = peer
            # hello waits for the device probe and the client's heartbeat starts after it: no silence clock yet
            self._owner_seen = math.inf
        try:
            result = super()._op_hello(args, ctx)
        except BaseException:
            with self._owner_lock:
                self._owner = None  # e.g. a protocol mismatch: the next client may try
            raise
        self._owner_seen = time.monotonic()
        return result

    def _watch_owner(self) -> None:
        while True:
            time.sleep(min(1.0, self._client_timeout_s / 4))
            if self._owner is not None and time.monotonic() - self._owner_seen > self._client_timeout_s:
                log.warning("the client has been silent for %g s: ending its run", self._client_timeout_s)
                self.request_stop(force=True)
                return
