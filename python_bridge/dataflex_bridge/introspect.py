"""One-off introspection of the installed LLaMA-Factory, for the TypeScript config loader.

    python -m dataflex_bridge.introspect version     -> {"python": ..., "llamafactory": ...}   (fast, no import)
    python -m dataflex_bridge.introspect arg-names   -> every key `llamafactory-cli train` accepts

Both print one JSON object on stdout. The TypeScript side caches `arg-names` per (python, llamafactory
version), so the slow import below runs once per environment.
"""

from __future__ import annotations

import json
import sys


def _version() -> dict:
    from importlib import metadata

    try:
        lf_version = metadata.version("llamafactory")
    except metadata.PackageNotFoundError:
        lf_version = None
    return {"python": sys.version.split()[0], "executable": sys.executable, "llamafactory": lf_version}


def _ensure_torchaudio() -> None:
    # LLaMA-Factory imports torchaudio unconditionally (data/mm_plugin.py) but text training never uses it;
    # a CPU venv may lack it, and argument names do not depend on it.
    import importlib.util
    import types

    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")


def _arg_names() -> dict:
    import dataclasses

    import contextlib

    _ensure_torchaudio()
    # Anything the import prints must not corrupt the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        # The parser module's own list is exactly what `get_train_args` hands to HfArgumentParser.
        from llamafactory.hparams import parser

    classes: dict[str, list[str]] = {}
    for cls in parser._TRAIN_ARGS:
        # HfArgumentParser.parse_dict accepts the init fields only.
        classes[cls.__name__] = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    names = sorted({name for fields in classes.values() for name in fields})
    return {**_version(), "classes": classes, "names": names}


def main(argv: list[str]) -> int:
    commands = {"version": _version, "arg-names": _arg_names}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m dataflex_bridge.introspect {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    json.dump(commands[argv[0]](), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
