"""Executor ops: TypeScript decides, this package executes with LLaMA-Factory's own trainer.

The ops are those of the catalog (src/bridge/ops.ts, exported to ../ops.schema.json): `Executor.handlers()` maps
each catalog name to the method `op_<name>` and attaches the name's args schema, which the server checks before
the handler runs. So a handler reads its args as sent — TypeScript filled in every default — and an op missing on
either side fails when the table is built. Arrays arrive and leave as numpy arrays (raw frames on the wire).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .. import catalog
from ..server import Op
from . import embeddings, generation, gradients, model_ops, router, step_loop
from .build import Run, build_run
from .errors import StateError


def _indices(value: np.ndarray) -> np.ndarray:
    return np.asarray(value).astype(np.int64, copy=False).reshape(-1)


def _projection(args: dict, precondition: str) -> gradients.GradientArgs:
    """The projection args gradients and policy_gradients share (`projection` in src/bridge/ops.ts)."""
    return gradients.GradientArgs(
        proj_dim=args["proj_dim"],
        seed=args["seed"],
        precondition=precondition,
        normalize=args["normalize"],
        projector=args["projector"],
        chunk_size=args["chunk_size"],
    )


def _flags(args: dict, key: str, count: int) -> np.ndarray:
    arr = args[key]
    if arr.size != count:
        raise StateError(f"'{key}' must have {count} entries, got {arr.size}")
    return arr


# `step` events only drive the progress display (train_steps' result carries every step), so a few a second do: an
# event per step would wake the socket thread, and contend for the GIL with the step loop, hundreds of times a second.
STEP_EVENT_INTERVAL_S = 0.25


def _throttled(fn, interval_s: float):
    """fn, called at most once per interval_s (the first call always)."""
    last = -math.inf

    def call(value) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= interval_s:
            last = now
            fn(value)

    return call


# Ops answered on the socket thread, so they reach a run while train_steps holds the worker.
INLINE_OPS = frozenset({"request_stop"})


class Executor:
    """The sidecar's run (at most one per process) and the catalog's ops on it."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.stop_requested = False  # set by request_stop; read by train_steps before each step, never cleared

    def handlers(self) -> dict[str, Op]:
        """One worker op per catalog op TypeScript calls, its args validated against the catalog first."""
        names = catalog.sidecar_ops()
        methods = {name[3:] for name in dir(self) if name.startswith("op_")}
        if methods != set(names):
            raise RuntimeError(
                "the executor's ops differ from the catalog (src/bridge/ops.ts → ops.schema.json): "
                f"only in the catalog: {sorted(set(names) - methods)}, only here: {sorted(methods - set(names))}"
            )
        return {
            name: Op(getattr(self, f"op_{name}"), "inline" if name in INLINE_OPS else "worker", check=catalog.args_check(name))
            for name in names
        }

    def current(self) -> Run:
        if self.run is None:
            raise StateError("no run loaded: call `load` first")
        return self.run

    # ------------------------------------------------------------------------------------------- training

    def op_load(self, args: dict, ctx: Any) -> dict:
        if self.run is not None:
            raise StateError("a run is already loaded in this sidecar")
        t0 = time.perf_counter()
        run = build_run(args["config"], domains=args.get("domains"), freeze_gate=args["freeze_gate"],
                        raw_rows=args.get("raw_rows"), dataset_rows=args["dataset_rows"])
        self.run = run
        ta = run.training_args
        return {
            "load_seconds": time.perf_counter() - t0,
            "stage": run.stage,
            "num_train": len(run.train_dataset),
            "num_eval": 0 if run.eval_rows is None else len(run.eval_rows),
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
            "domains": None if run.domains is None else run.domains.report(),
            "raw_rows": None if run.raw_rows is None else run.raw_rows.report(),
            "dataset_rows": None if run.dataset_rows is None else run.dataset_rows.report(),
            "eval_splits": [{"name": name, "rows": len(rows)} for name, rows in run.eval_splits.items()],
            "frozen_params": run.frozen_params,
            "resume_from_checkpoint": ta.resume_from_checkpoint or None,
        }

    def op_sample_order(self, args: dict, ctx: Any) -> dict:
        run = self.current()
        return {"order": model_ops.sample_order(run, args["epochs"].tolist()), "n": len(run.train_dataset)}

    def op_begin(self, args: dict, ctx: Any) -> dict:
        return step_loop.begin(self.current(), args["total_steps"])

    def op_begin_pass(self, args: dict, ctx: Any) -> dict:
        weights = args.get("weights")
        return step_loop.begin_pass(
            self.current(),
            epoch=args["epoch"],
            indices=_indices(args["indices"]),
            micro_sizes=_indices(args["micro_sizes"]),
            step_sizes=_indices(args["step_sizes"]),
            micro_in_epoch=args["micro_in_epoch"],
            micro_done=args["micro_done"],
            weights=weights,
            reduction=args["reduction"],
            reference_model=args.get("reference_model"),
            weigh=args.get("weigh"),
            rng_state=args.get("rng_state"),
        )

    def op_train_steps(self, args: dict, ctx: Any) -> dict:
        count = args["count"]
        emit = getattr(ctx, "emit", None)
        return step_loop.train_steps(
            self.current(),
            count,
            log=_flags(args, "log", count),
            evaluate=_flags(args, "evaluate", count),
            save=_flags(args, "save", count),
            on_step=_throttled(lambda rec: emit("step", rec), STEP_EVENT_INTERVAL_S) if emit else None,
            request=getattr(ctx, "request", None),
            check_cancelled=getattr(ctx, "check_cancelled", None),
            stop_requested=lambda: self.stop_requested,
        )

    def op_request_stop(self, args: dict, ctx: Any) -> dict:
        # A flag only (inline: microseconds, no collective); train_steps acts on it at its next safe point.
        self.stop_requested = True
        return {}

    def op_end_pass(self, args: dict, ctx: Any) -> dict:
        return step_loop.end_pass(self.current(), log=args["log"], evaluate=args["evaluate"], save=args["save"])

    def op_evaluate(self, args: dict, ctx: Any) -> dict:
        return step_loop.evaluate(self.current())

    def op_save_checkpoint(self, args: dict, ctx: Any) -> dict:
        return step_loop.save_checkpoint(self.current())

    def op_finish(self, args: dict, ctx: Any) -> dict:
        return step_loop.finish(self.current())

    # ---------------------------------------------------------------------------------------- model ops

    def op_losses(self, args: dict, ctx: Any) -> dict:
        losses = model_ops.sample_losses(
            self.current(),
            args["split"],
            _indices(args["indices"]),
            batch_size=args.get("batch_size"),
            max_tokens=args.get("max_tokens"),
        )
        return {"losses": losses}

    def op_gradients(self, args: dict, ctx: Any) -> dict:
        return gradients.op_result(
            self.current(),
            args["split"],
            _indices(args["indices"]),
            _projection(args, args["precondition"]),
        )

    def op_embeddings(self, args: dict, ctx: Any) -> dict:
        run = self.current()
        out = embeddings.sample_embeddings(
            run,
            args["split"],
            _indices(args["indices"]),
            embeddings.EmbeddingArgs(
                layer=args["layer"],
                pooling=args["pooling"],
                normalize=args["normalize"],
                model=args.get("model"),
                batch_size=args.get("batch_size") or run.training_args.per_device_eval_batch_size,
            ),
        )
        return {"embeddings": out}

    def op_router_loads(self, args: dict, ctx: Any) -> dict:
        run = self.current()
        t0 = time.perf_counter()
        got = router.sample_router_loads(
            run,
            args["split"],
            _indices(args["indices"]),
            batch_size=args.get("batch_size") or run.training_args.per_device_eval_batch_size,
        )
        return {"loads": got.loads, "layers": got.layers, "experts": got.experts, "top_k": got.top_k,
                "seconds": time.perf_counter() - t0}

    # ------------------------------------------------------------------------ NICE (generation.py)

    def op_generate(self, args: dict, ctx: Any) -> dict:
        return generation.generate(
            self.current(),
            args["split"],
            _indices(args["indices"]),
            generation.GenerateArgs(
                max_new_tokens=args["max_new_tokens"],
                temperature=float(args["temperature"]),
                samples=args["samples"],
                seed=args["seed"],
                model=args.get("model"),
                max_prompt_length=args.get("max_prompt_length"),
            ),
        )

    def op_reward(self, args: dict, ctx: Any) -> dict:
        t0 = time.perf_counter()
        scores, reencoded = generation.rewards(
            self.current(),
            generation.ragged(args["prompt_ids"], args["prompt_lengths"], "prompt"),
            generation.ragged(args["response_ids"], args["response_lengths"], "response"),
            args["samples"],
            args["model"],
            args["batch_size"],
        )
        return {"rewards": scores, "reencoded": reencoded, "seconds": time.perf_counter() - t0}

    def op_policy_gradients(self, args: dict, ctx: Any) -> dict:
        t0 = time.perf_counter()
        grads, total, zero_rows = generation.policy_gradients(
            self.current(),
            generation.ragged(args["prompt_ids"], args["prompt_lengths"], "prompt"),
            generation.ragged(args["response_ids"], args["response_lengths"], "response"),
            np.asarray(args["rewards"], dtype=np.float64).reshape(-1),
            args["samples"],
            _projection(args, "sgd"),
            baseline=args["baseline"],
        )
        return {"grads": grads, "trainable_params": total, "zero_rows": zero_rows, "seconds": time.perf_counter() - t0}
