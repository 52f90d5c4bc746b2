"""An explicit optimizer-step loop over LLaMA-Factory's own trainer.

TypeScript sends the plan (which samples form each micro-batch and step); this module executes it with the
trainer's `training_step`, optimizer, scheduler, accelerator and callbacks, in the order Hugging Face's
`Trainer._inner_training_loop` uses (see docs/executor.md): `begin` is its prologue, `_optimizer_step` the body
of its inner loop, `finish` its epilogue. It never calls `trainer.train()`, so no sampler runs ahead of the plan:
a decision made after step s sees the model exactly as step s left it. Those three mirror transformers 4.57.6's
loop and use private Trainer attributes (docs/executor.md#private-trainer-attributes-used); test/parity.test.ts
fails when an upgrade changes that loop.

Two details decide bit-exact parity with `llamafactory-cli train`:
  * `num_items_in_batch` is the label-token count of the whole gradient-accumulation group
    (`trainer.get_batch_samples` computes it);
  * `iter(DataLoader)` draws one base seed from the global torch RNG per pass over the data, so every pass
    builds one DataLoader and iterates it once.
"""

from __future__ import annotations

import os

import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from . import fault, shards
from .embeddings import POOLINGS, pool
from .errors import ExecutorError, StateError
from .reference import excess_sums, load_reference, reference_token_losses
from .weights import IGNORE_INDEX, LossSpec, Reduction, check_reduction, training_loss

# A `weigh` answer runs a TypeScript weighter on one micro-batch: milliseconds. The deadline only bounds a hang.
WEIGH_TIMEOUT_S = 600.0

logger = logging.getLogger("dataflex_bridge.executor.step_loop")  # `log` is a step flag here


class PlanBatchSampler(Sampler[list[int]]):
    """Yields the planned micro-batches, in order (this rank's rows of them with several ranks)."""

    def __init__(self, indices: np.ndarray, sizes: np.ndarray):
        self._batches: list[list[int]] = []
        start = 0
        for size in sizes.tolist():
            self._batches.append(indices[start : start + size].tolist())
            start += size

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


@dataclass(frozen=True)
class LocalPlan:
    """This rank's rows of a global plan: micro-batch j's global rows are the plan's [starts[j], starts[j] + m_j)
    and this rank trains [starts[j] + lo[j], starts[j] + hi[j]).

    A rank whose slice is empty loads the micro-batch's first row as a pad with every label masked: DDP needs every
    rank's backward, and a row without labels adds nothing to the loss, the gradients or the label-token count.
    """

    indices: np.ndarray  # the rows this rank loads
    sizes: np.ndarray    # rows per micro-batch this rank loads (>= 1)
    starts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def rows(self, j: int) -> int:
        """Plan rows this rank trains in micro-batch j (0 for a pad)."""
        return int(self.hi[j] - self.lo[j])


def local_plan(indices: np.ndarray, micro_sizes: np.ndarray, rank: int, world_size: int) -> LocalPlan:
    starts = np.concatenate([[0], np.cumsum(micro_sizes)[:-1]]).astype(np.int64) if micro_sizes.size else np.zeros(0, np.int64)
    lo, hi = np.array([shards.bounds(int(m), rank, world_size) for m in micro_sizes], dtype=np.int64).reshape(-1, 2).T
    rows: list[np.ndarray] = []
    for s, a, b in zip(starts.tolist(), lo.tolist(), hi.tolist()):
        rows.append(indices[s + a : s + b] if b > a else indices[s : s + 1])
    flat = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    return LocalPlan(flat, np.maximum(hi - lo, 1), starts, lo, hi)


@dataclass(frozen=True)
class WeighSpec:
    """begin_pass's `weigh`: micro-batches of steps after `from_step` trained steps ask TypeScript for weights."""

    from_step: int
    layer: int | None = None  # pooled hidden states of the forward are sent along when set
    pooling: str = "mask_mean"
    normalize: bool = False


@dataclass
class Pass:
    epoch: int
    steps: list[int]                  # micro-batches per optimizer step
    micro_in_epoch: int               # denominator of state.epoch
    micro_done: int                   # micro-batches consumed so far in this epoch
    iterator: Iterator[Any]
    micro_sizes: list[int]             # global rows per micro-batch
    local: LocalPlan                   # this rank's rows of them (all of them with one process)
    reduction: Reduction = "token_mean"
    weights: np.ndarray | None = None  # per planned sample, aligned with the pass's flat index list
    reference: Any = None              # frozen reference model: each sample's excess loss over it is reported
    weigh: WeighSpec | None = None
    indices: np.ndarray | None = None  # the flat plan (the rows a weighed micro-batch reports)
    next_step: int = 0
    micro_index: int = 0               # next micro-batch of `micro_sizes`

    @property
    def hf_loss(self) -> bool:
        """Hugging Face's own loss, untouched: no weights under token_mean."""
        return self.weights is None and self.reduction == "token_mean"


