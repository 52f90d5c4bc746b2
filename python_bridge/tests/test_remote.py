"""Remote sidecar: key folder loading and its permission checks, the bind rule, CURVE with the ZAP handler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zmq

from dataflex_bridge import remote
from dataflex_bridge.remote import KeysError, check_bind, load_server_keys

BRIDGE_DIR = Path(__file__).resolve().parents[1]


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def make_keys(folder: Path) -> dict[str, bytes]:
    """The layout `dataflex keys` writes, with fresh key pairs."""
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    spub, ssec = zmq.curve_keypair()
    cpub, csec = zmq.curve_keypair()
    for name, key in (("server.public", spub), ("server.secret", ssec), ("client.public", cpub), ("client.secret", csec)):
        write_private(folder / name, key.decode() + "\n")
    write_private(folder / "authorized_clients", f"# the default client\n\n{cpub.decode()} laptop\n")
    return {"spub": spub, "ssec": ssec, "cpub": cpub, "csec": csec}


def test_loads_a_private_key_folder(tmp_path: Path) -> None:
    k = make_keys(tmp_path / "keys")
    keys = load_server_keys(tmp_path / "keys")
    assert keys.public == k["spub"]
    assert keys.secret == k["ssec"]
    assert keys.authorized == frozenset({k["cpub"]})


@pytest.mark.parametrize("name", ["server.secret", "server.public", "authorized_clients"])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_refuses_key_files_others_can_read(tmp_path: Path, name: str, mode: int) -> None:
    make_keys(tmp_path / "keys")
    (tmp_path / "keys" / name).chmod(mode)
    with pytest.raises(KeysError, match=rf"{name} is accessible by group or others \(mode {mode:04o}\); run `chmod 600"):
        load_server_keys(tmp_path / "keys")


def test_refuses_a_folder_others_can_enter(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    (tmp_path / "keys").chmod(0o755)
    with pytest.raises(KeysError, match=r"mode 0755\); run `chmod 700"):
        load_server_keys(tmp_path / "keys")


def test_missing_folder_and_file_name_the_command(tmp_path: Path) -> None:
    with pytest.raises(KeysError, match="dataflex keys"):
        load_server_keys(tmp_path / "nope")
    make_keys(tmp_path / "keys")
    (tmp_path / "keys" / "server.secret").unlink()
    with pytest.raises(KeysError, match=r"server.secret does not exist"):
        load_server_keys(tmp_path / "keys")


def test_malformed_and_mismatched_keys(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    write_private(tmp_path / "keys" / "server.public", "short\n")
    with pytest.raises(KeysError, match="expected a 40-character z85 key, got 5"):
        load_server_keys(tmp_path / "keys")
    other, _ = zmq.curve_keypair()
    write_private(tmp_path / "keys" / "server.public", other.decode())
    with pytest.raises(KeysError, match="not the public half"):
        load_server_keys(tmp_path / "keys")


def test_keys_may_contain_the_comment_character(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    key = "0" * 21 + "#" + "0" * 18  # z85 has '#': only "# " (with the space) starts a comment
    write_private(tmp_path / "keys" / "authorized_clients", f"# note\n{key}\n")
    assert load_server_keys(tmp_path / "keys").authorized == frozenset({key.encode()})


def test_bad_and_empty_authorised_list(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    write_private(tmp_path / "keys" / "authorized_clients", "# nobody\n\n")
    with pytest.raises(KeysError, match="lists no client public key"):
        load_server_keys(tmp_path / "keys")
    write_private(tmp_path / "keys" / "authorized_clients", "x" * 39 + "~\n")
    with pytest.raises(KeysError, match="authorized_clients line 1: not a valid z85 key"):
        load_server_keys(tmp_path / "keys")


def test_plain_tcp_is_loopback_only(tmp_path: Path) -> None:
    for ok in ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "tcp://localhost:5555", "tcp://[::1]:5555", "ipc:///tmp/x"):
        check_bind(ok, None)
    for bad in ("tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.1.2.3:5555", "tcp://eth0:5555"):
        with pytest.raises(KeysError, match="without keys.*--keys <dir>"):
            check_bind(bad, None)
    check_bind("tcp://0.0.0.0:5555", load_server_keys_for(tmp_path))


def load_server_keys_for(tmp_path: Path) -> remote.ServerKeys:
    make_keys(tmp_path / "keys")
    return load_server_keys(tmp_path / "keys")


# ---------------------------------------------------------------------------------- a real sidecar over CURVE


def start_sidecar(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(BRIDGE_DIR), "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "dataflex_bridge", "--no-executor", "--no-parent-watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    line = p.stdout.readline().split()
    if not line or line[0] != "READY":
        p.kill()
        raise AssertionError(f"no READY line: {line!r} {p.communicate()[1]}")
    return p, line[2]


def ask(endpoint: str, server_key: bytes, pub: bytes, sec: bytes, timeout_ms: int) -> dict | None:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_key, pub, sec
    s.connect(endpoint)
    s.send(msgpack.packb({"v": 1, "kind": "req", "id": 1, "op": "echo", "args": {"x": 1}}))
    try:
        if not s.poll(timeout_ms):
            return None
        return msgpack.unpackb(s.recv())
    finally:
        s.close()


def test_curve_accepts_only_authorised_clients(tmp_path: Path) -> None:
    k = make_keys(tmp_path / "keys")
    p, endpoint = start_sidecar("--endpoint", "tcp://127.0.0.1:*", "--keys", str(tmp_path / "keys"))
    try:
        reply = ask(endpoint, k["spub"], k["cpub"], k["csec"], 10_000)
        assert reply is not None and reply["ok"] and reply["result"] == {"x": 1}
        stranger_pub, stranger_sec = zmq.curve_keypair()
        assert ask(endpoint, k["spub"], stranger_pub, stranger_sec, 1_000) is None
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert "refused a client whose public key is not in authorized_clients" in err
    assert p.returncode == 0


def test_sidecar_refuses_an_open_bind_without_keys() -> None:
    env = {**os.environ, "PYTHONPATH": str(BRIDGE_DIR)}
    r = subprocess.run(
        [sys.executable, "-m", "dataflex_bridge", "--no-executor", "--no-parent-watch", "--endpoint", "tcp://0.0.0.0:0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert r.returncode == 2
    assert "refusing to bind tcp://0.0.0.0:0 without keys" in r.stderr
    assert "READY" not in r.stdout


def test_remote_sidecar_serves_one_client_and_stops_when_it_falls_silent() -> None:
    p, endpoint = start_sidecar("--endpoint", "tcp://127.0.0.1:*", "--remote", "--client-timeout", "1")
    ctx = zmq.Context.instance()
    socks = []
    try:
        for _ in range(2):
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.connect(endpoint)
            socks.append(s)
        hello = {"v": 1, "kind": "req", "id": 1, "op": "hello", "args": {"protocol": 1, "client": "test"}}
        socks[0].send(msgpack.packb(hello))
        assert socks[0].poll(60_000)
        assert msgpack.unpackb(socks[0].recv())["ok"]
        socks[1].send(msgpack.packb(hello))
        assert socks[1].poll(60_000)
        reply = msgpack.unpackb(socks[1].recv())
        assert not reply["ok"] and reply["error"]["code"] == "busy"
        # The owner now says nothing: the sidecar ends its run on its own.
        assert p.wait(timeout=15) == 0
    finally:
        for s in socks:
            s.close()
        if p.poll() is None:
            p.kill()
        _, err = p.communicate(timeout=10)
    assert "the client has been silent for 1 s" in err
