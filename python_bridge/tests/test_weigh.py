"""Weights asked mid-step (begin_pass `weigh`, the `weigh` request to TypeScript), on the tiny model through LLaMA-Factory.

TypeScript's side is a plain function here (what the bridge would deliver to `ctx.request`).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

from dataflex_bridge import catalog, executor  # noqa: E402
from dataflex_bridge.executor.embeddings import pool  # noqa: E402
from dataflex_bridge.executor.errors import StateError  # noqa: E402

from close import assert_close_scaled  # noqa: E402
from tiny_run import run_op, tiny_config  # noqa: E402


class Ctx:
    """ctx.request answered by `answer(args)`; every request kept."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[tuple[str, dict]] = []

    def request(self, op, args, timeout_s=60.0):
        self.requests.append((op, args))
        catalog.args_check(op)(args)  # what TypeScript would receive is a valid `weigh`
        return self.answer(args)

    def emit(self, event, data=None):
        pass


def _loaded(tmp_path, **extra) -> executor.Executor:
    ex = executor.Executor()
    run_op(ex, "load", {"config": tiny_config(str(tmp_path), eval_strategy="no", lora_dropout=0.0, **extra)})
    run_op(ex, "begin", {"total_steps": 2})
    return ex


PLAN = {
    "epoch": 0,
    "indices": np.arange(14, dtype=np.int32),
    "micro_sizes": np.array([4, 4, 4, 2], dtype=np.int32),
    "step_sizes": np.array([2, 2], dtype=np.int32),
    "micro_in_epoch": 4,
}


def _train(ex, ctx, count=2):
    flags = np.zeros(count, dtype=np.uint8)
    args = catalog.with_defaults("train_steps", {"count": count, "log": flags, "evaluate": flags, "save": flags})
    return ex.handlers()["train_steps"].fn(args, ctx)


def test_each_weighed_micro_batch_sends_its_rows_losses_and_embeddings_and_its_weights_are_applied(tmp_path) -> None:
    ex = _loaded(tmp_path)
    run = ex.current()
    emb_args = {"layer": -1, "pooling": "label_mean", "normalize": True}
    rng = np.random.default_rng(0)
    weights = {}

    def answer(args):
        w = rng.uniform(0.1, 3.0, size=args["indices"].size).astype(np.float32)
        weights[(args["step"], args["micro"])] = w
        return {"weights": w}

    ctx = Ctx(answer)
    run_op(ex, "begin_pass", {**PLAN, "reduction": "sample_mean", "weigh": {"from_step": 1, "embeddings": emb_args}})
    out = _train(ex, ctx)
    run_op(ex, "end_pass", {})
    # Step 1 is the warm-up (from_step 1: steps after one trained step are weighed); step 2's two micro-batches ask.
    assert [(op, a["step"], a["micro"]) for op, a in ctx.requests] == [("weigh", 2, 0), ("weigh", 2, 1)]
    assert out["weigh_calls"] == 2 and out["weigh_seconds"] >= 0
    sums, tokens = out["sample_loss_sum"], out["sample_tokens"]
    for k, (_, a) in enumerate(ctx.requests):
        rows = slice(8 + 4 * k, 8 + 4 * k + a["indices"].size)
        np.testing.assert_array_equal(a["indices"], PLAN["indices"][rows])
        np.testing.assert_array_equal(a["tokens"], tokens[rows])
        assert_close_scaled(a["losses"], sums[rows] / np.maximum(tokens[rows], 1), rel=1e-6)
        assert a["group_samples"] == 6 and a["group_micro"] == 2
        assert a["embeddings"].shape == (a["indices"].size, run.trainer.model.config.hidden_size)
        assert_close_scaled(np.linalg.norm(a["embeddings"], axis=1), np.ones(a["indices"].size), rel=1e-5)
    # Step 2's loss: Σ_b w_b ℓ_b / B_G over its 6 samples (sample_mean with the returned weights).
    means = sums[8:] / np.maximum(tokens[8:], 1)
    w = np.concatenate([weights[(2, 0)], weights[(2, 1)]])
    assert_close_scaled(out["loss"][1], float((w * means).sum() / 6), rel=1e-5)
    # Step 1 (warm-up) trained under sample_mean with weights of 1: the mean of its samples' mean token losses.
    assert_close_scaled(out["loss"][0], float((sums[:8] / np.maximum(tokens[:8], 1)).mean()), rel=1e-5)


def test_embeddings_of_the_weighed_forward_equal_the_embeddings_op_on_the_same_model(tmp_path) -> None:
    ex = _loaded(tmp_path)
    emb_args = {"layer": -2, "pooling": "position_weighted", "normalize": False}
    expected = run_op(ex, "embeddings", {"split": "train", "indices": PLAN["indices"][:8], **emb_args})["embeddings"]
    ctx = Ctx(lambda a: {"weights": np.ones(a["indices"].size, dtype=np.float32)})
    run_op(ex, "begin_pass", {**PLAN, "reduction": "token_mean", "weigh": {"from_step": 0, "embeddings": emb_args}})
    _train(ex, ctx, count=1)
    got = np.concatenate([a["embeddings"] for _, a in ctx.requests])
    assert_close_scaled(got, expected, rel=1e-5)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda a: {"weights": np.ones(a["indices"].size - 1, dtype=np.float32)}, r"step 1, micro-batch 0\): expected 4 weights, got \(3,\)"),
        (lambda a: {"weights": np.full(a["indices"].size, np.inf, dtype=np.float32)}, r"step 1, micro-batch 0\): weight 0 is not finite"),
    ],
)
def test_a_bad_answer_stops_the_op_naming_the_step(tmp_path, answer, message) -> None:
    ex = _loaded(tmp_path)
    run_op(ex, "begin_pass", {**PLAN, "reduction": "sample_mean", "weigh": {"from_step": 0}})
    with pytest.raises(StateError, match=message):
        _train(ex, Ctx(answer), count=1)


def test_weigh_needs_a_channel_to_typescript_and_excludes_fixed_weights(tmp_path) -> None:
    ex = _loaded(tmp_path)
    with pytest.raises(StateError, match="weights and weigh exclude each other"):
        run_op(ex, "begin_pass", {**PLAN, "weights": np.ones(14, dtype=np.float32), "weigh": {"from_step": 0}})
    run_op(ex, "begin_pass", {**PLAN, "weigh": {"from_step": 0}})
    flags = np.zeros(1, dtype=np.uint8)
    with pytest.raises(StateError, match="cannot reach TypeScript"):
        run_op(ex, "train_steps", {"count": 1, "log": flags, "evaluate": flags, "save": flags})


def test_label_mean_pools_the_response_tokens_and_falls_back_to_the_mask() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    labels = torch.tensor([[-100, 5, 6, -100], [-100, -100, -100, -100]])
    got = pool(hidden, mask, "label_mean", labels)
    assert torch.allclose(got[0], hidden[0, 1:3].mean(0))
    assert torch.allclose(got[1], hidden[1].mean(0))  # no labels: every unmasked token