@dataclass
class Loop:
    total_steps: int
    model: Any
    start_time: float
    tr_loss: torch.Tensor
    grad_norm: Any = None
    learning_rate: float | None = None
    current: Pass | None = None
    step_seconds: list[float] = field(default_factory=list)
    warned_no_logits: bool = False
    request: Any = None                # the running op's channel to TypeScript (ctx.request)
    weigh_calls: int = 0               # in the running op
    weigh_seconds: float = 0.0


class StepFlags(NamedTuple):
    """TypeScript's decisions for one step (its schedule mirrors DefaultFlowCallback)."""

    log: bool
    evaluate: bool
    save: bool


@dataclass
class StepRecord:
    """What one optimizer step reports."""

    loss: float                      # Σ over its micro-batches of the loss training_step returned
    grad_norm: float                 # NaN without clipping
    lr: float
    tokens: int                      # num_items_in_batch (0 when the trainer does not count it)
    eval_loss: float                 # NaN unless it evaluated
    seconds: float
    sample_loss_sum: torch.Tensor    # float32, per sample of its micro-batches in plan order (NaN: no logits)
    sample_tokens: torch.Tensor      # int64, each sample's label tokens (CE terms)
    sample_excess_sum: torch.Tensor | None = None  # float32, likewise, when the pass has a reference model


def begin(run, total_steps: int) -> dict:
    """Optimizer + scheduler for `total_steps`, fresh TrainerState, on_train_begin (HF's loop prologue). With the run's
    `resume_from_checkpoint`, what Trainer.train restores from it: the weights, the optimizer, scheduler and scaler, the
    TrainerState (global step, log history) and the RNG states."""
    from transformers.trainer_callback import ExportableState, TrainerState

    if run.loop is not None:
        raise StateError("begin: training already started")
    if total_steps < 1:
        raise StateError(f"begin: total_steps must be >= 1, got {total_steps}")
    trainer = run.trainer
    args = trainer.args

    # Prologue of Trainer.train(): memory tracker, in-train flag, special-token alignment.
    trainer._memory_tracker.start()
    trainer.is_in_train = True
    trainer._align_special_tokens()
    trainer._train_batch_size = args.train_batch_size
    trainer.accelerator.free_memory()

    resume = args.resume_from_checkpoint or None
    # Trainer.train loads the weights here, except under DeepSpeed or FSDP (after wrapping, below).
    if resume is not None and not trainer.is_deepspeed_enabled and not trainer.is_fsdp_enabled:
        trainer._load_from_checkpoint(resume)
    # FSDP1 wraps the model before the optimizer is built; FSDP2 and everything else build it first.
    fsdp2 = trainer.is_fsdp_enabled and getattr(trainer.accelerator.state.fsdp_plugin, "fsdp_version", 1) == 2
    delay_optimizer_creation = trainer.is_fsdp_enabled and not fsdp2
    if trainer.is_deepspeed_enabled:
        from transformers.integrations.deepspeed import deepspeed_init

        trainer.optimizer, trainer.lr_scheduler = deepspeed_init(trainer, num_training_steps=total_steps)
    if not delay_optimizer_creation:
        trainer.create_optimizer_and_scheduler(num_training_steps=total_steps)
    trainer.state = TrainerState(
        stateful_callbacks=[
            cb for cb in trainer.callback_handler.callbacks + [trainer.control] if isinstance(cb, ExportableState)
        ]
    )
    trainer.state.is_hyper_param_search = False
    trainer.state.train_batch_size = trainer._train_batch_size
    trainer.state.compute_steps(args, total_steps)
    if args.gradient_checkpointing:
        trainer.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)

    model = _wrap_and_prepare(trainer, total_steps, delay_optimizer_creation)
    if resume is not None:
        if trainer.is_deepspeed_enabled:
            from transformers.integrations.deepspeed import deepspeed_load_checkpoint
            from transformers.trainer import _is_peft_model

            deepspeed_load_checkpoint(trainer.model_wrapped, resume, load_module_strict=not _is_peft_model(trainer.model))
        elif trainer.is_fsdp_enabled:
            trainer._load_from_checkpoint(resume, trainer.model_wrapped)

    trainer.state.epoch = 0
    if resume is not None:
        _load_optimizer_and_scheduler(trainer, resume)
        trainer._load_scaler(resume)
        trainer.state = TrainerState.load_from_json(os.path.join(resume, "trainer_state.json"))
        trainer.compare_trainer_and_checkpoint_args(args, trainer.state)
        trainer._load_callback_state()
        # The RNG as it was when the checkpoint was saved (a pass resumed midway loads it again after its
        # iterator is made: begin_pass's rng_state).
        trainer._load_rng_state(resume)
    for attr in ("model", "optimizer", "lr_scheduler"):
        setattr(trainer.callback_handler, attr, getattr(trainer, attr))
    # num_train_epochs only feeds TrainerState bookkeeping here.
    trainer.state.init_training_references(trainer, total_steps, math.ceil(args.num_train_epochs), None)
    tr_loss = torch.tensor(0.0, device=args.device)
    trainer._total_loss_scalar = 0.0
    trainer._globalstep_last_logged = trainer.state.global_step
    model.zero_grad()
    trainer.control = trainer.callback_handler.on_train_begin(args, trainer.state, trainer.control)
    run.loop = Loop(total_steps=total_steps, model=model, start_time=time.time(), tr_loss=tr_loss)
    return {"total_steps": total_steps, "global_step": trainer.state.global_step}


