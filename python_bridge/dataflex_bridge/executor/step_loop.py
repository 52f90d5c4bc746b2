"""An explicit optimizer-step loop over LLaMA-Factory's own trainer.

TypeScript sends the plan (which samples form each micro-batch and step); this module executes it with the
trainer's `training_step`, optimizer, scheduler, accelerator and callbacks, in the order Hugging Face's
`Trainer._inner_training_loop` uses (see docs/executor.md). It never calls `trainer.train()`, so no sampler
runs ahead of the plan: a decision made after step s sees the model exactly as step s left it.

Two details decide bit-exact parity with `llamafactory-cli train`:
  * `num_items_in_batch` is the label-token count of the whole gradient-accumulation group
    (`trainer.get_batch_samples` computes it);
  * `iter(DataLoader)` draws one base seed from the global torch RNG per pass over the data, so every pass
    builds one DataLoader and iterates it once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .errors import StateError


class PlanBatchSampler(Sampler[list[int]]):
    """Yields the planned micro-batches, in order."""

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


@dataclass
class Pass:
    epoch: int
    steps: list[int]                  # micro-batches per optimizer step
    micro_in_epoch: int               # denominator of state.epoch
    micro_done: int                   # micro-batches consumed so far in this epoch
    iterator: Iterator[Any]
    next_step: int = 0
    weights: np.ndarray | None = None  # per planned sample, aligned with the pass's flat index list
    micro_sizes: list[int] = field(default_factory=list)
    micro_index: int = 0               # next micro-batch, for slicing `weights`
    weight_offset: int = 0


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


def begin(run, total_steps: int) -> dict:
    """Optimizer + scheduler for `total_steps`, fresh TrainerState, on_train_begin (HF's loop prologue)."""
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

    model = trainer._wrap_model(trainer.model_wrapped)
    trainer.model.train()
    model, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
    if model is not trainer.model:
        trainer.model_wrapped = model

    trainer.state.epoch = 0
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
    return {"total_steps": total_steps}


def begin_pass(run, epoch: int, indices: np.ndarray, micro_sizes: np.ndarray, step_sizes: np.ndarray,
               micro_in_epoch: int | None, micro_done: int, weights: np.ndarray | None,
               reduction: str = "token_mean") -> dict:
    loop = _loop(run)
    if reduction != "token_mean":  # TODO(wave1-D): sample_mean
        raise StateError(f"begin_pass: reduction {reduction!r} is not implemented yet")
    if loop.current is not None:
        raise StateError("begin_pass: the previous pass was not ended")
    n = len(run.train_dataset)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise StateError(f"begin_pass: sample index out of range [0, {n})")
    if int(micro_sizes.sum()) != indices.size or int(step_sizes.sum()) != micro_sizes.size:
        raise StateError("begin_pass: micro-batch sizes / step sizes do not add up to the plan")
    if weights is not None and weights.size != indices.size:
        raise StateError("begin_pass: weights must have one entry per planned sample")
    trainer = run.trainer
    args = trainer.args
    trainer.control = trainer.callback_handler.on_epoch_begin(args, trainer.state, trainer.control)
    loader = DataLoader(
        run.train_dataset,
        batch_sampler=PlanBatchSampler(indices, micro_sizes),
        collate_fn=trainer.data_collator,
        num_workers=args.dataloader_num_workers,
        pin_memory=args.dataloader_pin_memory,
    )
    # One global-RNG draw per pass, exactly like the Trainer's iter(epoch_dataloader).
    iterator = iter(loader)
    loop.current = Pass(
        epoch=epoch,
        steps=step_sizes.tolist(),
        micro_in_epoch=int(micro_in_epoch or micro_sizes.size),
        micro_done=micro_done,
        iterator=iterator,
        weights=weights,
        micro_sizes=micro_sizes.tolist(),
    )
    return {"steps": len(loop.current.steps)}


def train_steps(run, count: int, log: np.ndarray, evaluate: np.ndarray, save: np.ndarray,
                on_step=None) -> dict:
    """Run the next `count` optimizer steps of the current pass.

    `log`/`evaluate`/`save` are TypeScript's per-step decisions (its schedule mirrors DefaultFlowCallback).
    """
    loop = _loop(run)
    p = loop.current
    if p is None:
        raise StateError("train_steps: no pass begun")
    if p.next_step + count > len(p.steps):
        raise StateError(f"train_steps: {count} steps requested, {len(p.steps) - p.next_step} left in this pass")
    trainer = run.trainer
    args = trainer.args
    model = loop.model
    out_loss = np.zeros(count, dtype=np.float64)
    out_gn = np.full(count, np.nan, dtype=np.float64)
    out_lr = np.zeros(count, dtype=np.float64)
    out_tokens = np.zeros(count, dtype=np.int64)
    out_eval = np.full(count, np.nan, dtype=np.float64)
    out_sec = np.zeros(count, dtype=np.float64)
    op_start = time.perf_counter()
    stop = False
    done = 0
    for k in range(count):
        t0 = time.perf_counter()
        n_micro = p.steps[p.next_step]
        batches, num_items = trainer.get_batch_samples(p.iterator, n_micro, args.device)
        if len(batches) != n_micro:
            raise StateError("train_steps: the data loader ran out before the planned step")
        trainer.current_gradient_accumulation_steps = len(batches)
        step_loss = torch.tensor(0.0, device=args.device)
        for i, inputs in enumerate(batches):
            if i == 0:
                trainer.control = trainer.callback_handler.on_step_begin(args, trainer.state, trainer.control)
            ctx = (
                functools.partial(trainer.accelerator.no_sync, model=model)
                if i != len(batches) - 1
                else contextlib.nullcontext
            )
            with ctx(), _weights_scope(run, p):
                tr_loss_step = trainer.training_step(model, inputs, num_items)
            if args.logging_nan_inf_filter and (torch.isnan(tr_loss_step) or torch.isinf(tr_loss_step)):
                # HF replaces a non-finite loss by the running mean of the logged window.
                tr_loss_step = loop.tr_loss / (1 + trainer.state.global_step - trainer._globalstep_last_logged)
            loop.tr_loss = loop.tr_loss + tr_loss_step
            step_loss = step_loss + tr_loss_step
            trainer.current_flos += float(trainer.floating_point_ops(inputs))
            p.micro_done += 1
            if i != len(batches) - 1:
                trainer.control = trainer.callback_handler.on_substep_end(args, trainer.state, trainer.control)

        if args.max_grad_norm is not None and args.max_grad_norm > 0:
            loop.grad_norm = trainer.accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
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
        trainer.control.should_log = bool(log[k])
        trainer.control.should_evaluate = bool(evaluate[k])
        trainer.control.should_save = bool(save[k])
        metrics = _log_save_evaluate(run, loop)
        p.next_step += 1
        done += 1

        out_loss[k] = float(step_loss.item())
        gn = loop.grad_norm
        if gn is not None:
            out_gn[k] = float(gn.item() if isinstance(gn, torch.Tensor) else gn)
        out_lr[k] = float(loop.learning_rate)
        out_tokens[k] = int(num_items.item() if isinstance(num_items, torch.Tensor) else (num_items or 0))
        if metrics and "eval_loss" in metrics:
            out_eval[k] = float(metrics["eval_loss"])
        out_sec[k] = time.perf_counter() - t0
        loop.step_seconds.append(out_sec[k])
        if on_step is not None:
            on_step({
                "step": trainer.state.global_step, "loss": out_loss[k], "lr": out_lr[k],
                "grad_norm": None if math.isnan(out_gn[k]) else out_gn[k], "epoch": trainer.state.epoch,
            })
        if trainer.control.should_training_stop:
            stop = True
            break
    return {
        "done": done,
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        "loss": out_loss[:done],
        "grad_norm": out_gn[:done],
        "lr": out_lr[:done],
        "tokens": out_tokens[:done],
        "eval_loss": out_eval[:done],
        "seconds": out_sec[:done],
        "op_seconds": time.perf_counter() - op_start,
        "should_training_stop": stop,
    }


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


@contextlib.contextmanager
def _weights_scope(run, p: Pass):
    """Expose this micro-batch's per-sample weights to the trainer's loss (see weights.py)."""
    if p.weights is None:
        yield
        return
    from .weights import active_weights

    size = p.micro_sizes[p.micro_index]
    w = p.weights[p.weight_offset : p.weight_offset + size]
    p.weight_offset += size
    p.micro_index += 1
    with active_weights(run, torch.as_tensor(np.ascontiguousarray(w), dtype=torch.float32)):
        yield


def _loop(run) -> Loop:
    if run.loop is None:
        raise StateError("call `begin` first")
    return run.loop
