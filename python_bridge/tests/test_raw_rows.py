"""load's `raw_rows`: every training row traced to its raw row, a raw score column read, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

from dataflex_bridge import catalog  # noqa: E402
from dataflex_bridge.executor import Executor  # noqa: E402
from dataflex_bridge.executor.build import build_run  # noqa: E402
from dataflex_bridge.executor.errors import ConfigError  # noqa: E402
from dataflex_bridge.executor.raw_rows import score_column, surviving_rows  # noqa: E402
from dataflex_bridge.schema_check import check  # noqa: E402

from tiny_run import TINY, run_op, tiny_config  # noqa: E402

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="models/tiny-qwen2 missing (run `npm run setup`)")


def write_dataset_dir(root: Path, datasets: dict[str, list[dict]], extra: dict | None = None) -> str:
    info = {}
    for name, rows in datasets.items():
        (root / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")
        info[name] = {"file_name": f"{name}.json", "formatting": "alpaca", **(extra or {})}
    (root / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return str(root)


def row(i: int, score, valid: bool = True) -> dict:
    """An alpaca row with a score; an invalid one has a null output, which LLaMA-Factory's processor drops."""
    return {"instruction": f"What is {i} + 1?", "input": "", "output": str(i + 1) if valid else None, "score": score}


# ------------------------------------------------------------------------------------------- pure helpers


def test_surviving_rows_records_the_index_of_every_output_row_in_order() -> None:
    from datasets import Dataset

    # A processor that drops odd values and makes two rows of a multiple of 4 (one example at a time or not).
    def preprocess(batch: dict) -> dict:
        ids = []
        for v in batch["v"]:
            if v % 2 == 1:
                continue
            ids += [[v], [v, v]] if v % 4 == 0 else [[v]]
        return {"input_ids": ids}

    values = [4, 1, 2, 3, 8, 6, 7]
    index, ids = surviving_rows(Dataset.from_dict({"v": values}), preprocess, batch_size=3, num_proc=None)
    expected_index, expected_ids = [], []
    for i, v in enumerate(values):
        if v % 2 == 0:
            copies = 2 if v % 4 == 0 else 1
            expected_index += [i] * copies
            expected_ids += [[v], [v, v]][:copies]
    assert index == expected_index
    assert ids == expected_ids


def test_score_column_names_the_dataset_row_and_field() -> None:
    from datasets import Dataset

    assert score_column(Dataset.from_dict({"s": [1, 2.5, 3]}), "d", "s").tolist() == [1.0, 2.5, 3.0]
    assert score_column(Dataset.from_dict({"s": ["1", " 2.5"]}), "d", "s").tolist() == [1.0, 2.5]
    with pytest.raises(ConfigError, match=r"score_params\.score_field: dataset 'd' has no field 'score' \(it has: s\)"):
        score_column(Dataset.from_dict({"s": [1]}), "d", "score")
    with pytest.raises(ConfigError, match=r"dataset 'd' row 1: 's' is not a number \('x'\)"):
        score_column(Dataset.from_dict({"s": ["1", "x"]}), "d", "s")
    with pytest.raises(ConfigError, match=r"dataset 'd' row 0: 's' is not a number \(None\)"):
        score_column(Dataset.from_dict({"s": [None, 1.0]}), "d", "s")


# ------------------------------------------------------------------------------------------- a real load


def test_load_traces_training_rows_to_raw_rows_across_datasets(tmp_path) -> None:
    a = [row(i, float(10 - i), valid=i != 2) for i in range(6)]
    b = [row(100 + i, 0.5 * i) for i in range(5)]
    data = write_dataset_dir(tmp_path, {"a": a, "b": b})
    executor = Executor()
    config = tiny_config(str(tmp_path / "out"), dataset_dir=data, dataset="a,b", max_samples=4, eval_dataset=None)
    result = run_op(executor, "load", {"config": config, "raw_rows": {"score_field": "score"}})
    check(result, catalog.ops()["load"]["result"])
    raw = result["raw_rows"]
    # max_samples keeps 4 of a (row 2 dropped by preprocessing) and 4 of b.
    assert raw["names"] == ["a", "b"] and raw["rows"] == [4, 4]
    assert raw["index_of_row"].tolist() == [0, 1, 3, 4, 5, 6, 7]
    assert raw["scores"].tolist() == [r["score"] for r in a[:4]] + [r["score"] for r in b[:4]]
    assert result["num_train"] == 7
    # The traced rows are the training rows: row k's prompt holds the number of its raw row.
    tokenizer = executor.run.tokenizer
    rows = a[:4] + b[:4]
    for k, raw_index in enumerate(raw["index_of_row"].tolist()):
        text = tokenizer.decode(executor.run.train_dataset[k]["input_ids"])
        assert rows[raw_index]["instruction"] in text


def test_load_without_a_field_traces_only(tmp_path) -> None:
    data = write_dataset_dir(tmp_path, {"a": [row(i, None, valid=i != 0) for i in range(3)]})
    result = run_op(Executor(), "load", {
        "config": tiny_config(str(tmp_path / "out"), dataset_dir=data, dataset="a", eval_dataset=None),
        "raw_rows": {"score_field": None},
    })
    assert result["raw_rows"]["scores"] is None
    assert result["raw_rows"]["index_of_row"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("extra", "info", "says"),
    [
        ({}, {"num_samples": 3}, r"^num_samples: dataset 'a' sets num_samples"),
        ({"packing": True}, {}, r"^packing: not supported with raw-row scores"),
        ({"streaming": True, "max_samples": None, "max_steps": 2}, {}, r"^streaming: not supported"),
        ({"mix_strategy": "interleave_under"}, {}, r"^mix_strategy: not supported with raw-row scores \('interleave_under' interleaves"),
        ({"tokenized_path": "tok"}, {}, r"^tokenized_path: not supported"),
        ({"val_size": 0.2}, {}, r"^val_size: not supported"),
    ],
)
def test_settings_that_lose_the_raw_rows_are_refused_naming_the_key(tmp_path, extra, info, says) -> None:
    data = write_dataset_dir(tmp_path, {"a": [row(i, i) for i in range(4)]}, info)
    config = tiny_config(str(tmp_path / "out"), dataset_dir=data, dataset="a", eval_dataset=None, **extra)
    if "tokenized_path" in extra:
        config["tokenized_path"] = str(tmp_path / "tok")
    with pytest.raises(ConfigError, match=says):
        build_run(config, raw_rows={"score_field": "score"})


def test_a_dataset_without_the_field_is_refused_by_name(tmp_path) -> None:
    data = write_dataset_dir(tmp_path, {"a": [row(i, i) for i in range(3)],
                                        "b": [{k: v for k, v in row(i, i).items() if k != "score"} for i in range(3)]})
    config = tiny_config(str(tmp_path / "out"), dataset_dir=data, dataset="a,b", eval_dataset=None)
    # The first dataset without the field is named.
    with pytest.raises(ConfigError, match=r"dataset 'a' has no field 'difficulty'"):
        build_run(config, raw_rows={"score_field": "difficulty"})
    with pytest.raises(ConfigError, match=r"dataset 'b' has no field 'score'"):
        build_run(config, raw_rows={"score_field": "score"})