def _wrap_and_prepare(trainer, total_steps: int, delay_optimizer_creation: bool):
    """The model wrapping of Trainer._inner_training_loop: DDP, DeepSpeed's engine or FSDP through
    `accelerator.prepare`, as the run's config asks. Returns the outer model; sets trainer.model_wrapped."""
    from transformers.modeling_utils import unwrap_model

    model = trainer._wrap_model(trainer.model_wrapped)
    use_accelerator_prepare = model is trainer.model  # else wrapped already (DataParallel and the like)
    if use_accelerator_prepare and trainer.is_fsdp_enabled:
        trainer.model = unwrap_model(trainer.model, recursive=True)
    if delay_optimizer_creation:
        if use_accelerator_prepare:
            trainer._fsdp_qlora_plugin_updates()
            if trainer.accelerator.mixed_precision != "fp8":
                trainer.model = trainer.accelerator.prepare(trainer.model)
        trainer.create_optimizer_and_scheduler(num_training_steps=total_steps)
    if use_accelerator_prepare:
        trainer.model.train()
        if hasattr(trainer.lr_scheduler, "step"):
            model, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
        else:  # DeepSpeed's DummyScheduler (a scheduler in the DeepSpeed config)
            model, trainer.optimizer, trainer.lr_scheduler = trainer.accelerator.prepare(
                trainer.model, trainer.optimizer, trainer.lr_scheduler)
    else:
        trainer.optimizer = trainer.accelerator.prepare(trainer.optimizer)
    if trainer.is_fsdp_enabled:
        trainer.model = trainer.model_wrapped = model
    if model is not trainer.model:
        trainer.model_wrapped = model
    if trainer.is_deepspeed_enabled:
        trainer.deepspeed = trainer.model_wrapped
    return model


def _load_optimizer_and_scheduler(trainer, checkpoint: str) -> None:
    """Trainer._load_optimizer_and_scheduler; on several CPU ranks, the same loads with the optimizer state mapped to
    'cpu'. Hugging Face maps it to `args.device` with several ranks, and on CPU ranks that is `cpu:0`, a location
    torch.load cannot restore (the GPU path, `cuda:<rank>`, is Hugging Face's own)."""
    from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

    args = trainer.args
    if args.world_size == 1 or args.device.type != "cpu" or trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        trainer._load_optimizer_and_scheduler(checkpoint)
        return
    trainer.optimizer.load_state_dict(torch.load(os.path.join(checkpoint, OPTIMIZER_NAME), map_location="cpu",
                                                 weights_only=True))
    trainer.lr_scheduler.load_state_dict(torch.load(os.path.join(checkpoint, SCHEDULER_NAME), weights_only=True))


