"""Executor ops: TypeScript decides, this package executes with LLaMA-Factory's own trainer.

Every op is `handler(args, ctx) -> dict`; arrays arrive and leave as numpy arrays (raw frames on the wire).
One run per sidecar process.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import embeddings, gradients, model_ops, step_loop
from . import generation
from .build import Run, build_run
from .errors import StateError

_RUN: Run | None = None


def _run() -> Run:
    if _RUN is None:
        raise StateError("no run loaded: call `load` first")
    return _RUN


def _int_array(args: dict, key: str, dtype=np.int64) -> np.ndarray:
    value = args.get(key)
    if value is None:
        raise StateError(f"missing array argument '{key}'")
    return np.asarray(value).astype(dtype, copy=False).reshape(-1)


def _flags(args: dict, key: str, count: int) -> np.ndarray:
    value = args.get(key)
    if value is None:
        return np.zeros(count, dtype=np.uint8)
    arr = np.asarray(value).reshape(-1)
    if arr.size != count:
        raise StateError(f"'{key}' must have {count} entries, got {arr.size}")
    return arr


def op_load(args: dict, ctx: Any) -> dict:
    global _RUN
    if _RUN is not None:
        raise StateError("a run is already loaded in this sidecar")
    config = args.get("config")
    if not isinstance(config, dict):
        raise StateError("load: 'config' must be a map of LLaMA-Factory arguments")
    t0 = time.perf_counter()
    run = build_run(config)
    _RUN = run
    ta = run.training_args
    return {
        "load_seconds": time.perf_counter() - t0,
        "stage": run.stage,
        "num_train": len(run.train_dataset),
        "num_eval": 0 if run.eval_dataset is None or isinstance(run.eval_dataset, dict) else len(run.eval_dataset),
        "world_size": ta.world_size,
        "per_device_train_batch_size": ta.per_device_train_batch_size,
        "gradient_accumulation_steps": ta.gradient_accumulation_steps,
        "num_train_epochs": float(ta.num_train_epochs),
        "max_steps": ta.max_steps,
        "dataloader_drop_last": bool(ta.dataloader_drop_last),
        "seed": ta.seed,
        "output_dir": ta.output_dir,
        "logging_strategy": str(ta.logging_strategy.value),
        "logging_steps": float(ta.logging_steps),
        "logging_first_step": bool(ta.logging_first_step),
        "eval_strategy": str(ta.eval_strategy.value),
        "eval_steps": None if ta.eval_steps is None else float(ta.eval_steps),
        "eval_delay": float(ta.eval_delay or 0),
        "save_strategy": str(ta.save_strategy.value),
        "save_steps": float(ta.save_steps),
        "do_eval": bool(ta.do_eval),
        "disable_shuffling": bool(run.finetuning_args.disable_shuffling),
        "trainable_params": int(sum(p.numel() for p in run.trainer.model.parameters() if p.requires_grad)),
    }


def op_sample_order(args: dict, ctx: Any) -> dict:
    epochs = [int(e) for e in _int_array(args, "epochs").tolist()]
    return {"order": model_ops.sample_order(_run(), epochs), "n": len(_run().train_dataset)}


def op_begin(args: dict, ctx: Any) -> dict:
    return step_loop.begin(_run(), int(args.get("total_steps", 0)))


def op_begin_pass(args: dict, ctx: Any) -> dict:
    weights = args.get("weights")
    return step_loop.begin_pass(
        _run(),
        epoch=int(args.get("epoch", 0)),
        indices=_int_array(args, "indices"),
        micro_sizes=_int_array(args, "micro_sizes"),
        step_sizes=_int_array(args, "step_sizes"),
        micro_in_epoch=args.get("micro_in_epoch"),
        micro_done=int(args.get("micro_done", 0)),
        weights=None if weights is None else np.asarray(weights, dtype=np.float32).reshape(-1),
        reduction=args.get("reduction", "token_mean"),
    )


def op_train_steps(args: dict, ctx: Any) -> dict:
    count = int(args.get("count", 0))
    emit = getattr(ctx, "emit", None)
    return step_loop.train_steps(
        _run(),
        count,
        log=_flags(args, "log", count),
        evaluate=_flags(args, "evaluate", count),
        save=_flags(args, "save", count),
        on_step=(lambda rec: emit("step", rec)) if emit else None,
    )


def op_end_pass(args: dict, ctx: Any) -> dict:
    return step_loop.end_pass(
        _run(), log=bool(args.get("log")), evaluate=bool(args.get("evaluate")), save=bool(args.get("save"))
    )


def op_evaluate(args: dict, ctx: Any) -> dict:
    return step_loop.evaluate(_run())


def op_save_checkpoint(args: dict, ctx: Any) -> dict:
    return step_loop.save_checkpoint(_run())


def op_finish(args: dict, ctx: Any) -> dict:
    return step_loop.finish(_run())


def op_losses(args: dict, ctx: Any) -> dict:
    run = _run()
    rows = args.get("batch_size")
    losses = model_ops.sample_losses(
        run,
        str(args.get("split", "train")),
        _int_array(args, "indices"),
        batch_size=int(rows) if rows else None,
        max_tokens=int(args["max_tokens"]) if args.get("max_tokens") else None,
    )
    return {"losses": losses}


def op_gradients(args: dict, ctx: Any) -> dict:
    run = _run()
    chunk = args.get("chunk_size")
    projector = args.get("projector")
    return gradients.op_result(
        run,
        str(args.get("split", "train")),
        _int_array(args, "indices"),
        gradients.GradientArgs(
            proj_dim=int(args.get("proj_dim", 4096)),
            seed=int(args.get("seed", 0)),
            precondition=str(args.get("precondition", "sgd")),  # type: ignore[arg-type]
            normalize=bool(args.get("normalize", False)),
            projector=str(projector) if projector is not None else gradients.GradientArgs.projector,  # type: ignore[arg-type]
            chunk_size=int(chunk) if chunk is not None else gradients.GradientArgs.chunk_size,
        ),
    )


def op_embeddings(args: dict, ctx: Any) -> dict:
    run = _run()
    batch_size = args.get("batch_size") or run.training_args.per_device_eval_batch_size or 8
    model = args.get("model")
    out = embeddings.sample_embeddings(
        run,
        str(args.get("split", "train")),
        _int_array(args, "indices"),
        embeddings.EmbeddingArgs(
            layer=int(args.get("layer", -1)),
            pooling=str(args.get("pooling", "mask_mean")),  # type: ignore[arg-type]
            normalize=bool(args.get("normalize", False)),
            model=str(model) if model else None,
            batch_size=int(batch_size),
        ),
    )
    return {"embeddings": out}


HANDLERS = {
    "load": op_load,
    "sample_order": op_sample_order,
    "begin": op_begin,
    "begin_pass": op_begin_pass,
    "train_steps": op_train_steps,
    "end_pass": op_end_pass,
    "evaluate": op_evaluate,
    "save_checkpoint": op_save_checkpoint,
    "finish": op_finish,
    "losses": op_losses,
    "gradients": op_gradients,
    "embeddings": op_embeddings,
}

# NICE's generate / reward / policy_gradients (generation.py), bound to this sidecar's run.
HANDLERS.update(generation.handlers(_run))
