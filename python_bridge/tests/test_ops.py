"""The op catalog on the Python side: the committed schema, its validator, and the executor's handler table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from dataflex_bridge import catalog, schema_check, wire
from dataflex_bridge.schema_check import SchemaViolation, check


def subschemas(schema: Mapping[str, Any], where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema nested in `schema` (itself included), with where it sits."""
    yield where, schema
    for key, sub in schema.get("properties", {}).items():
        yield from subschemas(sub, f"{where}.{key}")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), Mapping):
            yield from subschemas(schema[key], f"{where}[{key}]")
    for i, sub in enumerate(schema.get("anyOf", ())):
        yield from subschemas(sub, f"{where}|{i}")


def all_schemas() -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, spec in catalog.ops().items():
        for part in ("args", "result"):
            yield from subschemas(spec[part], f"{name}.{part}")


def test_the_committed_schema_uses_only_keywords_the_validator_knows() -> None:
    for where, schema in all_schemas():
        unknown = set(schema) - schema_check.KEYWORDS
        assert not unknown, f"{where} uses {sorted(unknown)}: teach dataflex_bridge/schema_check.py, or the export"
        if schema_check.NDARRAY in schema:
            spec = schema[schema_check.NDARRAY]
            assert spec["dtype"] in wire.DTYPES and isinstance(spec["ndim"], int), where


def test_the_schema_speaks_this_protocol_and_declares_every_op_fully() -> None:
    import json

    doc = json.loads(catalog.SCHEMA_PATH.read_text(encoding="utf-8"))
    assert doc["protocol"] == wire.PROTOCOL_VERSION
    for name, spec in catalog.ops().items():
        assert spec["direction"] in ("to_sidecar", "to_typescript"), name
        assert spec["timeout_ms"] > 0, name
        assert spec["args"]["type"] == "object" and spec["args"]["additionalProperties"] is False, name


def test_the_executor_answers_exactly_the_catalog_ops_and_checks_their_args() -> None:
    pytest.importorskip("torch")
    from dataflex_bridge.executor import Executor

    table = Executor().handlers()
    assert sorted(table) == catalog.sidecar_ops()
    assert "gradients" in table and "load" in table
    # request_stop must get through while train_steps holds the worker.
    assert {name for name, op in table.items() if op.mode != "worker"} == {"request_stop"}
    assert table["request_stop"].mode == "inline"
    for name, op in table.items():
        assert op.check is not None, name
        with pytest.raises(catalog.BadArgs):
            op.check({"no_such_arg": 1})


def test_an_executor_op_missing_on_either_side_fails_the_table(monkeypatch) -> None:
    pytest.importorskip("torch")
    from dataflex_bridge.executor import Executor

    served = catalog.sidecar_ops()
    monkeypatch.setattr(catalog, "sidecar_ops", lambda: [*served, "brand_new"])
    with pytest.raises(RuntimeError, match=r"only in the catalog: \['brand_new'\]"):
        Executor().handlers()
    monkeypatch.setattr(catalog, "sidecar_ops", lambda: [n for n in served if n != "finish"])
    with pytest.raises(RuntimeError, match=r"only here: \['finish'\]"):
        Executor().handlers()


def test_bad_args_name_the_op_and_the_arg() -> None:
    ok = catalog.with_defaults("gradients", {"indices": np.arange(3, dtype=np.int32)})
    catalog.args_check("gradients")(ok)
    cases = {
        "proj_dim": ({**ok, "proj_dim": "8"}, "expected integer, got str '8'"),
        "indices": ({**ok, "indices": np.arange(3)}, "expected a 1-D int32 array, got a 1-D int64 array"),
        "precondition": ({k: v for k, v in ok.items() if k != "precondition"}, "required but missing"),
        "rows": ({**ok, "rows": 4}, "unknown key"),
        "projector": ({**ok, "projector": "fast"}, "expected one of 'dense', 'sparse'"),
        "chunk_size": ({**ok, "chunk_size": 0}, "must be >= 1, got 0"),
    }
    for arg, (args, message) in cases.items():
        with pytest.raises(catalog.BadArgs) as info:
            catalog.args_check("gradients")(args)
        assert info.value.code == "bad_args" and info.value.path == arg
        assert str(info.value).startswith(f"invalid args for 'gradients': {arg}: ") and message in str(info.value)