def begin_pass(run, epoch: int, indices: np.ndarray, micro_sizes: np.ndarray, step_sizes: np.ndarray,
               micro_in_epoch: int | None, micro_done: int, weights: np.ndarray | None,
               reduction: str = "token_mean", reference_model: str | None = None,
               weigh: dict | None = None, rng_state: str | None = None) -> dict:
    """One pass over planned micro-batches; `weights` (one per planned sample) and `reduction` choose the loss
    (weights.py). No weights under token_mean: Hugging Face's own loss. `reference_model`: a local model or LoRA
    adapter directory; every trained micro-batch also runs its no-grad forward, for the excess loss (reference.py).
    `weigh` ({from_step, embeddings?}): TypeScript weighs each micro-batch of the steps after `from_step` between its
    forward and backward (the `weigh` request); earlier steps train with weights of 1 under `reduction`."""
    loop = _loop(run)
    if loop.current is not None:
        raise StateError("begin_pass: the previous pass was not ended")
    reduction = check_reduction(reduction)
    n = len(run.train_dataset)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise StateError(f"begin_pass: sample index out of range [0, {n})")
    if int(micro_sizes.sum()) != indices.size or int(step_sizes.sum()) != micro_sizes.size:
        raise StateError("begin_pass: micro-batch sizes / step sizes do not add up to the plan")
    if weights is not None:
        if weights.size != indices.size:
            raise StateError("begin_pass: weights must have one entry per planned sample")
        if not np.isfinite(weights).all():
            raise StateError(f"begin_pass: weight {int(np.argmin(np.isfinite(weights)))} is not finite")
    weigh_spec = None
    if weigh is not None:
        if weights is not None:
            raise StateError("begin_pass: weights and weigh exclude each other")
        emb = weigh.get("embeddings")
        if emb is not None and emb["pooling"] not in POOLINGS:
            raise StateError(f"begin_pass: weigh.embeddings.pooling must be one of {', '.join(POOLINGS)}")
        weigh_spec = WeighSpec(int(weigh["from_step"])) if emb is None else WeighSpec(
            int(weigh["from_step"]), int(emb["layer"]), str(emb["pooling"]), bool(emb["normalize"]))
    reference = None if reference_model is None else load_reference(run, reference_model)
    trainer = run.trainer
    args = trainer.args
    trainer.control = trainer.callback_handler.on_epoch_begin(args, trainer.state, trainer.control)
    local = local_plan(indices, micro_sizes, *shards.world())
    loader = DataLoader(
        run.train_dataset,
        batch_sampler=PlanBatchSampler(local.indices, local.sizes),
        collate_fn=trainer.data_collator,
        num_workers=args.dataloader_num_workers,
        pin_memory=args.dataloader_pin_memory,
    )
    # One global-RNG draw per pass, exactly like the Trainer's iter(epoch_dataloader).
    iterator = iter(loader)
    if (local.hi == local.lo).any():
        iterator = _mask_pads(iterator, local)
    if rng_state is not None:
        # A pass resumed midway: the RNG continues from the checkpoint, as HF's rng_to_sync does after skipping.
        trainer._load_rng_state(rng_state)
    loop.current = Pass(
        epoch=epoch,
        steps=step_sizes.tolist(),
        micro_in_epoch=int(micro_in_epoch or micro_sizes.size),
        micro_done=micro_done,
        iterator=iterator,
        micro_sizes=micro_sizes.tolist(),
        local=local,
        reduction=reduction,
        weights=weights,
        reference=reference,
        weigh=weigh_spec,
        indices=indices,
    )
    return {"steps": len(loop.current.steps)}


def _mask_pads(batches: Iterator[dict], local: LocalPlan) -> Iterator[dict]:
    """The collated micro-batches, with every label of a pad masked (before get_batch_samples counts them)."""
    for j, batch in enumerate(batches):
        if local.rows(j) == 0:
            batch["labels"] = torch.full_like(batch["labels"], IGNORE_INDEX)
        yield batch


def train_steps(run, count: int, log: np.ndarray, evaluate: np.ndarray, save: np.ndarray,
                on_step=None, request=None, check_cancelled=None, stop_requested=None) -> dict:
    """Run the next `count` optimizer steps of the current pass.

    `log`/`evaluate`/`save` are TypeScript's per-step decisions. Besides the per-step series, returns each trained
    sample's label-token CE sum and label-token count from the training forward itself (`sample_loss_sum`,
    `sample_tokens`: one entry per sample of every micro-batch trained, in plan order), and when the pass has a
    reference model, each one's excess loss over it (`sample_excess_sum`, likewise). `request`: the op's channel to
    TypeScript (ctx.request), needed when the pass weighs. `check_cancelled` (ctx.check_cancelled) runs before each
    step, the op's safe point: it raises once TypeScript cancelled the call or stopped waiting for it.
    `stop_requested` (the `request_stop` op's flag) is read there too: once set, the call returns the steps done so
    far with `should_training_stop`, as an early-stopping callback ends training.
    """
    loop = _loop(run)
    p = loop.current
    if p is None:
        raise StateError("train_steps: no pass begun")
    rank, world_size = shards.world()
    if p.weigh is not None and request is None and rank == 0:
        raise StateError("train_steps: the pass weighs its micro-batches but this call cannot reach TypeScript")
    loop.request, loop.weigh_calls, loop.weigh_seconds = request, 0, 0.0
    if p.next_step + count > len(p.steps):
        raise StateError(f"train_steps: {count} steps requested, {len(p.steps) - p.next_step} left in this pass")
    op_start = time.perf_counter()
    first_micro = p.micro_index
    records: list[StepRecord] = []
    stop = False
    planned_fault = fault.planned()
    try:
        for k in range(count):
            if _safe_point(check_cancelled, stop_requested, world_size):
                stop = True
                break
            fault.before_step(planned_fault, run.trainer.state.global_step + 1)
            n_micro = p.steps[p.next_step]
            rec = _optimizer_step(run, loop, p, n_micro, StepFlags(bool(log[k]), bool(evaluate[k]), bool(save[k])))
            records.append(rec)
            loop.step_seconds.append(rec.seconds)
            state = run.trainer.state
            if on_step is not None:
                on_step({
                    "step": state.global_step, "loss": rec.loss, "lr": rec.lr,
                    "grad_norm": None if math.isnan(rec.grad_norm) else rec.grad_norm, "epoch": state.epoch,
                })
            if run.trainer.control.should_training_stop:
                stop = True
                break
    finally:
        loop.request = None

    def series(field_: str, dtype) -> np.ndarray:
        return np.array([getattr(r, field_) for r in records], dtype=dtype)

    def samples(field_: str, dtype) -> np.ndarray:
        if not records:
            return np.zeros(0, dtype=dtype)
        return torch.cat([getattr(r, field_) for r in records]).cpu().numpy().astype(dtype, copy=False)

    result = {
        "done": len(records),
        "global_step": run.trainer.state.global_step,
        "epoch": run.trainer.state.epoch,
        "loss": series("loss", np.float64),
        "grad_norm": series("grad_norm", np.float64),
        "lr": series("lr", np.float64),
        "tokens": series("tokens", np.int64),
        "eval_loss": series("eval_loss", np.float64),
        "seconds": series("seconds", np.float64),
        "sample_loss_sum": samples("sample_loss_sum", np.float32),
        "sample_tokens": samples("sample_tokens", np.int32),
        "op_seconds": time.perf_counter() - op_start,
        "should_training_stop": stop,
    }
    if p.reference is not None:
        result["sample_excess_sum"] = samples("sample_excess_sum", np.float32)
    if p.weigh is not None:
        result["weigh_calls"], result["weigh_seconds"] = loop.weigh_calls, loop.weigh_seconds
    if world_size > 1:
        result = _gather_steps(result, p.micro_sizes[first_micro : p.micro_index], world_size)
    return result


