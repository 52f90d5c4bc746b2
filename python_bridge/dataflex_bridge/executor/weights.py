"""The training loss of one micro-batch: each sample's CE sum from the training forward, and the loss reductions.

* Per-sample CE sums and label counts come from the forward that trains, never an extra one: a forward hook reads
  the logits (detached, no grad) when Hugging Face computes the loss, or the reduction below computes them itself.
* Reductions (TypeScript chooses one per pass; docs/algorithms.md#loss-reductions), with w_b the per-sample
  weights, CE_bt the next-token cross-entropy of sample b's label token t, and n_b its label-token count:
    token_mean:  Σ_b w_b Σ_t CE_bt / N, N = num_items_in_batch (the label tokens of the whole gradient-accumulation
                 group) when the model takes loss kwargs and the trainer counted them, else the micro-batch's label
                 tokens times the micro-batches of the group (Hugging Face divides the micro-batch mean by them).
                 Weights of 1: HF's loss.
    sample_mean: Σ_b w_b (Σ_t CE_bt / max(1, n_b)) / B_group, B_group = samples in the whole group, so the scale
                 does not depend on the accumulation. Weights of 1: the group's mean per-sample loss.
  They run through the Trainer's own `compute_loss_func` extension point; nothing is patched. Without weights,
  `token_mean` leaves Hugging Face's own loss path untouched (bit-exact with `llamafactory-cli train`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal

import torch
import torch.nn.functional as F

from .errors import ConfigError, StateError

IGNORE_INDEX = -100

Reduction = Literal["token_mean", "sample_mean"]
REDUCTIONS: tuple[Reduction, ...] = ("token_mean", "sample_mean")

# Logits elements (float32) per chunk of the no-grad per-sample CE: bounds its transient copy to 64 MiB.
CE_CHUNK_ELEMS = 1 << 24


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


def label_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p whose logits predict a label (labels[:, p + 1]) in some row of the batch, ascending."""
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


