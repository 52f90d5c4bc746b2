"""Projected per-sample gradients of the trainable parameters (LESS, ClusterLESS, NICE).

One batched pass per chunk of samples replaces DataFlex's batch-size-1 forward/backward loop:
  * ``linear`` (LoRA, and any model whose trainable parameters all belong to plain ``nn.Linear`` layers): one
    forward and one backward of the chunk's summed per-sample losses to the layers' outputs; each sample's weight
    gradient is then the outer-product sum ``Σ_t δ_bt ⊗ x_bt`` of its own inputs and output gradients.
  * ``vmap``: ``torch.func.vmap(grad(loss))`` over ``functional_call``, for any other trainable parameters.
  * ``loop``: one forward/backward per sample, the fallback when neither applies.
Each parameter's per-sample gradient block is Adam-preconditioned and projected on its own (projector.py), so the
flat P-vector per sample is never concatenated and no P × d matrix is built.

Differences from DataFlex, on purpose:
  * eval mode (no dropout) under `preserved_rng()`: features are a deterministic function of the weights, and
    the training RNG stream is untouched. DataFlex runs the model in train mode, so with `lora_dropout > 0` its
    gradients are a random draw and consume the training RNG.
  * fp32 throughout (DataFlex buffers and projects in fp16, which underflows small SGD gradients).
  * Adam betas/eps are the run's own (from the optimizer's param groups), not hard-coded 0.9/0.999/1e-8.
  * our own seeded projector, reproducible on any device (trak's comes from CUDA's Philox stream).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .errors import ConfigError, StateError
from .model_ops import (
    causal_inputs,
    collate,
    eval_mode,
    preserved_rng,
    right_padded,
    row_losses,
    rows_of,
    sample_lengths,
    trim_after_labels,
)
from .projector import Projector, ProjectorArgs
from .weights import token_losses

log = logging.getLogger("dataflex_bridge.executor.gradients")

# Refuse an unprojected result larger than this (float32 bytes); project instead.
MAX_RAW_BYTES = 1 << 30


@dataclass(frozen=True)
class GradientArgs:
    # Projection dimension; 0 returns the raw (unprojected) gradients, [n, P].
    proj_dim: int = 4096
    seed: int = 0
    precondition: Literal["sgd", "adam"] = "sgd"
    normalize: bool = False
    projector: Literal["dense", "sparse"] = "sparse"
    # Samples preconditioned and projected together; they come from batched passes of at most the training
    # micro-batch (`pass_rows`), which bounds the activation memory.
    chunk_size: int = 16
    # 'auto': linear when every trainable parameter belongs to an nn.Linear, else vmap, falling back to a
    # per-sample loop (with a warning) when the model cannot be vmapped.
    method: Literal["auto", "linear", "vmap", "loop"] = "auto"


@dataclass
class AdamMoments:
    """Per trainable parameter: β1·m, β2·v (precomputed) and the group's β1, β2, ε."""

    m_scaled: list[torch.Tensor]
    v_scaled: list[torch.Tensor]
    beta1: list[float]
    beta2: list[float]
    eps: list[float]


# --------------------------------------------------------------------------------------------- model state