def _safe_point(check_cancelled, stop_requested, world_size: int) -> bool:
    """Before each step: raise when TypeScript cancelled the op; True when it asked training to stop (request_stop).
    Rank 0 knows both; with several ranks every rank learns them here and does the same, so none is left waiting
    in a collective."""
    stop = stop_requested is not None and bool(stop_requested())
    if world_size == 1:
        if check_cancelled is not None:
            check_cancelled()
        return stop
    why = None
    if check_cancelled is not None:
        try:
            check_cancelled()
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            why = str(exc)
    verdict = shards.max_rank(2 if why is not None else 1 if stop else 0)
    if verdict == 2:
        raise ExecutorError(why or "rank 0 stopped the op", code="cancelled")
    return verdict == 1


# Per-sample arrays of train_steps' result, gathered to rank 0 in plan order with several ranks.
_SAMPLE_ARRAYS = ("sample_loss_sum", "sample_tokens", "sample_excess_sum")


def _gather_steps(result: dict, micro_sizes: list[int], world_size: int) -> dict:
    """Rank 0's result of a step run on several ranks: each step's loss is the mean over ranks (the value Hugging
    Face logs: with average_tokens_across_devices each rank's loss is scaled so that this mean is the global batch's
    loss); its seconds the slowest rank's; the per-sample arrays every rank's rows in plan order. The rest (step,
    learning rate, grad norm, label tokens, eval loss) is the same on every rank."""
    mine = {k: result[k] for k in ("loss", "seconds", *_SAMPLE_ARRAYS) if k in result}
    parts = shards.gather_to_zero(mine)
    if parts is None:
        return result  # a follower's answer is not sent anywhere
    out = dict(result)
    out["loss"] = np.mean([q["loss"] for q in parts], axis=0)
    out["seconds"] = np.max([q["seconds"] for q in parts], axis=0)
    for key in _SAMPLE_ARRAYS:
        if key in result:
            out[key] = shards.interleave([q[key] for q in parts], micro_sizes, world_size)
    return out


