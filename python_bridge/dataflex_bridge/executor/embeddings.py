"""Pooled hidden states of samples (cluster_less's clustering features, ADAPT's φ(x)).

Batched, no grad, eval mode, every RNG restored. The model is either the training model as it is now, or a
separate local causal LM, fed the run's own token ids (so it must share the run's vocabulary). Text only: the
forward sees input_ids and attention_mask.

DataFlex differences: ADAPT computes φ in train mode (dropout on); we always use eval mode. cluster_less passes
labels too, computing a loss it discards; we call the decoder without the LM head when the model exposes one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .errors import ConfigError, StateError
from .frozen import frozen_model
from .model_ops import eval_mode, masked_batches, preserved_rng, rows_of, sample_lengths
from .weights import IGNORE_INDEX

log = logging.getLogger("dataflex_bridge.executor.embeddings")

POOLINGS = ("mask_mean", "position_weighted", "last_token", "label_mean")


@dataclass(frozen=True)
class EmbeddingArgs:
    # Hidden-state index, Python style: 0 is the embedding output, -1 the last layer (after the final norm).
    layer: int = -1
    pooling: Literal["mask_mean", "position_weighted", "last_token", "label_mean"] = "mask_mean"
    normalize: bool = False
    # Path of a separate local HF causal LM; None: the training model as it is now.
    model: str | None = None
    batch_size: int = 8


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, labels: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, H] hidden states and a [B, T] attention mask -> [B, H] float32. `labels` ([B, T]) for label_mean."""
    hidden = hidden.float()
    m = mask.to(hidden.dtype)
    if pooling == "label_mean":
        # The response tokens (labels != IGNORE_INDEX); a row without any falls back to its attention mask
        # (joint_update_aware's mean_pool).
        if labels is None:
            raise StateError("embeddings: pooling label_mean needs the rows' labels")
        resp = (labels.to(m.device) != IGNORE_INDEX).to(hidden.dtype) * m
        m = torch.where(resp.sum(1, keepdim=True) > 0, resp, m)
        pooling = "mask_mean"
    if pooling == "mask_mean":
        # Over prompt and response tokens alike (cluster_less).
        return (hidden * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)
    if pooling == "position_weighted":
        # ADAPT: w_t ∝ t·mask_t for t = 1..T, so later tokens count more.
        w = m * torch.arange(1, m.shape[1] + 1, device=m.device, dtype=m.dtype)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        return (hidden * w[..., None]).sum(1)
    if pooling == "last_token":
        # The last position whose mask is 1 (any padding side).
        pos = torch.arange(m.shape[1], device=m.device)
        last = (mask.long() * pos).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise StateError(f"embeddings: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def decoder_body(model):
    """The transformer body of a causal LM (hidden states without the LM head), or the model itself."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(lm, getattr(lm, "base_model_prefix", ""), None)
    return body if isinstance(body, torch.nn.Module) and body is not lm else model


def hidden_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
    out = decoder_body(model)(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                          use_cache=False)
    states = out.hidden_states
    if not -len(states) <= layer < len(states):
        raise StateError(f"embeddings: layer {layer} out of range for {len(states)} hidden states "
                         f"(valid: {-len(states)}..{len(states) - 1})")
    return states[layer]


def _vocab_check(run, path: str, model) -> None:
    """The run's token ids must mean the same tokens to the other model."""
    ours = run.tokenizer
    rows = model.get_input_embeddings().num_embeddings
    if len(ours) > rows:
        raise ConfigError(
            f"embeddings: model '{path}' has {rows} token embeddings but the run's tokenizer has {len(ours)} "
            "tokens; the embedding model must share the training model's vocabulary"
        )
    from transformers import AutoTokenizer

    try:
        theirs = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        log.warning("embeddings: no tokenizer in %s (%s); only the vocabulary size was checked", path, exc)
        return
    vocab = theirs.get_vocab()
    differ = [t for t, i in ours.get_vocab().items() if vocab.get(t) != i]
    if differ:
        raise ConfigError(
            f"embeddings: model '{path}' has an incompatible vocabulary: {len(differ)} of the run's "
            f"{len(ours)} tokens map to other ids (e.g. {differ[:3]!r}); use a model with the same tokenizer"
        )


def embedding_model(run, path: str):
    """A separate causal LM to embed with, loaded once per run (same tokenizer as the run's)."""
    return frozen_model(run, path, run.caches.embed_models, "embeddings: model", adapters=False, check=lambda m: _vocab_check(run, path, m))


def sample_embeddings(run, split: str, indices: np.ndarray, args: EmbeddingArgs) -> np.ndarray:
    """Pooled hidden states [len(indices), H] in float32, in the order of `indices`."""
    if args.pooling not in POOLINGS:
        raise StateError(f"embeddings: pooling must be one of {', '.join(POOLINGS)}, got {args.pooling!r}")
    if args.batch_size < 1:
        raise StateError("embeddings: batch_size must be >= 1")
    dataset = rows_of(run, split, indices, "embeddings")
    model = run.trainer.model if args.model is None else embedding_model(run, args.model)
    # Length-sorted batches pad less; with the attention mask, a row does not depend on its batch.
    order = np.argsort(sample_lengths(run, split)[indices], kind="stable")
    out: torch.Tensor | None = None
    with preserved_rng(), eval_mode(model):
        for rows, input_ids, mask, forward_mask, labels in masked_batches(run, dataset, indices, order, args.batch_size, "embeddings"):
            states = hidden_states(model, input_ids, forward_mask, args.layer)
            pooled = pool(states, mask, args.pooling, labels)
            if out is None:
                out = torch.empty(indices.size, pooled.shape[1], dtype=torch.float32, device=pooled.device)
            out[torch.as_tensor(rows, device=pooled.device)] = pooled
    if out is None:
        hidden = (model.get_base_model() if hasattr(model, "get_base_model") else model).config.hidden_size
        return np.zeros((0, hidden), dtype=np.float32)
    if args.normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out.cpu().numpy()
