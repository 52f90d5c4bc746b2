"""Separate local models the ops read but never train (embedding models, DoReMi's reference), loaded once per run.

One loader for all of them: by real path into the cache the caller names, frozen, in eval mode, on the training
model's device and dtype. A LoRA adapter directory (adapter_config.json) is applied to the run's base model and
merged, where the caller allows it.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from .errors import ConfigError


def frozen_model(run, path: str, cache: dict[str, Any], what: str, *, adapters: bool, check: Callable[[Any], None]):
    """The model of `path` (`what` names it in errors, e.g. "embeddings: model"); `check` vets it before caching."""
    key = os.path.realpath(path)
    if key in cache:
        return cache[key]
    if not os.path.isdir(key):
        raise ConfigError(f"{what} '{path}' is not a local model directory")
    from transformers import AutoModelForCausalLM

    live = next(run.trainer.model.parameters())
    dtype = getattr(run.model_args, "compute_dtype", None) or live.dtype
    adapter = adapters and os.path.isfile(os.path.join(key, "adapter_config.json"))
    try:
        if adapter:
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(run.model_args.model_name_or_path, dtype=dtype)
            model = PeftModel.from_pretrained(base, key).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(key, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        kind = f"LoRA adapter on '{run.model_args.model_name_or_path}'" if adapter else "model"
        raise ConfigError(f"{what}: cannot load '{path}' ({kind}): {exc}") from exc
    model.to(live.device).eval().requires_grad_(False)
    check(model)
    cache[key] = model
    return model