def _optimizer_step(run, loop: Loop, p: Pass, n_micro: int, flags: StepFlags) -> StepRecord:
    """One optimizer step of the plan: the body of the inner loop of transformers 4.57's
    `Trainer._inner_training_loop`, and the one place that mirrors it.

    Order, as there: `get_batch_samples` (num_items_in_batch of the whole group) → per micro-batch
    `on_step_begin` (first) / `accelerator.no_sync` (all but the last) / `training_step` / the NaN-Inf filter /
    `floating_point_ops` / `on_substep_end` (all but the last) → `clip_grad_norm_` → `on_pre_optimizer_step` →
    `optimizer.step` → `on_optimizer_step` → `_get_learning_rate` → `lr_scheduler.step` → `zero_grad` →
    global_step / epoch → `on_step_end` → `_maybe_log_save_evaluate` (here `_log_save_evaluate`, with TypeScript's
    flags). It touches the Trainer's private attributes (`_globalstep_last_logged`, `current_flos`,
    `current_gradient_accumulation_steps`, …) on purpose: parity with `llamafactory-cli train` is bit-exact only
    if every one of them moves as in the Trainer. Each micro-batch's per-sample CE sums come from its own forward
    (weights.training_loss).
    """
    trainer = run.trainer
    args = trainer.args
    model = loop.model
    t0 = time.perf_counter()
    batches, num_items = trainer.get_batch_samples(p.iterator, n_micro, args.device)
    if len(batches) != n_micro:
        raise StateError("train_steps: the data loader ran out before the planned step")
    group_samples = sum(p.micro_sizes[p.micro_index : p.micro_index + n_micro])  # global rows of the step
    trainer.current_gradient_accumulation_steps = len(batches)
    step_loss = torch.tensor(0.0, device=args.device)
    sums: list[torch.Tensor] = []
    counts: list[torch.Tensor] = []
    excess: list[torch.Tensor] = []
    for i, inputs in enumerate(batches):
        j = p.micro_index
        loaded, rows = int(p.local.sizes[j]), p.local.rows(j)  # rows loaded; plan rows trained (0: a pad)
        first = int(p.local.starts[j] + p.local.lo[j])  # this rank's first row in the flat plan
        labels = inputs.get("labels")
        if labels is None or labels.shape[0] != loaded:
            raise StateError(f"train_steps: micro-batch {j} has no labels or not {loaded} rows")
        labels = labels.to(args.device)
        spec = None
        if p.weigh is not None and trainer.state.global_step >= p.weigh.from_step:
            if p.weigh.layer is not None:
                inputs["output_hidden_states"] = True  # the same forward: no second one for the embeddings
            spec = LossSpec(p.reduction, None, group_samples=group_samples, group_micro=n_micro,
                            weigh=_weigh(loop, p, trainer.state.global_step + 1, i, j, labels,
                                         inputs.get("attention_mask"), group_samples, n_micro))
        elif not p.hf_loss:
            w = (np.zeros(1, dtype=np.float32) if rows == 0 else p.weights[first : first + rows]
                 if p.weights is not None else np.ones(rows, dtype=np.float32))
            spec = LossSpec(p.reduction, torch.as_tensor(np.ascontiguousarray(w), dtype=torch.float32),
                            group_samples=group_samples, group_micro=n_micro)
        if i == 0:
            trainer.control = trainer.callback_handler.on_step_begin(args, trainer.state, trainer.control)
        # As the Trainer does (it prefetches the group): only the last micro-batch syncs (DeepSpeed steps on it).
        trainer.accelerator.gradient_state._set_sync_gradients(i == len(batches) - 1)
        ctx = (
            functools.partial(trainer.accelerator.no_sync, model=model)
            if i != len(batches) - 1
            else contextlib.nullcontext
        )
        # Before training_step, which may pop the labels from its inputs; the reference's forward draws no RNG.
        ref_ce = None if p.reference is None else reference_token_losses(p.reference, trainer, inputs, labels)
        with ctx(), training_loss(trainer, model, labels, spec, keep_tokens=ref_ce is not None) as got:
            tr_loss_step = trainer.training_step(model, inputs, num_items)
        if ref_ce is not None:
            excess.append(excess_sums(got.token_ce, ref_ce, loaded)[:rows])
        if got.sums is None:
            got.sums = torch.full((loaded,), float("nan"), device=labels.device)
            if not loop.warned_no_logits:
                loop.warned_no_logits = True
                logger.warning("train_steps: the model's training forward returns no full-length logits (e.g. a fused "
                            "loss kernel); per-sample losses are reported as NaN")
        sums.append(got.sums[:rows])
        counts.append(got.counts[:rows])
        p.micro_index += 1
        # Every rank stops together (one rank alone would leave the others waiting in the next collective).
        if shards.any_rank(not bool(torch.isfinite(tr_loss_step))):
            # Deliberately unlike Hugging Face, which (logging_nan_inf_filter) logs the running mean in its place and
            # trains on with weights that are likely already ruined: stop, naming the step.
            value = float(tr_loss_step) if not torch.isfinite(tr_loss_step) else "not finite on another rank"
            raise ExecutorError(
                f"the training loss is {value} at step {trainer.state.global_step + 1} "
                f"(micro-batch {i + 1} of {len(batches)}); training diverged or the data holds a bad row; lower "
                f"learning_rate (now {args.learning_rate:g}) or set max_grad_norm",
                code="non_finite_loss",
            )
        loop.tr_loss = loop.tr_loss + tr_loss_step
        step_loss = step_loss + tr_loss_step
        trainer.current_flos += float(trainer.floating_point_ops(inputs))
        p.micro_done += 1
        if i != len(batches) - 1:
            trainer.control = trainer.callback_handler.on_substep_end(args, trainer.state, trainer.control)

    if args.max_grad_norm is not None and args.max_grad_norm > 0:
        loop.grad_norm = trainer.accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        if trainer.is_deepspeed_enabled:  # the engine clips inside its step; it reports the norm
            loop.grad_norm = model.get_global_grad_norm()
    trainer.control = trainer.callback_handler.on_pre_optimizer_step(args, trainer.state, trainer.control)
    trainer.optimizer.step()
    trainer.control = trainer.callback_handler.on_optimizer_step(args, trainer.state, trainer.control)
    loop.learning_rate = trainer._get_learning_rate()
    if not trainer.accelerator.optimizer_step_was_skipped:
        if not isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            trainer.lr_scheduler.step()
    model.zero_grad()
    trainer.state.global_step += 1
    trainer.state.epoch = p.epoch + p.micro_done / p.micro_in_epoch
    trainer.control = trainer.callback_handler.on_step_end(args, trainer.state, trainer.control)
    # TypeScript's schedule decides; callbacks may still ask to stop (e.g. early stopping).
    trainer.control.should_log = flags.log
    trainer.control.should_evaluate = flags.evaluate
    trainer.control.should_save = flags.save
    metrics = _log_save_evaluate(run, loop)
    p.next_step += 1

    gn = loop.grad_norm
    return StepRecord(
        loss=float(step_loss.item()),
        grad_norm=math.nan if gn is None else float(gn.item() if isinstance(gn, torch.Tensor) else gn),
        lr=float(loop.learning_rate),
        tokens=int(num_items.item() if isinstance(num_items, torch.Tensor) else (num_items or 0)),
        eval_loss=float(metrics["eval_loss"]) if metrics and "eval_loss" in metrics else math.nan,
        seconds=time.perf_counter() - t0,
        sample_loss_sum=torch.cat(sums),
        sample_tokens=torch.cat(counts),
        sample_excess_sum=torch.cat(excess) if excess else None,
    )