def trainable_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """Trainable params in `named_parameters` order: the order of the flat gradient vector."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _hook_active(module) -> bool:
    # vars(), not getattr: PEFT wrappers forward attribute lookups to the base model, which owns the hook.
    handle = vars(module).get("_require_grads_hook")
    if handle is None or not hasattr(module, "get_input_embeddings"):
        return False
    return handle.id in module.get_input_embeddings()._forward_hooks


@contextlib.contextmanager
def no_checkpointing(model):
    """Switch gradient checkpointing off for the pass and restore it exactly.

    vmap cannot trace LLaMA-Factory's checkpoint wrapper nor HF's input-require-grads hook: both call
    `requires_grad_()` on activations, which functorch forbids inside a transform.
    """
    flagged = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    hooked = [m for m in model.modules() if _hook_active(m)]
    for m in flagged:
        m.gradient_checkpointing = False
    for m in hooked:
        m.disable_input_require_grads()
    try:
        yield
    finally:
        for m in hooked:
            m.enable_input_require_grads()
        for m in flagged:
            m.gradient_checkpointing = True


def adam_moments(run, params: list[torch.nn.Parameter], device) -> AdamMoments:
    """The live optimizer's raw moments (no bias correction, as LESS/DataFlex) and its betas/eps per group.

    Before the first optimizer step (or before `begin` creates the optimizer) the moments are zeros, and the
    betas/eps come from the training arguments.
    """
    ta = run.training_args
    opt = getattr(run.trainer, "optimizer", None)
    group_of: dict[int, dict] = {}
    if opt is not None:
        for group in opt.param_groups:
            for p in group["params"]:
                group_of[id(p)] = group
    m_scaled, v_scaled, b1s, b2s, epss = [], [], [], [], []
    for p in params:
        group = group_of.get(id(p))
        if group is None:
            b1, b2, eps = ta.adam_beta1, ta.adam_beta2, ta.adam_epsilon
        else:
            if "betas" not in group or "eps" not in group:
                raise StateError(
                    f"precondition 'adam' needs an Adam-style optimizer (param groups with betas/eps); "
                    f"this run uses {type(getattr(opt, 'optimizer', opt)).__name__}"
                )
            b1, b2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
        state = _optimizer_state(run, opt, p)
        if state and ("exp_avg" not in state or "exp_avg_sq" not in state):
            raise StateError(
                "precondition 'adam': the optimizer state has no exp_avg/exp_avg_sq "
                f"(keys: {sorted(state)}); 8-bit or non-Adam optimizers are not supported"
            )
        m = state["exp_avg"] if state else torch.zeros_like(p, dtype=torch.float32)
        v = state["exp_avg_sq"] if state else torch.zeros_like(p, dtype=torch.float32)
        m_scaled.append(m.detach().to(device=device, dtype=torch.float32).reshape(-1) * b1)
        v_scaled.append(v.detach().to(device=device, dtype=torch.float32).reshape(-1) * b2)
        b1s.append(b1)
        b2s.append(b2)
        epss.append(eps)
    return AdamMoments(m_scaled, v_scaled, b1s, b2s, epss)


def _optimizer_state(run, opt, p: torch.nn.Parameter) -> dict:
    """The Adam state of parameter p. DeepSpeed partitions it across ranks: its accessor gathers it whole (a collective:
    under DeepSpeed the model ops run on every rank); {} before the first step."""
    if opt is None:
        return {}
    if not run.trainer.is_deepspeed_enabled:
        return opt.state.get(p, {})
    from deepspeed.utils import safe_get_full_optimizer_state

    m, v = safe_get_full_optimizer_state(p, "exp_avg"), safe_get_full_optimizer_state(p, "exp_avg_sq")
    return {} if m is None or v is None else {"exp_avg": m, "exp_avg_sq": v}


def adam_transform(g: torch.Tensor, moments: AdamMoments, b: int) -> torch.Tensor:
    """LESS's Adam direction for block b, g: [n, numel].

    (β1·m + (1−β1)·g) / (sqrt(β2·v + (1−β2)·g²) + ε): DataFlex's placement of ε, outside the sqrt. The
    original LESS code puts it inside, sqrt(… + ε); the two differ only where the second moment is ~ε².
    """
    b1, b2, eps = moments.beta1[b], moments.beta2[b], moments.eps[b]
    num = torch.add(moments.m_scaled[b], g, alpha=1.0 - b1)
    den = torch.addcmul(moments.v_scaled[b], g, g, value=1.0 - b2).sqrt_().add_(eps)
    return num.div_(den)


# ------------------------------------------------------------------------------------ per-sample gradients


def linear_owners(model, named: list[tuple[str, torch.nn.Parameter]]) -> dict[str, tuple[torch.nn.Linear, str]] | None:
    """{param name: (its nn.Linear, 'weight' | 'bias')}, or None when a trainable parameter is used elsewhere.

    Exact ``nn.Linear`` only (a subclass may override forward), and every module owning the parameter must be one:
    a tied weight also used by an embedding is not a plain linear map of its input.
    """
    owners: dict[int, list[tuple[torch.nn.Module, str]]] = {}
    for _, mod in model.named_modules(remove_duplicate=False):
        for attr, p in mod.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((mod, attr))
    out = {}
    for name, p in named:
        owned = owners.get(id(p), [])
        if not owned or any(type(m) is not torch.nn.Linear for m, _ in owned) or len({id(m) for m, _ in owned}) != 1:
            return None
        out[name] = owned[0]
    return out


class NotPerSample(Exception):
    """The linear method does not apply to this model; vmap takes over."""


def per_sample_grads_linear(model, owners: dict[str, tuple[torch.nn.Linear, str]], input_ids, labels):
    """{name: [n, *shape]} for right-padded input_ids/labels [n, T]: one forward + one backward for the chunk.

    Samples of a chunk are independent (eval mode; causal attention without a mask, as in the vmap path), so the
    gradient of Σ_b loss_b with respect to a layer output at sample b's positions is loss_b's alone, and
    d loss_b / dW = Σ_t δ_bt x_btᵀ. Gradients are taken to the outputs only: no summed weight gradient is built.
    """
    modules = {id(m): m for m, _ in owners.values()}
    with_bias = {id(m) for m, attr in owners.values() if attr == "bias"}
    calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (module id, input, output), once per call

    def record(mod, args, output):
        calls.append((id(mod), args[0].detach(), output))

    handles = [m.register_forward_hook(record) for m in modules.values()]
    try:
        per_sample = row_losses(model, model, causal_inputs(input_ids), labels)
    finally:
        for h in handles:
            h.remove()
    n = input_ids.shape[0]
    if any(x.dim() != 3 or x.shape[0] != n for _, x, _ in calls):
        # e.g. MoE experts applied to routed tokens gathered across samples: rows no longer belong to one sample.
        raise NotPerSample("a trainable linear layer sees inputs that are not [batch, positions, features]")
    deltas = torch.autograd.grad(per_sample.sum(), [out for _, _, out in calls], allow_unused=True)
    weight_grads: dict[int, torch.Tensor] = {}
    bias_grads: dict[int, torch.Tensor] = {}
    for (mid, x, _), delta in zip(calls, deltas):
        if delta is None:
            continue
        delta, x = delta.reshape(n, -1, delta.shape[-1]).float(), x.reshape(n, -1, x.shape[-1]).float()
        gw = torch.bmm(delta.transpose(1, 2), x)
        weight_grads[mid] = weight_grads[mid] + gw if mid in weight_grads else gw
        if mid in with_bias:
            gb = delta.sum(dim=1)
            bias_grads[mid] = bias_grads[mid] + gb if mid in bias_grads else gb
    out = {}
    for name, (mod, attr) in owners.items():
        got = (weight_grads if attr == "weight" else bias_grads).get(id(mod))
        p = getattr(mod, attr)
        out[name] = got if got is not None else p.new_zeros((n, *p.shape), dtype=torch.float32)
    return out


def per_sample_grads_vmap(model, named: list[tuple[str, torch.nn.Parameter]], input_ids, labels):
    """{name: [n, *shape]} for right-padded input_ids/labels [n, T], via vmap(grad) of functional_call.

    No attention mask: under causal attention, right padding never reaches a real token and the pads carry no
    label, so each sample's loss is exactly its unpadded loss, and vmap sees no data-dependent mask code.
    """
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in named}

    def loss_fn(params, ids, lab):
        out = functional_call(model, params, (), {"input_ids": ids[None], "use_cache": False})
        ce, valid = token_losses(out.logits, lab[None])
        return ce.sum() / valid.sum().clamp(min=1)

    return vmap(grad(loss_fn), in_dims=(None, 0, 0))(params, input_ids, labels)


def per_sample_grads_loop(model, named: list[tuple[str, torch.nn.Parameter]], input_ids, labels, attention_mask):
    """The same gradients by one forward/backward per (unpadded) sample; works for any model."""
    params = [p for _, p in named]
    rows: list[tuple[torch.Tensor, ...]] = []
    for i in range(input_ids.shape[0]):
        keep = attention_mask[i].bool() if attention_mask is not None else slice(None)
        ids, lab = input_ids[i][keep][None], labels[i][keep][None]
        loss = row_losses(model, model, causal_inputs(ids), lab)[0]
        rows.append(torch.autograd.grad(loss, params, allow_unused=True))
    out = {}
    for b, (name, p) in enumerate(named):
        out[name] = torch.stack([r[b] if r[b] is not None else torch.zeros_like(p) for r in rows])
    return out


_VMAP_FAILURES = (RuntimeError, NotImplementedError, TypeError, ValueError)


def _chunk_grads(run, model, named, owners, inputs: dict, args: GradientArgs):
    input_ids, labels = inputs["input_ids"], inputs["labels"]
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() != 2:
        raise StateError("gradients: packed sequences (4-D attention masks, neat_packing) are not supported")
    caches = run.caches
    method = caches.gradient_fallback or args.method
    batchable = mask is None or right_padded(mask)
    try_linear = method == "linear" or (method == "auto" and not caches.linear_unsupported)
    if owners is not None and batchable and try_linear:
        # No column after the last label's predicting position feeds a loss term: leave them out of the pass.
        trimmed, short_labels = trim_after_labels({"input_ids": input_ids}, labels)
        try:
            return per_sample_grads_linear(model, owners, trimmed["input_ids"], short_labels)
        except NotPerSample as exc:
            if method == "linear":
                raise StateError(f"gradients: method 'linear' does not apply: {exc}") from exc
            log.warning("per-sample gradients: %s; using vmap from now on", exc)
            caches.linear_unsupported = True
    if method in ("vmap", "auto") and batchable:
        try:
            return per_sample_grads_vmap(model, named, input_ids, labels)
        except torch.OutOfMemoryError:
            raise
        except _VMAP_FAILURES as exc:
            if method == "vmap":
                raise
            log.warning("per-sample gradients: vmap failed (%s: %s); using the per-sample loop from now on",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            caches.gradient_fallback = "loop"
    return per_sample_grads_loop(model, named, input_ids, labels, mask)


def _get_projector(run, args: GradientArgs, sizes: list[int], device) -> Projector:
    pa = ProjectorArgs(dim=args.proj_dim, seed=args.seed, kind=args.projector)
    key = (pa, tuple(sizes), str(device))
    cached = run.caches.projector
    if cached is not None and cached[0] == key:
        return cached[1]
    projector = Projector(pa, sizes, device)
    run.caches.projector = (key, projector)  # one at a time: bounds the cache memory
    return projector


def pass_rows(run, requested: int) -> int:
    """Rows per batched gradient pass: the request, at most the training micro-batch.

    A pass is a forward and backward like a training step's, so with no more rows (length-sorted, so no longer
    padded than the longest micro-batch can be) it holds no more activations: it fits wherever training fits, and
    the run's peak memory stays the training step's (bench/results/model-ops.md).
    """
    micro = int(getattr(run.trainer.args, "per_device_train_batch_size", 0) or 0)
    rows = min(requested, micro) if micro > 0 else requested
    if rows < requested and not run.caches.pass_rows_logged:
        run.caches.pass_rows_logged = True
        log.info("gradients: %d rows per batched pass (the training micro-batch), not %d", rows, requested)
    return rows


def sample_gradients(run, split: str, indices: np.ndarray, args: GradientArgs) -> tuple[np.ndarray, int]:
    """Projected (or raw) per-sample gradients [len(indices), d] in float32, and P."""
    if args.precondition not in ("sgd", "adam"):
        raise StateError(f"gradients: precondition must be 'sgd' or 'adam', got {args.precondition!r}")
    if args.method not in ("auto", "linear", "vmap", "loop"):
        raise StateError(f"gradients: method must be auto, linear, vmap or loop, got {args.method!r}")
    if args.projector not in ("dense", "sparse"):
        raise StateError(f"gradients: projector must be 'dense' or 'sparse', got {args.projector!r}")
    if args.proj_dim < 0 or args.chunk_size < 1:
        raise StateError("gradients: proj_dim must be >= 0 and chunk_size >= 1")
    dataset = rows_of(run, split, indices, "gradients")
    if run.trainer.is_fsdp_enabled:
        raise ConfigError("gradients: per-sample gradients need whole parameters, which FSDP shards; run LESS-family "
                          "selectors with DDP or DeepSpeed (ZeRO-3 gathers the parameters for them)")
    with whole_parameters(run.trainer.model):
        return _sample_gradients(run, dataset, split, indices, args)


@contextlib.contextmanager
def whole_parameters(model):
    """Under DeepSpeed ZeRO-3, every parameter gathered whole for the block (a collective: every rank enters it, the
    model ops run replicated then); elsewhere nothing."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield


