"""Per-sample loss weights through the Trainer's own `compute_loss_func` extension point.

Weighted loss of a micro-batch = sum_b w_b * sum_t CE_bt / num_items_in_batch: with every w_b = 1 it equals
Hugging Face's token-level loss up to float rounding, so weighting changes only what the weights say.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .errors import ConfigError

IGNORE_INDEX = -100


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position CE of logits (B, K, V) against target (B, K), zero where target is IGNORE_INDEX, and that
    validity mask. Computed in float32."""
    target = target.to(logits.device)
    valid = target != IGNORE_INDEX
    ce = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), target.masked_fill(~valid, 0).reshape(-1), reduction="none"
    ).view(target.shape)
    return ce * valid, valid


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE of next-token prediction, (B, T-1), and its validity mask. Computed in float32."""
    return masked_cross_entropy(logits[:, :-1, :], labels[:, 1:])


@contextlib.contextmanager
def active_weights(run, weights: torch.Tensor):
    trainer = run.trainer
    if trainer.compute_loss_func is not None:
        raise ConfigError("per-sample weights cannot be combined with a custom LLaMA-Factory loss (dft/eaft/asft)")
    per_token_norm = trainer.model_accepts_loss_kwargs

    def weighted_loss(outputs, labels, num_items_in_batch=None):
        ce, valid = token_losses(outputs["logits"], labels)
        w = weights.to(ce.device)
        total = (ce.sum(dim=1) * w).sum()
        if per_token_norm and num_items_in_batch is not None:
            denom = num_items_in_batch.to(ce.device) if isinstance(num_items_in_batch, torch.Tensor) else num_items_in_batch
        else:
            denom = valid.sum().clamp(min=1)
        return total / denom

    trainer.compute_loss_func = weighted_loss
    try:
        yield
    finally:
        trainer.compute_loss_func = None