def _weigh(loop: Loop, p: Pass, step: int, micro: int, j: int, labels: torch.Tensor, mask: torch.Tensor | None,
           group_samples: int, group_micro: int):
    """The `weigh` request of one micro-batch (weights.Weigh): its rows, losses and, when asked, pooled hidden
    states of the training forward go to TypeScript; its weights come back, checked. With several ranks, rank 0 asks
    for the whole micro-batch (every rank's rows, gathered) and sends each rank the answer."""
    spec = p.weigh
    assert spec is not None and p.indices is not None
    start, size = int(p.local.starts[j]), p.micro_sizes[j]
    lo, hi = int(p.local.lo[j]), int(p.local.hi[j])
    rank, world_size = shards.world()

    def ask(means: torch.Tensor, counts: torch.Tensor, outputs) -> torch.Tensor:
        rows = hi - lo
        part: dict[str, np.ndarray] = {
            "losses": means[:rows].float().cpu().numpy(), "tokens": counts[:rows].to(torch.int32).cpu().numpy(),
        }
        if spec.layer is not None:
            states = getattr(outputs, "hidden_states", None)
            if not states or not -len(states) <= spec.layer < len(states):
                raise StateError(f"weigh: the training forward gave {len(states or ())} hidden states; layer "
                                 f"{spec.layer} is not one of them")
            m = torch.ones_like(labels) if mask is None else mask
            if m.dim() != 2:
                raise StateError("weigh: packed sequences (4-D attention masks, neat_packing) cannot be pooled")
            pooled = pool(states[spec.layer].detach(), m, spec.pooling, labels)
            if spec.normalize:
                pooled = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
            part["embeddings"] = pooled[:rows].cpu().numpy()
        parts = shards.gather_to_zero(part)
        answer: tuple | None = None
        failure: Exception | None = None
        if rank == 0:
            assert parts is not None
            args: dict[str, Any] = {
                "step": step, "micro": micro,
                "indices": np.ascontiguousarray(p.indices[start : start + size], dtype=np.int32),
                **{k: np.concatenate([q[k] for q in parts]) for k in part},
                "group_samples": group_samples, "group_micro": group_micro,
            }
            try:
                answer = ("ok", _ask(loop, args, step, micro, size))
            except Exception as exc:
                if world_size == 1:
                    raise
                # Every rank raises the same error below, so the ranks stay in step.
                answer, failure = ("error", getattr(exc, "code", "op_failed"), str(exc)), exc
        answer = shards.from_zero(answer)
        if answer[0] != "ok":
            raise ExecutorError(f"weigh (step {step}, micro-batch {micro}) failed on rank 0: {answer[2]}",
                                code=answer[1]) from failure
        w = answer[1][lo:hi] if hi > lo else np.zeros(1, dtype=np.float32)  # a pad row weighs nothing
        return torch.as_tensor(w, dtype=torch.float32, device=means.device)

    return ask


def _ask(loop: Loop, args: dict[str, Any], step: int, micro: int, rows: int) -> np.ndarray:
    """One `weigh` request to TypeScript; its weights, checked."""
    t0 = time.perf_counter()
    answer = loop.request("weigh", args, WEIGH_TIMEOUT_S)
    loop.weigh_seconds += time.perf_counter() - t0
    loop.weigh_calls += 1
    w = answer.get("weights")
    if not isinstance(w, np.ndarray) or w.shape != (rows,):
        got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
        raise StateError(f"weigh (step {step}, micro-batch {micro}): expected {rows} weights, got {got}")
    if not np.isfinite(w).all():
        raise StateError(f"weigh (step {step}, micro-batch {micro}): weight {int(np.argmin(np.isfinite(w)))} is not finite")
    return w


