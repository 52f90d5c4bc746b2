"""Read-only model queries used by decisions. They never touch the training RNG stream or the weights."""

from __future__ import annotations

import contextlib
import inspect
import random

import numpy as np
import torch

from .domains import EVAL_SPLIT_PREFIX
from .errors import StateError
from .shared_prefix import PrefixScorer
from .weights import IGNORE_INDEX, label_positions, masked_cross_entropy

# CPU batches of the losses op: at most this many hidden activations per layer (2048 tokens at hidden 256) and logits
# (16 MiB of float32): larger batches stop paying once a layer's activations leave the cache, while peak memory keeps
# growing (measured on the tiny and small test models: bench/results/model-ops.md).
CPU_LOSS_BATCH_ACTIVATIONS = 1 << 19
CPU_LOSS_BATCH_LOGITS = 1 << 22


@contextlib.contextmanager
def preserved_rng():
    """Decisions must not perturb training: restore every global RNG afterwards."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def eval_mode(model, grad: bool = False):
    """Eval mode (no dropout) with autograd off, or on for the gradient ops; training mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        if was_training:
            model.train()


def dataset_for(run, split: str):
    """The rows of a split: 'train', 'eval' (the config's eval_dataset; with eval_on_each_dataset, all of its sets
    in order), or 'eval:<name>' (load's eval_sets, and each set of eval_on_each_dataset)."""
    if split == "train":
        return run.train_dataset
    if split == "eval":
        if run.eval_rows is None:
            raise StateError("split 'eval' requested but the config has no eval_dataset")
        return run.eval_rows
    name = split[len(EVAL_SPLIT_PREFIX):] if split.startswith(EVAL_SPLIT_PREFIX) else None
    if name in run.eval_splits:
        return run.eval_splits[name]
    known = ["train", *(["eval"] if run.eval_dataset is not None else [])]
    known += [EVAL_SPLIT_PREFIX + n for n in run.eval_splits]
    raise StateError(f"unknown split '{split}' (this run has: {', '.join(known)})")


def rows_of(run, split: str, indices: np.ndarray, op: str):
    """The split's dataset, once every index is one of its rows (else a StateError naming the op)."""
    dataset = dataset_for(run, split)
    n = len(dataset)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise StateError(f"{op}: index out of range [0, {n}) for split '{split}'")
    return dataset


def collate(run, dataset, idx: list[int]) -> dict:
    batch = run.trainer.data_collator([dataset[i] for i in idx])
    return run.trainer._prepare_inputs(batch)


def sample_lengths(run, split: str) -> np.ndarray:
    """Token count of every sample of a split, computed once per run."""
    cache = run.caches.sample_lengths
    if split not in cache:
        column = dataset_for(run, split)["input_ids"]
        cache[split] = np.fromiter((len(x) for x in column), dtype=np.int64, count=len(column))
    return cache[split]


def length_batches(lengths: np.ndarray, max_tokens: int, max_rows: int | None = None) -> list[np.ndarray]:
    """Positions into `lengths`, shortest first, cut into batches of at most max_tokens padded tokens.

    Every row's result is independent of its batch, so the order is free and padding is what sorting leaves.
    A sample longer than max_tokens gets a batch of its own.
    """
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, order.size + 1):
        rows = end - start
        # Sorted ascending: the batch's padded length is its last row's.
        too_big = rows > 1 and rows * int(lengths[order[end - 1]]) > max_tokens
        if too_big or (max_rows is not None and rows > max_rows):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < order.size:
        batches.append(order[start:])
    return batches


def right_padded(mask: torch.Tensor) -> bool:
    """Each row 1…1 0…0: a non-increasing 2-D mask."""
    return mask.dim() == 2 and bool((mask[:, 1:] <= mask[:, :-1]).all())


def masked_batches(run, dataset, indices: np.ndarray, order: np.ndarray, batch_size: int, op: str):
    """Batches of `indices` in `order` (positions into indices), collated: (positions, input_ids, padding mask, the
    mask to forward with, labels or None). Right-padded batches forward causal (`causal_inputs`); the padding mask
    still says which tokens are real."""
    for start in range(0, indices.size, batch_size):
        rows = order[start : start + batch_size]
        inputs = collate(run, dataset, indices[rows].tolist())
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        if mask.dim() != 2:
            raise StateError(f"{op}: packed sequences (4-D attention masks, neat_packing) are not supported")
        yield rows, inputs["input_ids"], mask, torch.ones_like(mask) if right_padded(mask) else mask, inputs.get("labels")