def _sample_gradients(run, dataset, split: str, indices: np.ndarray, args: GradientArgs) -> tuple[np.ndarray, int]:
    model = run.trainer.model
    named = trainable_parameters(model)
    if not named:
        raise StateError("gradients: the model has no trainable parameters")
    sizes = [p.numel() for _, p in named]
    total = sum(sizes)
    device = named[0][1].device
    dim = args.proj_dim or total
    if args.proj_dim == 0 and indices.size * total * 4 > MAX_RAW_BYTES:
        raise StateError(f"gradients: raw gradients would take {indices.size * total * 4 / 2**30:.1f} GiB; set proj_dim")
    owners = linear_owners(model, named) if args.method in ("auto", "linear") else None
    if owners is None and args.method == "linear":
        raise StateError("gradients: method 'linear' needs every trainable parameter to belong to an nn.Linear")
    projector = _get_projector(run, args, sizes, device) if args.proj_dim else None
    moments = adam_moments(run, [p for _, p in named], device) if args.precondition == "adam" else None

    out = torch.zeros(indices.size, dim, dtype=torch.float32, device=device)
    # Length-sorted chunks pad less; each row is independent of its chunk, so the order is free.
    order = np.argsort(sample_lengths(run, split)[indices], kind="stable")
    offsets = np.cumsum([0] + sizes)
    with preserved_rng(), eval_mode(model, grad=True), no_checkpointing(model):
        step = pass_rows(run, args.chunk_size)
        # Forward/backward passes of at most a micro-batch; their gradients are transformed and projected together
        # once chunk_size rows are in (DataFlex's save_interval: rows per projection), as the dense projector pays
        # per call. A row's gradient depends on its pass only, never on chunk_size.
        pending: list[tuple[np.ndarray, dict]] = []

        @torch.no_grad()
        def flush() -> None:
            rows = np.concatenate([r for r, _ in pending])
            block = torch.zeros(rows.size, dim, dtype=torch.float32, device=device)
            for b, (name, _) in enumerate(named):
                g = torch.cat([grads.pop(name).reshape(-1, sizes[b]) for _, grads in pending]).to(torch.float32)
                if moments is not None:
                    g = adam_transform(g, moments, b)
                if projector is None:
                    block[:, offsets[b] : offsets[b + 1]] = g
                else:
                    projector.add_block(block, b, g)
            out[torch.as_tensor(rows, device=device)] = block
            pending.clear()

        for start in range(0, indices.size, step):
            rows = order[start : start + step]
            inputs = collate(run, dataset, indices[rows].tolist())
            pending.append((rows, _chunk_grads(run, model, named, owners, inputs, args)))
            if sum(r.size for r, _ in pending) >= args.chunk_size or start + step >= indices.size:
                flush()
    if args.normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out.cpu().numpy(), total


def op_result(run, split: str, indices: np.ndarray, args: GradientArgs) -> dict:
    t0 = time.perf_counter()
    grads, total = sample_gradients(run, split, indices, args)
    return {"grads": grads, "trainable_params": total, "seconds": time.perf_counter() - t0}
