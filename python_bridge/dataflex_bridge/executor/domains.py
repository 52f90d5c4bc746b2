"""A mix run's data: every dataset of `dataset` is a domain, preprocessed on its own, concatenated in list order.

Built with LLaMA-Factory's own loader functions (`_get_merged_dataset`, `_get_preprocessed_dataset`), one call per
dataset, so each source is tokenised exactly once and rows come out as `llamafactory-cli` would make them. The
training set is the domains' preprocessed rows end to end (domain 0 first), `domain_of_row` tells whose each row is;
the mixer (TypeScript) decides which rows each step trains on. The configured `eval_dataset` is built as
LLaMA-Factory builds it; each of `eval_sets` is preprocessed as an eval set of its own, the split `eval:<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError
from .row_trace import untraceable

EVAL_SPLIT_PREFIX = "eval:"


@dataclass(frozen=True)
class Domains:
    """The training set's domains, in the order of `dataset`."""

    names: list[str]
    rows: list[int]  # after preprocessing: the rows each domain has in the training set
    raw_rows: list[int]  # as loaded (after max_samples / num_samples), before preprocessing dropped invalid rows
    domain_of_row: np.ndarray  # int32, one entry per training row

    def report(self) -> dict:
        return {"names": self.names, "rows": self.rows, "raw_rows": self.raw_rows, "domain_of_row": self.domain_of_row}


@dataclass(frozen=True)
class MixData:
    dataset_module: dict[str, Any]  # what get_dataset returns: train_dataset, eval_dataset (when configured)
    domains: Domains
    eval_splits: dict[str, Any]  # eval set name -> its preprocessed rows


def check_config(data_args) -> None:
    """Refuse the settings under which per-domain rows would be wrong or silently unmixed."""
    bad = untraceable(data_args, per_dataset_processing=True)
    if bad is not None:
        hint = ", or as the mixer's eval sets (mixer_eval_dataset)" if bad.key == "val_size" else ""
        raise ConfigError(bad.refusal("domain mixing") + hint)
    names = data_args.dataset or []
    if len(set(names)) != len(names):
        raise ConfigError(f"dataset: each domain must be listed once, got {names}")


@dataclass(frozen=True)
class DatasetRows:
    """How many training rows each dataset of `dataset` gave, when they are consecutive ranges in list order."""

    names: list[str]
    rows: list[int] | None  # None: not known, for the reason given
    unavailable: str | None

    def report(self) -> dict:
        return {"names": self.names, "rows": self.rows, "unavailable": self.unavailable}


def dataset_rows(model_args, data_args, training_args, stage: str, num_train: int) -> DatasetRows:
    """The training rows of each dataset of a run loaded by LLaMA-Factory's own get_dataset (a select run), found
    without touching that path: LLaMA-Factory concatenates the datasets in list order, so each dataset's aligned
    row count is its range, provided nothing reorders or merges rows and preprocessing dropped none."""
    names = list(data_args.dataset or [])
    bad = untraceable(data_args)
    if bad is not None:
        return DatasetRows(names=names, rows=None, unavailable=f"{bad.key}: {bad.why}")
    if len(names) == 1:
        return DatasetRows(names=names, rows=[num_train], unavailable=None)
    from llamafactory.data.loader import _get_merged_dataset

    # Read again from the datasets cache that get_dataset just filled (no tokenisation).
    aligned = _get_merged_dataset(names, model_args, data_args, training_args, stage, return_dict=True)
    rows = [len(aligned[n]) for n in names]
    if sum(rows) != num_train:
        return DatasetRows(names=names, rows=None, unavailable=f"preprocessing dropped {sum(rows) - num_train} of "
                           f"{sum(rows)} rows, of datasets not recorded")
    return DatasetRows(names=names, rows=rows, unavailable=None)


def load(template, model_args, data_args, training_args, stage: str, tokenizer_module: dict,
         eval_sets: list[str]) -> MixData:
    """The training set by domain, the configured eval set, and the named eval sets: LLaMA-Factory's rows."""
    from datasets import DatasetDict, concatenate_datasets
    from llamafactory.data.data_utils import get_dataset_module, split_dataset
    from llamafactory.data.loader import _get_merged_dataset, _get_preprocessed_dataset

    check_config(data_args)
    if len(set(eval_sets)) != len(eval_sets):
        raise ConfigError(f"domains.eval_sets: each eval set must be listed once, got {eval_sets}")
    names = list(data_args.dataset or [])
    if not names:
        raise ConfigError("dataset: a mix run needs at least one training dataset (one per domain)")

    def merged(dataset_names, key: str, return_dict: bool = False):
        try:
            return _get_merged_dataset(dataset_names, model_args, data_args, training_args, stage, return_dict)
        except (ValueError, OSError, KeyError) as exc:
            raise ConfigError(f"{key}: {exc}") from exc

    def preprocessed(dataset, is_eval: bool, what: str):
        try:
            out = _get_preprocessed_dataset(dataset, data_args, training_args, stage, template, is_eval=is_eval,
                                            **tokenizer_module)
        except RuntimeError as exc:  # LF's "Cannot find valid samples" for an empty result
            raise ConfigError(f"{what}: no rows left after preprocessing ({exc})") from exc
        if len(out) == 0:
            raise ConfigError(f"{what}: no rows left after preprocessing (check its data and `cutoff_len`)")
        return out

    # The same phases and process guards as llamafactory.data.loader.get_dataset.
    shared_fs = data_args.data_shared_file_system
    with training_args.main_process_first(desc="load dataset", local=not shared_fs):
        raw = merged(names, "dataset", return_dict=True)
        eval_raw = merged(data_args.eval_dataset, "eval_dataset", return_dict=data_args.eval_on_each_dataset)
        named_raw = {name: merged([name], "domains.eval_sets") for name in eval_sets}

    with training_args.main_process_first(desc="pre-process dataset", local=not shared_fs):
        parts = [preprocessed(raw[name], False, f"dataset '{name}'") for name in names]
        _, eval_dict = split_dataset(None, eval_raw, data_args, seed=training_args.seed)
        for key in eval_dict:
            eval_dict[key] = preprocessed(eval_dict[key], True, "eval_dataset")
        eval_splits = {name: preprocessed(ds, True, f"domains.eval_sets '{name}'") for name, ds in named_raw.items()}

    train = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    rows = [len(p) for p in parts]
    domains = Domains(
        names=names,
        rows=rows,
        raw_rows=[len(raw[name]) for name in names],
        domain_of_row=np.repeat(np.arange(len(names), dtype=np.int32), rows),
    )
    return MixData(get_dataset_module(DatasetDict({"train": train, **eval_dict})), domains, eval_splits)
