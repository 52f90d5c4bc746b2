"""Scoring rows that begin with the same tokens: the shared prefix runs once, and each batch continues from it.

Rows rendered by a chat template start alike: LLaMA-Factory's `qwen` template puts a default system prompt before
every user turn (most of a short demo row; bench/results/model-ops.md). Under causal attention those positions' keys
and values are the same for every row, so a read-only forward can compute them once (one row, `use_cache`) and run
each batch on its remaining tokens against a copy of that cache. The labels' positions always stay outside the
prefix, so every loss term is computed as before; results differ by float rounding only.

Applies to decoder-only models that take `past_key_values` and a 4-D attention mask (transformers' custom-mask
input). The first use in a run is checked against the plain forward on two rows of that batch; a model where the two
disagree (sliding windows, extra position inputs, ...) or that rejects the inputs is scored the plain way from then
on, with a log line.
"""

from __future__ import annotations

import copy
import logging

import torch

from .weights import IGNORE_INDEX

log = logging.getLogger("dataflex_bridge.executor.shared_prefix")

# Shorter shared prefixes are not worth a cache copy per batch.
MIN_PREFIX = 8


def shared_prefix_length(input_ids: torch.Tensor, labels: torch.Tensor) -> int:
    """Leading positions where every row has the same token and no row needs the logits (position p predicts
    labels[p + 1]); each row keeps at least one position after it."""
    width = input_ids.shape[1]
    same = (input_ids == input_ids[:1]).all(dim=0)
    lead = int(same.int().cumprod(dim=0).sum())
    labelled = labels != IGNORE_INDEX
    none = torch.full_like(labelled[:, 0], width, dtype=torch.long)
    first = torch.where(labelled.any(dim=1), labelled.int().argmax(dim=1), none)
    return max(0, min(lead, int(first.min()) - 1, width - 1))


def causal_mask_after(prefix: int, width: int, rows: int, dtype: torch.dtype, device) -> torch.Tensor:
    """[rows, 1, width, prefix + width] additive mask: query prefix + q sees keys 0 … prefix + q."""
    q = torch.arange(prefix, prefix + width, device=device)[:, None]
    k = torch.arange(prefix + width, device=device)[None, :]
    mask = torch.zeros(width, prefix + width, dtype=dtype, device=device)
    mask.masked_fill_(k > q, torch.finfo(dtype).min)
    return mask[None, None].expand(rows, 1, width, prefix + width)


class PrefixScorer:
    """Per op: the last prefix's cache, reused while consecutive batches share exactly that prefix."""

    def __init__(self, run, model, forward):
        self.run, self.forward = run, forward
        self.dtype = model.get_input_embeddings().weight.dtype
        self._key: tuple[int, ...] | None = None
        self._cache = None

    @property
    def enabled(self) -> bool:
        return self.run.caches.prefix_check is not False

    def inputs(self, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[dict, int] | None:
        """(forward kwargs for the batch's tokens after the shared prefix, the prefix length), or None to score
        the batch whole."""
        if not self.enabled or input_ids.shape[0] < 2:  # one row shares nothing
            return None
        c = shared_prefix_length(input_ids, labels)
        if c < MIN_PREFIX:
            return None
        key = tuple(input_ids[0, :c].tolist())
        if key != self._key:
            out = self.forward(input_ids=input_ids[:1, :c], attention_mask=torch.ones_like(input_ids[:1, :c]),
                               use_cache=True, logits_to_keep=1)
            self._key, self._cache = key, out.past_key_values
        past = copy.deepcopy(self._cache)
        rows = input_ids.shape[0]
        past.batch_repeat_interleave(rows)
        width = input_ids.shape[1] - c
        mask = causal_mask_after(c, width, rows, self.dtype, input_ids.device)
        return {"input_ids": input_ids[:, c:], "attention_mask": mask, "past_key_values": past, "use_cache": True}, c

    def disable(self, why: str) -> None:
        self.run.caches.prefix_check = False
        log.warning("losses: scoring without the shared-prefix cache from now on (%s)", why)

    @property
    def verified(self) -> bool:
        return self.run.caches.prefix_check is True

    def check(self, got: torch.Tensor, want: torch.Tensor) -> bool:
        """First use in the run: the prefix path must match the plain forward on the same rows."""
        tol = 1e-4 if self.dtype == torch.float32 else 3e-2
        ok = bool(torch.allclose(got.float(), want.float(), rtol=tol, atol=tol))
        if ok:
            self.run.caches.prefix_check = True
        else:
            self.disable(f"it differs from the plain forward by {float((got - want).abs().max()):.3g} on this model")
        return ok