def causal_inputs(input_ids: torch.Tensor) -> dict:
    """Forward kwargs for rows that are unpadded or right-padded: an all-ones attention mask.

    Under causal attention right padding never reaches a real token and pads carry no label, so every real
    position's result is its unpadded one. All ones, rather than the padding mask, lets transformers hand SDPA its
    causal kernel instead of building a [B, 1, T, T] mask; and rather than no mask at all, which makes transformers
    (4.57) look for packed sequences in the position ids and build that mask with vmap on every forward (a large
    share of a small model's forward: bench/results/model-ops.md).
    """
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "use_cache": False}


def _accepts_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def label_token_losses(model, inputs: dict, labels: torch.Tensor, forward=None,
                       offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE at the positions that predict a label, (B, K), and its validity mask.

    The same per-sample definition as training (shifted labels, IGNORE_INDEX masked), but the LM head runs only
    on the K positions where some row of the batch has a label (`logits_to_keep`, transformers' own argument):
    SFT answers are a small part of each sequence, and the vocabulary projection is the largest layer of most LLMs.
    `forward` (default: the model) runs the model, e.g. scoring_forward's. `offset`: the inputs are the rows from
    this position on, the positions before it being in `past_key_values` (shared_prefix).
    """
    forward = forward or model
    positions = label_positions(labels)
    keep = positions - offset
    if _accepts_logits_to_keep(model):
        logits = forward(**inputs, logits_to_keep=keep).logits
    else:
        logits = forward(**inputs).logits
    if logits.shape[1] != positions.numel():  # a model that ignored the argument
        logits = logits[:, keep.to(logits.device)]
    return masked_cross_entropy(logits, labels[:, positions + 1])


def _merged_lora_weights(model) -> dict[str, torch.Tensor] | None:
    """{base weight name: W + Σ_adapters ΔW} for every LoRA layer, or None unless the model is plain LoRA on nn.Linear.

    Plain: PEFT's LoRA `Linear` layers only, no variant (DoRA, …), no LoRA bias, nothing merged already, no
    modules_to_save copies (disable_adapter would swap those back to the originals).
    """
    try:
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.lora import LoraLayer
        from peft.utils import ModulesToSaveWrapper
    except ImportError:
        return None
    if not hasattr(model, "disable_adapter"):
        return None
    names = {id(p): n for n, p in model.named_parameters()}
    merged = {}
    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper):
            return None
        if not isinstance(module, LoraLayer):
            continue
        if type(module) is not LoraLinear or module.merged:
            return None
        adapters = [a for a in module.active_adapters if a in module.lora_A]
        if any(a in getattr(module, "lora_variant", {}) or module.lora_bias.get(a) for a in adapters):
            return None
        weight = module.get_base_layer().weight
        with torch.no_grad():
            delta = sum(module.get_delta_weight(a) for a in adapters)
            merged[names[id(weight)]] = weight + delta.to(weight.dtype)
    return merged or None


@contextlib.contextmanager
def scoring_forward(model):
    """A forward for read-only scoring (no grad): plain LoRA adapters folded into their base weights.

    The deltas are computed once per op (one r-rank product per layer) and swapped in with functional_call, the
    adapters switched off with PEFT's `disable_adapter`: every batch then runs the base model's GEMMs alone instead
    of base + two skinny LoRA matmuls per layer (bench/results/model-ops.md). The model's own weights are never
    written, so training is untouched; results differ from the adapter path by float rounding only. Any other model
    is yielded as is.
    """
    merged = _merged_lora_weights(model)
    if merged is None:
        yield model
        return
    trainable = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with model.disable_adapter():
            yield lambda **kwargs: torch.func.functional_call(model, merged, args=(), kwargs=kwargs, strict=False)
    finally:
        for p, flag in trainable:  # disable_adapter's exit re-enables grads on every adapter; restore as it was
            p.requires_grad_(flag)


def loss_batch_tokens(run) -> int:
    """Default padded tokens per batch of the losses op.

    On an accelerator, what one eval batch at full length already holds (per_device_eval_batch_size × cutoff_len):
    a size the user's config already fits. On CPU, the CPU_LOSS_BATCH_* bounds for the model's hidden and vocabulary
    sizes.
    """
    model = run.trainer.model
    if next(model.parameters()).device.type != "cpu":
        return max(1, int(run.training_args.per_device_eval_batch_size or 8)) * max(1, int(run.data_args.cutoff_len))
    hidden = int(getattr(model.config, "hidden_size", 0) or 256)
    vocab = int(getattr(model.config, "vocab_size", 0) or 2048)
    return max(256, min(CPU_LOSS_BATCH_ACTIVATIONS // hidden, CPU_LOSS_BATCH_LOGITS // vocab))


def sample_losses(run, split: str, indices: np.ndarray, batch_size: int | None = None,
                  max_tokens: int | None = None) -> np.ndarray:
    """Per-sample mean token loss (the label mask of training), in length-sorted batches, eval mode, no grad.

    Batches hold at most `max_tokens` padded tokens (default: loss_batch_tokens) and at most `batch_size` rows.
    """
    dataset = rows_of(run, split, indices, "losses")
    model = run.trainer.model
    out = np.empty(indices.size, dtype=np.float32)
    with preserved_rng(), eval_mode(model), scoring_forward(model) as forward:
        budget = max_tokens or loss_batch_tokens(run)
        prefix = PrefixScorer(run, model, forward)
        for rows in length_batches(sample_lengths(run, split)[indices], budget, batch_size):
            inputs = collate(run, dataset, indices[rows].tolist())
            labels = inputs.pop("labels")
            inputs, labels = trim_after_labels(inputs, labels)
            mask = inputs.get("attention_mask")
            per_sample = None
            if set(inputs) <= {"input_ids", "attention_mask"} and (mask is None or right_padded(mask)):
                inputs = causal_inputs(inputs["input_ids"])
                per_sample = _prefixed_losses(prefix, model, forward, inputs, labels)
            if per_sample is None:
                per_sample = row_losses(model, forward, inputs, labels)
            out[rows] = per_sample.cpu().numpy()
    return out


def trim_after_labels(inputs: dict, labels: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Drop the columns no loss term needs: under causal attention, positions after the last one whose logits
    predict a label (the row's final token, usually) feed nothing. A 2-D mask is cut alike; other inputs as is."""
    columns = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    width = int(columns.max()) if columns.numel() else 1  # logits at width - 1 predict the last label column
    if width >= labels.shape[1] - 1 or any(isinstance(v, torch.Tensor) and v.dim() != 2 for v in inputs.values()):
        return inputs, labels
    return {k: v[:, :width] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}, labels[:, : width + 1]


def row_losses(model, forward, inputs: dict, labels: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Each row's mean token loss over its labels (training's per-sample definition); 0 for a row without labels."""
    ce, valid = label_token_losses(model, inputs, labels, forward, offset)
    return ce.sum(dim=1) / valid.sum(dim=1).clamp(min=1)


_PREFIX_FAILURES = (TypeError, ValueError, RuntimeError, AttributeError, IndexError, NotImplementedError)


def _prefixed_losses(prefix: PrefixScorer, model, forward, inputs: dict, labels: torch.Tensor) -> torch.Tensor | None:
    """Per-sample losses through the shared-prefix cache, or None when it does not apply (score the batch whole)."""
    try:
        shared = prefix.inputs(inputs["input_ids"], labels)
        if shared is None:
            return None
        got = row_losses(model, forward, shared[0], labels, offset=shared[1])
    except _PREFIX_FAILURES as exc:  # a model that rejects the cache or the 4-D mask
        prefix.disable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return None
    if prefix.verified:
        return got
    # First use in the run: two rows through the plain forward must agree.
    want = row_losses(model, forward, {k: v[:2] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()},
                       labels[:2])
    return got if prefix.check(got[:2], want) else None


def sample_order(run, epochs: list[int]) -> np.ndarray:
    """The order in which LLaMA-Factory's own train sampler visits samples in each epoch.

    We ask the trainer's real dataloader (accelerate's seedable sampler, or LLaMA-Factory's sequential sampler
    when `disable_shuffling`), so TypeScript's static plan equals `llamafactory-cli train` without re-implementing
    torch's randperm.
    """
    if run.caches.train_dataloader is None:
        with preserved_rng():
            run.caches.train_dataloader = run.trainer.get_train_dataloader()
    loader = run.caches.train_dataloader
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
    orders = []
    with preserved_rng():
        for e in epochs:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(e)
            orders.append(np.fromiter(iter(sampler), dtype=np.int32))
    return np.concatenate(orders) if orders else np.zeros(0, dtype=np.int32)
