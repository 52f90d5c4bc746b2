"""Which raw row each training row came from, and a raw score column (load's `raw_rows`, a reorder's apply_at: raw).

Raw rows are the rows of each dataset of `dataset` as loaded from its files, after LLaMA-Factory's `max_samples`
truncation, concatenated in list order. LLaMA-Factory's format alignment drops every column it does not know (the
score column too), and preprocessing drops malformed rows, so neither survives into the training set. Without
patching LLaMA-Factory we recover both:

- the score column: each dataset is read again with `datasets.load_dataset` from the same dataset attributes
  (LF's `get_dataset_list`), truncated the same way; its length must equal LF's aligned dataset's;
- the row mapping: LF's own dataset processor runs on the aligned rows one example at a time inside our batched
  map, which records the raw index of every row it outputs. The result is then checked, row for row (input_ids),
  against the training set LF built: a processor whose output is not per example (packing) cannot pass silently.

The decision (the order) stays in TypeScript: it gets, per training row, its raw row index.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .row_trace import untraceable


@dataclass(frozen=True)
class RawRows:
    names: list[str]
    rows: list[int]  # raw rows of each dataset (after max_samples)
    index_of_row: np.ndarray  # int32: the raw row (into the concatenation) of every training row
    scores: np.ndarray | None  # float64: the score column, one value per raw row (None: no field asked for)

    def report(self) -> dict:
        return {"names": self.names, "rows": self.rows, "index_of_row": self.index_of_row, "scores": self.scores}


def check_config(data_args, names: list[str], dataset_attrs) -> None:
    """Refuse the settings under which training rows cannot be traced back to raw rows reproducibly."""
    bad = untraceable(data_args)
    if bad is not None:
        raise ConfigError(bad.refusal("raw-row scores"))
    for name, attr in zip(names, dataset_attrs):
        if attr.num_samples is not None:
            raise ConfigError(f"num_samples: dataset '{name}' sets num_samples, which LLaMA-Factory "
                              "draws unseeded (the raw rows would differ run to run); remove it (max_samples works)")
        if attr.load_from in ("ms_hub", "om_hub"):
            raise ConfigError(f"dataset: '{name}' loads from {attr.load_from}, which raw-row scores "
                              "do not read; use a local file or the Hugging Face hub")


def _load_raw(attr, model_args, data_args):
    """The dataset's rows as LLaMA-Factory's loader reads them, before its format alignment drops columns."""
    from datasets import Dataset, load_dataset
    from llamafactory.data.data_utils import read_cloud_json
    from llamafactory.extras.constants import FILEEXT2TYPE

    if attr.load_from == "cloud_file":
        dataset = Dataset.from_list(read_cloud_json(attr.dataset_name), split=attr.split)
    else:
        kwargs: dict = {"split": attr.split, "cache_dir": model_args.cache_dir, "token": model_args.hf_hub_token}
        if attr.load_from == "file":
            local = os.path.join(data_args.dataset_dir, attr.dataset_name)
            # os.listdir's order, as LLaMA-Factory lists a folder: the same files in the same order.
            files = [os.path.join(local, f) for f in os.listdir(local)] if os.path.isdir(local) else [local]
            kwargs.update(path=FILEEXT2TYPE.get(os.path.splitext(files[0])[-1][1:]), data_files=files)
        else:  # hf_hub, script
            path = attr.dataset_name
            if attr.load_from == "script":
                path = os.path.join(data_args.dataset_dir, path)
            kwargs.update(path=path, name=attr.subset, data_dir=attr.folder)
        dataset = load_dataset(**kwargs)
    if data_args.max_samples is not None:
        dataset = dataset.select(range(min(data_args.max_samples, len(dataset))))
    return dataset


def score_column(dataset, name: str, field: str) -> np.ndarray:
    """The column `field` as floats; a missing column or a non-number names the dataset, the row and the field."""
    if field not in dataset.column_names:
        raise ConfigError(f"score_params.score_field: dataset '{name}' has no field '{field}' "
                          f"(it has: {', '.join(dataset.column_names)})")
    out = np.empty(len(dataset), dtype=np.float64)
    for i, v in enumerate(dataset[field]):
        try:
            if isinstance(v, bool) or v is None:
                raise ValueError
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"score_params.score_field: dataset '{name}' row {i}: '{field}' is not a number "
                              f"({v!r})") from None
        if not math.isfinite(out[i]):
            raise ConfigError(f"score_params.score_field: dataset '{name}' row {i}: '{field}' is {v!r} "
                              "(scores must be finite)")
    return out


def surviving_rows(aligned, preprocess, batch_size: int, num_proc: int | None) -> tuple[list[int], list[list[int]]]:
    """The index (into `aligned`) and the input_ids of every row `preprocess` outputs, called on one example at a
    time, in output order."""
    columns = aligned.column_names

    def trace(batch: dict, indices: list[int]) -> dict:
        out: dict = {"raw_index": [], "input_ids": []}
        for j, index in enumerate(indices):
            rows = preprocess({key: [batch[key][j]] for key in columns}).get("input_ids", [])
            out["raw_index"] += [index] * len(rows)
            out["input_ids"] += list(rows)
        return out

    traced = aligned.map(trace, batched=True, with_indices=True, batch_size=batch_size, remove_columns=columns,
                         num_proc=num_proc, load_from_cache_file=False, desc="Tracing raw rows")
    return list(traced["raw_index"]), list(traced["input_ids"])


def load(template, model_args, data_args, training_args, stage: str, tokenizer_module: dict, train_dataset,
         field: str | None) -> RawRows:
    """The raw rows of the run's training set (built by LF before this): per-dataset counts, the mapping, the scores."""
    from llamafactory.data.loader import _get_dataset_processor, _get_merged_dataset
    from llamafactory.data.parser import get_dataset_list

    names = list(data_args.dataset or [])
    attrs = get_dataset_list(names, data_args.dataset_dir)
    aligned = _get_merged_dataset(names, model_args, data_args, training_args, stage, return_dict=True)
    processor = _get_dataset_processor(data_args, stage, template, tokenizer_module["tokenizer"],
                                       tokenizer_module.get("processor"))
    rows, scores, index_of_row, input_ids = [], [], [], []
    for name, attr in zip(names, attrs):
        if field is not None:
            raw = _load_raw(attr, model_args, data_args)
            if len(raw) != len(aligned[name]):
                raise ConfigError(f"dataset: '{name}' read {len(raw)} raw rows but LLaMA-Factory loaded "
                                  f"{len(aligned[name])}; its raw scores cannot be aligned")
            scores.append(score_column(raw, name, field))
        survivors, ids = surviving_rows(aligned[name], processor.preprocess_dataset,
                                        data_args.preprocessing_batch_size, data_args.preprocessing_num_workers)
        offset = sum(rows)
        index_of_row.extend(offset + i for i in survivors)
        input_ids.extend(ids)
        rows.append(len(aligned[name]))
    if len(index_of_row) != len(train_dataset) or input_ids != list(train_dataset["input_ids"]):
        raise ConfigError("dataset: the training rows could not be traced to raw rows one by one (LLaMA-Factory's "
                          "preprocessing of this stage does not map examples to rows); raw-row scores need it")
    return RawRows(
        names=names,
        rows=rows,
        index_of_row=np.asarray(index_of_row, dtype=np.int32),
        scores=None if field is None else np.concatenate(scores),
    )
