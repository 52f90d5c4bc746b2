"""Read-only model queries used by decisions. They never touch the training RNG stream or the weights."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .errors import StateError
from .weights import token_losses


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
def eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()


def dataset_for(run, split: str):
    if split == "train":
        return run.train_dataset
    if split == "eval":
        if run.eval_dataset is None:
            raise StateError("split 'eval' requested but the config has no eval_dataset")
        if isinstance(run.eval_dataset, dict):
            raise StateError("per-dataset eval sets (eval_on_each_dataset) are not supported here")
        return run.eval_dataset
    raise StateError(f"unknown split '{split}' (expected 'train' or 'eval')")


def collate(run, dataset, idx: list[int]) -> dict:
    batch = run.trainer.data_collator([dataset[i] for i in idx])
    return run.trainer._prepare_inputs(batch)


def sample_losses(run, split: str, indices: np.ndarray, batch_size: int) -> np.ndarray:
    """Per-sample mean token loss (the label mask of training), batched, eval mode, no grad."""
    dataset = dataset_for(run, split)
    n = len(dataset)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise StateError(f"losses: index out of range [0, {n}) for split '{split}'")
    model = run.trainer.model
    out = np.empty(indices.size, dtype=np.float32)
    with preserved_rng(), eval_mode(model):
        for start in range(0, indices.size, batch_size):
            idx = indices[start : start + batch_size].tolist()
            inputs = collate(run, dataset, idx)
            labels = inputs.pop("labels")
            logits = model(**inputs).logits
            ce, valid = token_losses(logits, labels)
            per_sample = ce.sum(dim=1) / valid.sum(dim=1).clamp(min=1)
            out[start : start + len(idx)] = per_sample.float().cpu().numpy()
    return out


def sample_order(run, epochs: list[int]) -> np.ndarray:
    """The order in which LLaMA-Factory's own train sampler visits samples in each epoch.

    We ask the trainer's real dataloader (accelerate's seedable sampler, or LLaMA-Factory's sequential sampler
    when `disable_shuffling`), so TypeScript's static plan equals `llamafactory-cli train` without re-implementing
    torch's randperm.
    """
    if "train_dataloader" not in run.extra:
        with preserved_rng():
            run.extra["train_dataloader"] = run.trainer.get_train_dataloader()
    loader = run.extra["train_dataloader"]
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
    orders = []
    with preserved_rng():
        for e in epochs:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(e)
            orders.append(np.fromiter(iter(sampler), dtype=np.int32))
    return np.concatenate(orders) if orders else np.zeros(0, dtype=np.int32)
