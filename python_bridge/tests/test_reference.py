"""Excess loss over a reference model (begin_pass's reference_model; executor/reference.py) on the tiny model."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

import torch.nn.functional as F  # noqa: E402

from dataflex_bridge import executor  # noqa: E402
from dataflex_bridge.executor.errors import ConfigError  # noqa: E402
from dataflex_bridge.executor.model_ops import preserved_rng  # noqa: E402

from close import assert_close_scaled  # noqa: E402
from tiny_run import DEMO, TINY, run_op, tiny_config  # noqa: E402

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="models/tiny-qwen2 missing (run `npm run setup`)")

# Two optimizer steps of GA 2 over uneven micro-batches: 7 and 5 samples.
INDICES = np.array([9, 2, 17, 4, 0, 23, 11, 6, 14, 1, 20, 8], dtype=np.int32)
MICRO = np.array([3, 4, 2, 3], dtype=np.int32)
STEPS = np.array([2, 2], dtype=np.int32)
FIRST = 7
# Two computations of per-token CE that differ in batching/padding and the LoRA path (merged or not): float rounding.
REL = 1e-5


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> str:
    """A second tiny model: the same tokenizer, other random weights."""
    from dataflex_bridge.tools.make_tiny_model import build

    out = tmp_path_factory.mktemp("models") / "seed1"
    build(out, DEMO, "tiny", "qwen2", 1, 1024, None, "causal")
    return str(out)


def load(tmp_path_factory, **extra) -> executor.Executor:
    ex = executor.Executor()
    run_op(ex, "load", {"config": tiny_config(str(tmp_path_factory.mktemp("run")), eval_strategy="no", **extra)})
    run_op(ex, "begin", {"total_steps": int(STEPS.size)})
    return ex


def begin_pass(ex, **extra) -> None:
    run_op(ex, "begin_pass", {"epoch": 0, "indices": INDICES, "micro_sizes": MICRO, "step_sizes": STEPS,
                              "micro_in_epoch": int(MICRO.size), **extra})


def train(ex, count: int) -> dict:
    flags = np.zeros(count, dtype=np.uint8)
    return run_op(ex, "train_steps", {"count": count, "log": flags, "evaluate": flags, "save": flags})


def token_ce(model, row: dict) -> torch.Tensor:
    """Per-token next-token CE of one row alone (eval mode, no grad), 0 off its labels."""
    was = model.training
    model.eval()
    try:
        with preserved_rng(), torch.no_grad():
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
    finally:
        model.train(was)
    return F.cross_entropy(logits, torch.tensor(row["labels"][1:]), ignore_index=-100, reduction="none")


def expected_excess(run, reference, indices) -> np.ndarray:
    """Σ_t max(ℓ_t − ℓ_ref,t, 0) per row, each row through both models alone."""
    model = run.trainer.model
    return np.array([float((token_ce(model, run.train_dataset[i]) - token_ce(reference, run.train_dataset[i]))
                           .clamp(min=0).sum()) for i in indices.tolist()])


def causal_lm(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_the_reference_leaves_training_untouched(tmp_path_factory, other_model) -> None:
    """The same plan with and without a reference (LoRA dropout on): bit-identical training; the excess only with one."""
    plain, referenced = load(tmp_path_factory), load(tmp_path_factory)
    with preserved_rng():  # the two runs share the global RNG (dropout, the pass's draw): each starts from one state
        begin_pass(plain)
        a = train(plain, 2)
    begin_pass(referenced, reference_model=other_model)
    b = train(referenced, 2)
    assert "sample_excess_sum" not in a
    for key in ("loss", "grad_norm", "lr", "tokens", "sample_loss_sum", "sample_tokens"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    excess = b["sample_excess_sum"]
    assert excess.dtype == np.float32 and excess.shape == (INDICES.size,)
    assert np.isfinite(excess).all() and (excess >= 0).all() and excess.max() > 0
    # Clipped token terms: never above the sample's own CE sum.
    assert (excess <= b["sample_loss_sum"] * (1 + REL)).all()


def test_reference_equal_to_the_initial_model_gives_zero_excess(tmp_path_factory) -> None:
    """Reference = the base model: a fresh LoRA (B = 0) changes nothing until the first optimizer step."""
    ex = load(tmp_path_factory)
    begin_pass(ex, reference_model=str(TINY))
    out = train(ex, 1)
    assert out["sample_excess_sum"].shape == (FIRST,)
    assert np.abs(out["sample_excess_sum"]).max() <= REL * out["sample_loss_sum"].max()


@pytest.mark.parametrize("weighted", [False, True], ids=["hf_loss", "sample_mean"])
def test_excess_equals_a_separate_computation(tmp_path_factory, other_model, weighted) -> None:
    """Against another model, step by step (the model moves in between), on both loss paths of weights.py."""
    ex = load(tmp_path_factory, lora_dropout=0.0)
    run = ex.current()
    extra = {"weights": np.linspace(0.5, 2.0, INDICES.size, dtype=np.float32), "reduction": "sample_mean"} if weighted else {}
    begin_pass(ex, reference_model=other_model, **extra)
    reference = causal_lm(other_model)
    for part in (INDICES[:FIRST], INDICES[FIRST:]):
        want = expected_excess(run, reference, part)
        got = train(ex, 1)["sample_excess_sum"]
        assert want.max() > 0
        assert_close_scaled(got, want, REL)
    run_op(ex, "end_pass", {})
    # Loaded once per run per real path.
    assert list(run.caches.reference_models) == [os.path.realpath(other_model)]


def test_a_lora_adapter_directory_as_reference(tmp_path_factory) -> None:
    """An adapter saved from a short run: the reference is the run's base model with it merged."""
    source = load(tmp_path_factory, lora_dropout=0.0)
    run_op(source, "begin_pass", {"epoch": 0, "indices": INDICES[:8], "micro_sizes": np.array([4, 4], dtype=np.int32),
                                  "step_sizes": np.array([2], dtype=np.int32), "micro_in_epoch": 2})
    train(source, 1)
    adapter = tmp_path_factory.mktemp("adapter")
    source.current().trainer.model.save_pretrained(str(adapter))
    assert (adapter / "adapter_config.json").is_file()
    tuned = source.current().trainer.model  # the adapter, unmerged: the independent reference

    ex = load(tmp_path_factory, lora_dropout=0.0)
    begin_pass(ex, reference_model=str(adapter))
    want = expected_excess(ex.current(), tuned, INDICES[:FIRST])
    got = train(ex, 1)["sample_excess_sum"]
    assert want.max() > 0
    assert_close_scaled(got, want, REL)


def test_a_missing_reference_is_a_clear_error(tmp_path_factory) -> None:
    ex = load(tmp_path_factory)
    with pytest.raises(ConfigError, match=r"begin_pass: reference_model '/nonexistent/ref' is not a local model directory"):
        begin_pass(ex, reference_model="/nonexistent/ref")