def end_pass(run, log: bool, evaluate: bool, save: bool) -> dict:
    loop = _loop(run)
    if loop.current is None:
        raise StateError("end_pass: no pass begun")
    trainer = run.trainer
    trainer.control = trainer.callback_handler.on_epoch_end(trainer.args, trainer.state, trainer.control)
    trainer.control.should_log = log
    trainer.control.should_evaluate = evaluate
    trainer.control.should_save = save
    metrics = _log_save_evaluate(run, loop)
    loop.current = None
    return {"eval_loss": None if not metrics else metrics.get("eval_loss")}


def evaluate(run) -> dict:
    loop = _loop(run)
    trainer = run.trainer
    metrics = trainer._evaluate(None, None)
    trainer._determine_best_metric(metrics=metrics, trial=None)
    del loop
    return {"metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}}


def save_checkpoint(run) -> dict:
    loop = _loop(run)
    trainer = run.trainer
    trainer._save_checkpoint(loop.model, None)
    trainer.control = trainer.callback_handler.on_save(trainer.args, trainer.state, trainer.control)
    return {"global_step": trainer.state.global_step}


def finish(run) -> dict:
    """Epilogue of `_inner_training_loop`, then the tail of run_sft/run_pt (save model, metrics, state, plots)."""
    from transformers.trainer_utils import speed_metrics

    loop = _loop(run)
    if loop.current is not None:
        raise StateError("finish: the current pass was not ended")
    trainer = run.trainer
    args = trainer.args
    trainer._total_loss_scalar += loop.tr_loss.item()
    steps = max(trainer.state.global_step, 0.001)
    train_loss = trainer._total_loss_scalar / steps
    metrics = speed_metrics(
        "train", loop.start_time, num_samples=args.train_batch_size * args.gradient_accumulation_steps
        * trainer.state.max_steps, num_steps=trainer.state.max_steps,
    )
    trainer.store_flos()
    metrics["total_flos"] = trainer.state.total_flos
    metrics["train_loss"] = train_loss
    trainer.is_in_train = False
    trainer._memory_tracker.stop_and_update_metrics(metrics)
    trainer.log(metrics)
    trainer.control = trainer.callback_handler.on_train_end(args, trainer.state, trainer.control)

    trainer.save_model()
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if trainer.is_world_process_zero() and run.finetuning_args.plot_loss:
        from llamafactory.extras.ploting import plot_loss

        keys = ["loss"] + (["eval_loss", "eval_accuracy"] if run.stage == "sft" else ["eval_loss"])
        plot_loss(args.output_dir, keys=keys)
    eval_metrics = None
    if args.do_eval and run.eval_dataset is not None:
        eval_metrics = trainer.evaluate(metric_key_prefix="eval")
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    return {
        "train_loss": train_loss,
        "global_step": trainer.state.global_step,
        "eval_loss": None if not eval_metrics else eval_metrics.get("eval_loss"),
        "step_seconds_median": float(np.median(loop.step_seconds)) if loop.step_seconds else None,
    }


def _log_save_evaluate(run, loop: Loop) -> dict | None:
    """Trainer._maybe_log_save_evaluate with TypeScript's flags already in `control`."""
    trainer = run.trainer
    control = trainer.control
    if control.should_log and trainer.state.global_step > trainer._globalstep_last_logged:
        tr_loss_scalar = trainer._nested_gather(loop.tr_loss).mean().item()
        loop.tr_loss -= loop.tr_loss
        logs: dict[str, float] = {
            "loss": round(tr_loss_scalar / (trainer.state.global_step - trainer._globalstep_last_logged), 4)
        }
        gn = loop.grad_norm
        if gn is not None:
            logs["grad_norm"] = gn.item() if isinstance(gn, torch.Tensor) else gn
        logs["learning_rate"] = loop.learning_rate if loop.learning_rate is not None else trainer._get_learning_rate()
        trainer._total_loss_scalar += tr_loss_scalar
        trainer._globalstep_last_logged = trainer.state.global_step
        trainer.store_flos()
        trainer.log(logs, loop.start_time)
    metrics = None
    if trainer.control.should_evaluate:
        metrics = trainer._evaluate(None, None)
        trainer._determine_best_metric(metrics=metrics, trial=None)
    if trainer.control.should_save:
        trainer._save_checkpoint(loop.model, None)
        trainer.control = trainer.callback_handler.on_save(trainer.args, trainer.state, trainer.control)
    return metrics


def _loop(run) -> Loop:
    if run.loop is None:
        raise StateError("call `begin` first")
    return run.loop