def label_counts(labels: torch.Tensor) -> torch.Tensor:
    """Each row's number of next-token CE terms (its labels after the first position), int64 (B,)."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(dim=1)


def sample_ce_sums(logits: torch.Tensor, labels: torch.Tensor, tokens: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Σ_t CE_bt over each row's label tokens, float32 (B,), from full-length logits (B, T, V).

    Only positions that predict a label are read (SFT answers are a small part of a row). Without autograd the
    positions go in chunks of at most CE_CHUNK_ELEMS logits, so the float32 copy stays small next to the forward.
    `tokens`: a list that receives the per-token CE of each chunk, detached ((B, chunk), zero off the labels):
    concatenated, the (B, K) CE at `label_positions(labels)`.
    """
    labels = labels.to(logits.device)
    positions = label_positions(labels)
    rows, vocab = logits.shape[0], logits.shape[-1]
    step = positions.numel() or 1
    if not (torch.is_grad_enabled() and logits.requires_grad):
        step = max(1, CE_CHUNK_ELEMS // max(1, rows * vocab))
    total = logits.new_zeros(rows, dtype=torch.float32)
    # At least one (maybe empty) chunk: a row set without labels still gives a loss connected to the graph.
    for start in range(0, max(1, positions.numel()), step):
        pos = positions[start : start + step]
        ce, _ = masked_cross_entropy(logits[:, pos], labels[:, pos + 1])
        total = total + ce.sum(dim=1)
        if tokens is not None:
            tokens.append(ce.detach())
    return total


# Asked between the forward and the backward: (per-sample mean token losses, label counts, the model's outputs)
# -> (B,) float32 weights. Everything it is given is detached.
Weigh = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class LossSpec:
    """How one micro-batch's loss is reduced (see the module docstring)."""

    reduction: Reduction
    weights: torch.Tensor | None  # (B,) float32, the micro-batch's samples in order; None: `weigh` decides them
    group_samples: int  # samples in the whole gradient-accumulation group
    group_micro: int  # micro-batches in the group
    weigh: Weigh | None = None


def check_reduction(value: object) -> Reduction:
    if value not in REDUCTIONS:
        raise StateError(f"begin_pass: reduction must be one of {', '.join(REDUCTIONS)}, got {value!r}")
    return value  # type: ignore[return-value]


def reduce_loss(sums: torch.Tensor, counts: torch.Tensor, spec: LossSpec, num_items_in_batch,
                per_token_norm: bool) -> torch.Tensor:
    """The micro-batch loss from per-sample CE sums (with grad) and label counts."""
    if spec.weights is None:
        raise StateError("reduce_loss: no weights (a weighed micro-batch must be weighed first)")
    w = spec.weights.to(sums.device)
    if spec.reduction == "sample_mean":
        return (w * sums / counts.clamp(min=1)).sum() / spec.group_samples
    total = (w * sums).sum()
    if per_token_norm and num_items_in_batch is not None:
        n = num_items_in_batch.to(sums.device) if isinstance(num_items_in_batch, torch.Tensor) else num_items_in_batch
        return total / n
    # Hugging Face: the micro-batch's token mean, divided by the group's micro-batches in training_step (which
    # skips that division once compute_loss_func is set, so it is done here).
    return total / counts.sum().clamp(min=1) / spec.group_micro


@dataclass
class SampleLosses:
    """One micro-batch's per-sample CE sums (None: the forward gave no logits) and label counts; when asked for, its
    per-token CE too, (B, K) at `label_positions(labels)`, detached (a reference model's excess loss needs it); and
    the weights `weigh` returned."""

    counts: torch.Tensor
    sums: torch.Tensor | None = None
    token_ce: torch.Tensor | None = None
    weights: torch.Tensor | None = None


def _logits_of(output) -> torch.Tensor | None:
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    return logits if isinstance(logits, torch.Tensor) else None


@contextlib.contextmanager
def training_loss(trainer, model, labels: torch.Tensor, spec: LossSpec | None,
                  keep_tokens: bool = False) -> Iterator[SampleLosses]:
    """Around one `trainer.training_step`: collect its per-sample CE sums and label counts from its own forward
    (and its per-token CE with `keep_tokens`).

    spec None: Hugging Face's loss as it is; a forward hook on `model` computes the sums from the detached
    logits. Otherwise `compute_loss_func` computes the sums with grad and returns spec's reduction of them.
    """
    got = SampleLosses(counts=label_counts(labels))

    def ce_sums(logits: torch.Tensor, labels_: torch.Tensor) -> torch.Tensor:
        chunks: list[torch.Tensor] | None = [] if keep_tokens else None
        sums = sample_ce_sums(logits, labels_, chunks)
        got.sums = sums.detach()
        if chunks is not None:
            got.token_ce = torch.cat(chunks, dim=1)
        return sums

    if spec is None:
        def hook(module, args, output):
            logits = _logits_of(output)
            if logits is not None and logits.shape[:2] == labels.shape:
                with torch.no_grad():
                    ce_sums(logits.detach(), labels)

        handle = model.register_forward_hook(hook)
        try:
            yield got
        finally:
            handle.remove()
        return

    if trainer.compute_loss_func is not None:
        raise ConfigError(
            "per-sample weights and the sample_mean reduction cannot be combined with a custom LLaMA-Factory loss "
            "(dft/eaft/asft)"
        )
    per_token_norm = trainer.model_accepts_loss_kwargs

    def weighted_loss(outputs, labels_, num_items_in_batch=None):
        logits = _logits_of(outputs)
        if logits is None:
            raise StateError("the model returned no logits, so per-sample losses cannot be weighted")
        sums = ce_sums(logits, labels_)
        counts = got.counts.to(sums.device)
        applied = spec
        if spec.weigh is not None:
            got.weights = spec.weigh(sums.detach() / counts.clamp(min=1), counts, outputs)
            applied = dataclasses.replace(spec, weights=got.weights)
        return reduce_loss(sums, counts, applied, num_items_in_batch, per_token_norm)

    trainer.compute_loss_func = weighted_loss
    try:
        yield got
    finally:
        trainer.compute_loss_func = None
