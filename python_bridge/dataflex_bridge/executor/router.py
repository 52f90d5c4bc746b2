"""Expert loads of a mixture-of-experts model (the `router_loads` op; the dynamic_moe mixer reads them).

For each row and MoE layer: how many of the row's non-padding tokens have each expert among their top-k router
choices, k being the model's own `num_experts_per_tok`. The choices are recomputed from the router logits the
model returns with `output_router_logits=True` (one [batch·seq, experts] tensor per MoE layer, as transformers'
Qwen2-MoE / Mixtral / Qwen3-MoE give them) exactly as their sparse blocks route: top-k of the float32 softmax.
Batched in length order, eval mode, no grad, every RNG restored; LoRA layers take part as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .embeddings import decoder_body
from .errors import ConfigError, StateError
from .model_ops import eval_mode, masked_batches, preserved_rng, rows_of, sample_lengths


@dataclass(frozen=True)
class RouterLoads:
    loads: np.ndarray  # [n, layers·experts] float32, layer-major
    layers: int
    experts: int
    top_k: int


def _config(model):
    return (model.get_base_model() if hasattr(model, "get_base_model") else model).config


def _not_moe(model, why: str) -> ConfigError:
    model_type = getattr(_config(model), "model_type", type(model).__name__)
    return ConfigError(
        f"router_loads needs a mixture-of-experts model that returns router logits (model type '{model_type}': {why})"
    )


def top_k_of(model) -> int:
    k = getattr(_config(model), "num_experts_per_tok", None)
    if not isinstance(k, int) or k < 1:
        raise _not_moe(model, "its config has no num_experts_per_tok")
    return k


def router_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The router logits of every MoE layer, each [batch·seq, experts], from the decoder body (no LM head)."""
    out = decoder_body(model)(input_ids=input_ids, attention_mask=attention_mask, output_router_logits=True,
                          use_cache=False)
    logits = getattr(out, "router_logits", None)
    if not logits:
        raise _not_moe(model, "its forward returned no router_logits")
    return tuple(logits)


def token_loads(logits: tuple[torch.Tensor, ...], mask: torch.Tensor, top_k: int) -> torch.Tensor:
    """[B, layers, experts]: per row, the tokens of `mask` (B × T, 1 = counted) whose top-k experts include each."""
    rows, width = mask.shape
    per_layer = []
    for layer, lg in enumerate(logits):
        if lg.dim() != 2 or lg.shape[0] != rows * width:
            raise StateError(f"router_loads: layer {layer}'s router logits have shape {tuple(lg.shape)}, expected "
                             f"[{rows * width}, experts] for a {rows}×{width} batch")
        experts = lg.shape[1]
        chosen = F.softmax(lg, dim=-1, dtype=torch.float).topk(top_k, dim=-1).indices  # as the sparse block routes
        hits = F.one_hot(chosen, experts).sum(dim=1).view(rows, width, experts)
        per_layer.append((hits * mask.to(hits.device, hits.dtype)[..., None]).sum(dim=1))
    return torch.stack(per_layer, dim=1)


def sample_router_loads(run, split: str, indices: np.ndarray, batch_size: int) -> RouterLoads:
    """Expert loads of the rows `indices` of `split`, in that order."""
    if batch_size < 1:
        raise StateError("router_loads: batch_size must be >= 1")
    dataset = rows_of(run, split, indices, "router_loads")
    model = run.trainer.model
    top_k = top_k_of(model)
    order = np.argsort(sample_lengths(run, split)[indices], kind="stable")
    with preserved_rng(), eval_mode(model):
        if indices.size == 0:
            # Nothing to count, but the shape (layers, experts) still comes from one token through the model.
            one = torch.zeros(1, 1, dtype=torch.long, device=next(model.parameters()).device)
            probe = token_loads(router_logits(model, one, torch.ones_like(one)), torch.zeros_like(one), top_k)
            _, layers, experts = probe.shape
            return RouterLoads(np.zeros((0, layers * experts), dtype=np.float32), layers, experts, top_k)
        out: torch.Tensor | None = None
        for rows, input_ids, mask, forward_mask, _ in masked_batches(run, dataset, indices, order, batch_size, "router_loads"):
            loads = token_loads(router_logits(model, input_ids, forward_mask), mask, top_k)
            if out is None:
                out = loads.new_zeros(indices.size, *loads.shape[1:])
            out[torch.as_tensor(rows, device=loads.device)] = loads
    n, layers, experts = out.shape  # type: ignore[union-attr]  # indices is not empty
    return RouterLoads(out.reshape(n, layers * experts).float().cpu().numpy(), layers, experts, top_k)
