"""Every Python fact `dataflex doctor` needs, gathered in one process so the check stays quick.

    python -m dataflex_bridge.doctor MODULE=DIST ...   e.g. torch=torch zmq=pyzmq

Prints one JSON object on stdout: the interpreter, each module's import result and version (the
module's ``__version__``, else its distribution's metadata), and torch's CUDA view. Standard
library only at the top: it must run, and say what is missing, in an interpreter that has nothing installed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from importlib import metadata
from typing import Any


def _version(module: Any, dist: str) -> str | None:
    # The imported code's own version first: it can differ from the installed metadata (PYTHONPATH, editables).
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _module(name: str, dist: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - any failure (even SystemExit from a package's checks) is the fact
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()}
    return {"ok": True, "version": _version(module, dist), "file": getattr(module, "__file__", None)}


def _cuda() -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        available = bool(torch.cuda.is_available())
        count = int(torch.cuda.device_count()) if available else 0
        names = [str(torch.cuda.get_device_name(i)) for i in range(count)]
    except Exception as exc:  # noqa: BLE001 - a broken driver is reported, not raised
        return {"available": False, "count": 0, "devices": [], "cuda": torch.version.cuda, "error": str(exc)}
    return {"available": available, "count": count, "devices": names, "cuda": torch.version.cuda, "error": None}


def gather(wanted: list[tuple[str, str]]) -> dict[str, Any]:
    # Anything an import prints must not corrupt the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        modules = {name: _module(name, dist) for name, dist in wanted}
        cuda = _cuda()
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "modules": modules,
        "cuda": cuda,
    }


def main(argv: list[str]) -> int:
    pairs = [arg.partition("=") for arg in argv]
    if not pairs or any(not name or not dist for name, _, dist in pairs):
        print("usage: python -m dataflex_bridge.doctor MODULE=DIST ...", file=sys.stderr)
        return 2
    json.dump(gather([(name, dist) for name, _, dist in pairs]), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
