"""A frozen reference model and the excess loss over it (DoReMi; begin_pass's `reference_model`).

Per trained sample: Σ over its label tokens t of max(ℓ_t − ℓ_ref,t, 0), ℓ the next-token CE of the training forward
itself (weights.training_loss keeps its per-token values) and ℓ_ref that of the reference on the same inputs, in a
no-grad forward of its own (eval mode: no dropout, no RNG draw, so training is untouched). The reference is a local
model directory, or a LoRA adapter directory (adapter_config.json) applied to the run's base model and merged.
"""

from __future__ import annotations

import torch

from .errors import ConfigError
from .frozen import frozen_model
from .model_ops import label_token_losses


def load_reference(run, path: str):
    """The reference model of `path` (a model or a LoRA adapter directory), loaded once per run."""

    def same_vocabulary(model) -> None:
        rows = model.get_input_embeddings().num_embeddings
        if rows < len(run.tokenizer):
            raise ConfigError(
                f"begin_pass: reference_model '{path}' has {rows} token embeddings but the run's tokenizer has "
                f"{len(run.tokenizer)} tokens; the reference must share the training model's vocabulary"
            )

    return frozen_model(run, path, run.caches.reference_models, "begin_pass: reference_model", adapters=True, check=same_vocabulary)


def reference_token_losses(reference, trainer, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """The reference's per-token CE on a training micro-batch, (B, K) at `label_positions(labels)`, zero off the labels."""
    batch = trainer._prepare_inputs({k: v for k, v in inputs.items() if k != "labels"})
    with torch.no_grad():
        ce, _ = label_token_losses(reference, {**batch, "use_cache": False}, labels)
    return ce


def excess_sums(token_ce: torch.Tensor | None, reference_ce: torch.Tensor, rows: int) -> torch.Tensor:
    """Σ_t max(ℓ_t − ℓ_ref,t, 0) per row, float32 (B,); NaN rows when the training forward gave no logits."""
    if token_ce is None:
        return torch.full((rows,), float("nan"), device=reference_ce.device)
    return (token_ce.float() - reference_ce.to(token_ce.device).float()).clamp(min=0).sum(dim=1)
