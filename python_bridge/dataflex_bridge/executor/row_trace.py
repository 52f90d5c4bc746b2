"""The data settings under which LLaMA-Factory's training rows are not the datasets' rows concatenated in list order.

Domain mixing and raw-row scores refuse them (a ConfigError naming the key); a select run's rows per dataset
(`domains.dataset_rows`) reports the reason instead. One list, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Untraceable:
    key: str  # the config key
    why: str  # what the setting does to the rows
    fix: str  # what the user can do instead

    def refusal(self, use: str) -> str:
        """The message for a use that cannot run under the setting, e.g. `use="domain mixing"`."""
        return f"{self.key}: not supported with {use} ({self.why}); {self.fix}"


def untraceable(data_args, *, per_dataset_processing: bool = False) -> Untraceable | None:
    """The first setting that reorders, merges or hides the training rows, or None.

    `per_dataset_processing`: the caller preprocesses each dataset on its own (domain mixing), so packing merges rows
    of one dataset only and is harmless."""
    if data_args.tokenized_path is not None:
        return Untraceable("tokenized_path", "a saved tokenized set does not record its datasets or raw rows",
                           "remove it")
    if data_args.streaming:
        return Untraceable("streaming", "the rows are not counted", "remove it")
    if data_args.val_size > 1e-6:
        return Untraceable("val_size", "the split shuffles the training rows", "give held-out data as eval_dataset")
    if data_args.mix_strategy != "concat":
        return Untraceable("mix_strategy", f"'{data_args.mix_strategy}' interleaves the datasets",
                           "remove it or set it to concat")
    if data_args.packing and not per_dataset_processing:
        return Untraceable("packing", "a packed row holds rows of several datasets",
                           "set packing: false (it defaults to true for stage: pt)")
    return None
