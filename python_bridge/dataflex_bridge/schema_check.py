"""A validator for exactly the JSON Schema subset the op catalog export produces (ops.schema.json).

No jsonschema package is needed: the catalog's schemas use a handful of keywords, listed in KEYWORDS, and a test
(tests/test_ops.py) fails when the committed schema uses one this module does not know. Values are what the wire
decodes: dicts with string keys, lists, str, bool, None, int, float, and numpy arrays for the ``x-ndarray`` marker.
Recursion follows the schema, and is bounded by MAX_DEPTH anyway.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import wire

NDARRAY = "x-ndarray"
MAX_DEPTH = 32

# Keywords that constrain a value, and annotations that do not.
CHECKED = frozenset({
    "type", "properties", "required", "additionalProperties", "propertyNames", "enum", "const", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "items", "anyOf", NDARRAY,
})
ANNOTATIONS = frozenset({"default", "description"})
KEYWORDS = CHECKED | ANNOTATIONS


class SchemaViolation(Exception):
    """A value that does not match its schema; ``path`` names where (``"indices"``, ``"config.seed"``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(value)'}: {message}")
        self.path = path


def check(value: Any, schema: Mapping[str, Any], path: str = "") -> None:
    """Raise SchemaViolation for the first mismatch, or a ValueError for a keyword outside KEYWORDS."""
    _check(value, schema, path, 0)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D {value.dtype} array"
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    raise ValueError(f"schema type {name!r} is not supported")


def _check(value: Any, schema: Mapping[str, Any], path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SchemaViolation(path, f"nested deeper than {MAX_DEPTH} levels")
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise ValueError(f"schema at {path or '(root)'} uses keywords this validator does not know: {sorted(unknown)}")

    if NDARRAY in schema:
        spec = schema[NDARRAY]
        want = wire.DTYPES[spec["dtype"]]
        if not isinstance(value, np.ndarray) or value.dtype != want or value.ndim != spec["ndim"]:
            raise SchemaViolation(path, f"expected a {spec['ndim']}-D {spec['dtype']} array, got {_describe(value)}")

    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check(value, option, path, depth + 1)
                break
            except SchemaViolation as exc:
                errors.append(str(exc))
        else:
            raise SchemaViolation(path, "matches none of: " + " | ".join(errors))

    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            raise SchemaViolation(path, f"expected {' or '.join(types)}, got {_describe(value)}")

    if "const" in schema and value != schema["const"]:
        raise SchemaViolation(path, f"expected {schema['const']!r}, got {_describe(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolation(path, f"expected one of {', '.join(map(repr, schema['enum']))}, got {_describe(value)}")

    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaViolation(path, f"must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaViolation(path, f"must be <= {schema['maximum']}, got {value}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise SchemaViolation(path, f"must be > {schema['exclusiveMinimum']}, got {value}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            raise SchemaViolation(path, f"must be < {schema['exclusiveMaximum']}, got {value}")

    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaViolation(path, f"must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaViolation(path, f"must have at most {schema['maxLength']} characters")
        # JSON Schema's `pattern` is unanchored: the string matches if the regex matches anywhere in it.
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            raise SchemaViolation(path, f"must match the pattern {schema['pattern']!r}, got {_describe(value)}")

    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", depth + 1)

    if isinstance(value, dict):
        _check_object(value, schema, path, depth)


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    try:
        return re.compile(source)
    except re.error as exc:
        raise ValueError(f"schema pattern {source!r} is not a valid regular expression: {exc}") from None


def _check_object(value: dict, schema: Mapping[str, Any], path: str, depth: int) -> None:
    props: Mapping[str, Any] = schema.get("properties", {})
    for key in schema.get("required", ()):
        if key not in value:
            raise SchemaViolation(_join(path, key), "required but missing")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        where = _join(path, key)
        if "propertyNames" in schema:
            _check(key, schema["propertyNames"], where, depth + 1)
        if key in props:
            _check(item, props[key], where, depth + 1)
        elif extra is False:
            known = ", ".join(props) or "none"
            raise SchemaViolation(where, f"unknown key (expected: {known})")
        elif isinstance(extra, Mapping):
            _check(item, extra, where, depth + 1)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
