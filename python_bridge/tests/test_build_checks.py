"""build.py's refusals of unusable data, on hand-made datasets (no model load): bad data named, no label token left."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("llamafactory")
datasets = pytest.importorskip("datasets")

from dataflex_bridge.executor.build import _check_labels, _dataset_error, check_engines  # noqa: E402
from dataflex_bridge.executor.errors import ConfigError  # noqa: E402

DATA_ARGS = SimpleNamespace(dataset=["a", "b"], eval_dataset=None, dataset_dir="data", cutoff_len=1)


def test_no_label_token_in_any_row_is_refused_naming_cutoff_len():
    rows = datasets.Dataset.from_dict({"labels": [[-100, -100], [-100], [-100, -100, -100]]})
    with pytest.raises(ConfigError) as err:
        _check_labels(rows, DATA_ARGS)
    msg = str(err.value)
    assert msg.startswith("cutoff_len: ")
    assert "none of the 3 training rows of 'a', 'b'" in msg
    assert "cutoff_len 1" in msg and "larger cutoff_len" in msg


def test_one_label_token_anywhere_is_enough():
    # past the first batch of 1024, so the scan goes on until it finds one
    labels = [[-100]] * 1500 + [[-100, 7]]
    _check_labels(datasets.Dataset.from_dict({"labels": labels}), DATA_ARGS)
    _check_labels(datasets.Dataset.from_dict({"input_ids": [[1, 2]]}), DATA_ARGS)  # no labels column (pt)


def test_loading_failures_name_the_datasets():
    from datasets.exceptions import DatasetGenerationError

    try:
        try:
            raise ValueError("JSON parse error: Missing a comma")
        except ValueError as cause:
            raise DatasetGenerationError("An error occurred while generating the dataset") from cause
    except DatasetGenerationError as exc:
        bad = _dataset_error(exc, DATA_ARGS)
    assert bad is not None and "cannot read the data file of 'a', 'b'" in str(bad) and "Missing a comma" in str(bad)

    dropped = _dataset_error(RuntimeError("Cannot find valid samples, check `data/README.md`"), DATA_ARGS)
    assert dropped is not None and "every row of 'a', 'b'" in str(dropped)
    assert "has no column 'output'" in str(_dataset_error(KeyError("output"), DATA_ARGS))
    assert _dataset_error(RuntimeError("CUDA out of memory"), DATA_ARGS) is None  # not about the data: re-raised


@pytest.mark.parametrize(
    ("config", "gpu", "installed", "says"),
    [
        ({"fsdp": "full_shard auto_wrap"}, False, True, "fsdp: FSDP runs on GPUs"),
        ({"deepspeed": "ds_z3.json"}, False, True, "deepspeed: DeepSpeed runs on GPUs"),
        ({"deepspeed": "ds_z3.json"}, True, False, "deepspeed: DeepSpeed is not installed"),
        ({"deepspeed": "/nonexistent/ds_z3.json"}, True, True, "deepspeed: no DeepSpeed config file at"),
        ({"deepspeed": "ds.json", "fsdp": "full_shard"}, True, True, "deepspeed and fsdp: choose one"),
    ],
)
def test_engines_that_cannot_run_here_are_refused_naming_the_key(config, gpu, installed, says):
    with pytest.raises(ConfigError) as err:
        check_engines(config, has_gpu=gpu, has_deepspeed=installed)
    assert str(err.value).startswith(says)


def test_engines_that_can_run_pass_through(tmp_path):
    ds = tmp_path / "ds_z2.json"
    ds.write_text('{"zero_optimization": {"stage": 2}}')
    check_engines({"deepspeed": str(ds)}, has_gpu=True, has_deepspeed=True)
    check_engines({"fsdp": "full_shard auto_wrap"}, has_gpu=True)
    check_engines({}, has_gpu=False)  # neither: nothing to check