def test_with_defaults_fills_only_what_is_missing() -> None:
    got = catalog.with_defaults("end_pass", {"save": True})
    assert got == {"log": False, "evaluate": False, "save": True}
    assert "weights" not in catalog.with_defaults("begin_pass", {})  # optional, no default


# --------------------------------------------------------------------------------------------- validator


@pytest.mark.parametrize(
    ("schema", "good", "bad", "message"),
    [
        ({"type": "integer"}, 3, 3.5, "expected integer, got float"),
        ({"type": "integer"}, 0, True, "got bool"),
        ({"type": "number"}, 2.5, float("nan"), "expected number"),
        ({"type": ["number", "null"]}, None, "x", "expected number or null"),
        ({"type": "string", "minLength": 1}, "a", "", "at least 1"),
        ({"type": "string", "maxLength": 2}, "ab", "abc", "at most 2"),
        ({"type": "string", "pattern": "^eval:[\\s\\S]{1,}$"}, "eval:arith", "eval:", "must match the pattern"),
        ({"type": "string", "pattern": "b+"}, "abbc", "ac", "must match the pattern 'b+'"),  # unanchored: a search
        ({"const": "q"}, "q", "r", "expected 'q'"),
        ({"type": "number", "exclusiveMinimum": 0}, 0.1, 0, "must be > 0"),
        ({"type": "number", "exclusiveMaximum": 1}, 0.9, 1, "must be < 1"),
        ({"type": "integer", "maximum": 5}, 5, 6, "must be <= 5"),
        ({"type": "array", "items": {"type": "string"}}, ["a"], ["a", 1], "[1]: expected string"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, None, 1, "matches none of"),
        ({"x-ndarray": {"dtype": "float32", "ndim": 2}}, np.zeros((2, 3), np.float32), np.zeros(3, np.float32),
         "expected a 2-D float32 array, got a 1-D float32 array"),
        ({"x-ndarray": {"dtype": "uint8", "ndim": 1}}, np.zeros(2, np.uint8), [0, 1], "got list [0, 1]"),
        ({"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": {"type": "integer"}},
         {"a": 1}, {"a": "x"}, "a: expected integer"),
        ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "boolean"}}}}},
         {"a": {"b": True}}, {"a": {"b": 1}}, "a.b: expected boolean"),
    ],
)
def test_the_validator(schema: dict, good: Any, bad: Any, message: str) -> None:
    check(good, {**schema, "description": "annotations are ignored", "default": None})
    with pytest.raises(SchemaViolation) as info:
        check(bad, schema)
    assert message in str(info.value)


def test_the_validator_refuses_keywords_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="format"):
        check("a", {"type": "string", "format": "uri"})
    with pytest.raises(ValueError, match="not a valid regular expression"):
        check("a", {"type": "string", "pattern": "(a"})


def test_named_eval_splits_pass_the_split_arg_and_others_are_refused() -> None:
    ok = catalog.with_defaults("losses", {"indices": np.arange(2, dtype=np.int32)})
    for split in ("train", "eval", "eval:arith_eval", "eval:a:b"):
        catalog.args_check("losses")({**ok, "split": split})
    for split in ("eval:", "evaluation", "x:eval:y", ""):
        with pytest.raises(catalog.BadArgs) as info:
            catalog.args_check("losses")({**ok, "split": split})
        assert info.value.path == "split"


def test_the_validator_bounds_its_depth() -> None:
    schema: dict = {"type": "array"}
    value: list = []
    for _ in range(schema_check.MAX_DEPTH + 5):
        schema = {"type": "array", "items": schema}
        value = [value]
    with pytest.raises(SchemaViolation, match="nested deeper than"):
        check(value, schema)
