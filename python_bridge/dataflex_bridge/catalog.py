"""The op catalog on the Python side: ops.schema.json, exported from TypeScript's src/bridge/ops.ts.

TypeScript declares every executor op once (args with their defaults, result, timeout, direction); this module
reads the export so the sidecar can validate each request before its handler runs. Handlers read the args as sent:
TypeScript applied the defaults, so every defaulted arg is present. Regenerate the file with `npm run ops:schema`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .schema_check import SchemaViolation, check

SCHEMA_PATH = Path(__file__).with_name("ops.schema.json")


class BadArgs(Exception):
    """A request whose args do not match the catalog; answered with code ``bad_args``."""

    code = "bad_args"

    def __init__(self, op: str, violation: SchemaViolation) -> None:
        super().__init__(f"invalid args for {op!r}: {violation}")
        self.op = op
        self.path = violation.path


@cache
def ops() -> Mapping[str, Mapping[str, Any]]:
    """Every catalog op by name: direction, summary, timeout_ms, args and result schemas."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["ops"]


def sidecar_ops() -> list[str]:
    """The ops TypeScript calls on the sidecar (those the executor must answer)."""
    return sorted(name for name, spec in ops().items() if spec["direction"] == "to_sidecar")


def args_check(name: str) -> Callable[[dict[str, Any]], None]:
    """A function raising BadArgs when args do not match op `name`'s schema."""
    schema = ops()[name]["args"]

    def check_args(args: dict[str, Any]) -> None:
        try:
            check(args, schema)
        except SchemaViolation as exc:
            raise BadArgs(name, exc) from None

    return check_args


def with_defaults(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` with the catalog's defaults filled in, as TypeScript's zod parse sends them.

    For Python callers that skip TypeScript (tests, benchmarks); the sidecar itself never fills anything.
    """
    props = ops()[name]["args"].get("properties", {})
    filled = {key: spec["default"] for key, spec in props.items() if "default" in spec and key not in args}
    return {**filled, **args}
