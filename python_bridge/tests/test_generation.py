"""NICE's ops (executor/generation.py) on the tiny model: prompts, seeded generation, rewards, REINFORCE gradients."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

import torch.nn.functional as F  # noqa: E402

from dataflex_bridge import executor  # noqa: E402
from dataflex_bridge.executor import generation as gen  # noqa: E402
from dataflex_bridge.executor import model_ops, step_loop  # noqa: E402
from dataflex_bridge.executor.errors import StateError  # noqa: E402
from dataflex_bridge.executor.projector import Projector, ProjectorArgs  # noqa: E402

from close import assert_close_scaled  # noqa: E402
from tiny_run import DEMO, REPO, TINY, run_op, tiny_config  # noqa: E402

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="models/tiny-qwen2 missing (run `npm run setup`)")

EVAL = np.array([0, 3, 5], dtype=np.int64)
EXECUTOR = executor.Executor()




@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> str:
    from dataflex_bridge.tools.make_tiny_model import build

    out = tmp_path_factory.mktemp("rm") / "tiny-rm"
    build(out, DEMO, "tiny", "qwen2", 7, 1024, None, "seqcls")
    return str(out)


@pytest.fixture(scope="module")
def run(tmp_path_factory, reward_model):
    """One run, trained 2 optimizer steps so both LoRA factors have non-zero gradients."""
    from dataflex_bridge.executor.build import build_run

    r = build_run(tiny_config(str(tmp_path_factory.mktemp("run"))))
    step_loop.begin(r, total_steps=2)
    step_loop.begin_pass(r, epoch=0, indices=np.arange(16), micro_sizes=np.full(4, 4),
                         step_sizes=np.full(2, 2), micro_in_epoch=None, micro_done=0, weights=None)
    flags = np.zeros(2, dtype=np.uint8)
    step_loop.train_steps(r, 2, log=flags, evaluate=flags, save=flags)
    EXECUTOR.run = r
    yield r
    EXECUTOR.run = None


def op(name: str, **args) -> dict:
    return run_op(EXECUTOR, name, args)


def ragged(flat: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[bounds[i] : bounds[i + 1]].tolist() for i in range(lengths.size)]


def gen_args(**kw) -> dict:
    base = dict(split="eval", indices=EVAL, max_new_tokens=12, temperature=1.0, samples=3, seed=11)
    return {**base, **kw}


# ------------------------------------------------------------------------------------------------- prompts


def test_prompt_of_cuts_at_the_first_label_and_keeps_the_end():
    row = {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]}
    assert gen.prompt_of(row) == [5, 6, 7]
    assert gen.prompt_of(row, max_prompt_length=2) == [6, 7]
    assert gen.prompt_of({"input_ids": [1, 2], "labels": [1, 2]}) == []  # pt / train_on_prompt: no prompt


def test_prompts_are_non_empty_and_exclude_the_response(run):
    out = op("generate", **gen_args(samples=1, max_new_tokens=2))
    dataset = model_ops.dataset_for(run, "eval")
    prompts = ragged(out["prompt_ids"], out["prompt_lengths"])
    for i, prompt in zip(EVAL.tolist(), prompts):
        row = dataset[i]
        first_label = next(t for t, lab in enumerate(row["labels"]) if lab != -100)
        assert 0 < len(prompt) == first_label < len(row["input_ids"])
        assert prompt == row["input_ids"][:first_label]
        # The prompt is the instruction turn: it ends with the assistant header, not with response text.
        assert run.tokenizer.decode(prompt).rstrip().endswith("assistant")


# ---------------------------------------------------------------------------------------------- generation


def test_generation_is_deterministic_per_seed_and_leaves_global_rng_untouched(run):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    a = op("generate", **gen_args())
    b = op("generate", **gen_args())
    after = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert torch.equal(before[2], after[2])

    assert a["response_lengths"].size == EVAL.size * 3
    assert np.array_equal(a["response_ids"], b["response_ids"])
    assert np.array_equal(a["response_lengths"], b["response_lengths"])
    assert (a["response_lengths"] >= 1).all() and (a["response_lengths"] <= 12).all()

    # Another seed draws other tokens; the samples of one example differ from each other.
    c = op("generate", **gen_args(seed=12))
    assert not np.array_equal(a["response_ids"], c["response_ids"])
    rows = ragged(a["response_ids"], a["response_lengths"])
    assert len({tuple(r) for r in rows[:3]}) > 1

    # An example's samples do not depend on which other examples were asked for.
    alone = op("generate", **gen_args(indices=EVAL[2:]))
    assert ragged(alone["response_ids"], alone["response_lengths"]) == rows[6:]


def test_temperature_zero_is_greedy(run):
    out = op("generate", **gen_args(temperature=0.0, indices=EVAL[:1]))
    rows = ragged(out["response_ids"], out["response_lengths"])
    assert rows[0] == rows[1] == rows[2]


def test_generation_leaves_the_model_in_train_mode(run):
    op("generate", **gen_args(samples=1, max_new_tokens=2))
    assert run.trainer.model.training


# -------------------------------------------------------------------------------------------------- reward


def test_reward_shape_range_and_direct_score(run, reward_model):
    g = op("generate", **gen_args())
    out = op("reward", model=reward_model, samples=3, batch_size=4, prompt_ids=g["prompt_ids"],
             prompt_lengths=g["prompt_lengths"], response_ids=g["response_ids"], response_lengths=g["response_lengths"])
    r = out["rewards"]
    assert r.shape == (EVAL.size * 3,) and r.dtype == np.float32
    assert np.isfinite(r).all() and ((r > 0) & (r < 1)).all()
    assert out["reencoded"] is False  # the tiny reward model shares the tokenizer

    # Same as scoring one sequence alone, unpadded.
    from transformers import AutoModelForSequenceClassification

    rm = AutoModelForSequenceClassification.from_pretrained(reward_model).eval()
    prompts = ragged(g["prompt_ids"], g["prompt_lengths"])
    responses = ragged(g["response_ids"], g["response_lengths"])
    with torch.no_grad():
        direct = [torch.sigmoid(rm(input_ids=torch.tensor([prompts[j // 3] + responses[j]])).logits[0, 0]).item()
                  for j in (0, 4, 8)]
    assert_close_scaled(r[[0, 4, 8]], direct, 1e-5)


def test_reward_score_rule():
    assert torch.allclose(gen.reward_scores(torch.tensor([[0.0], [2.0]])), torch.sigmoid(torch.tensor([0.0, 2.0])))
    two = torch.tensor([[0.0, 1.0]])
    assert torch.allclose(gen.reward_scores(two), torch.softmax(two, -1)[:, 1])


# ----------------------------------------------------------------------------------------- policy gradients


def direct_policy_gradient(run, prompt: list[int], responses: list[list[int]], rewards: list[float],
                           baseline: bool) -> np.ndarray:
    """(1/S) Σ_m (r_m − b) ∇ Σ_t −log π(y_t|x, y_<t), by plain loss.backward() into .grad, eval mode."""
    model = run.trainer.model
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    b = float(np.mean(rewards)) if baseline else 0.0
    model.eval()
    try:
        for resp, r in zip(responses, rewards):
            ids = torch.tensor([prompt + resp])
            logits = model(input_ids=ids).logits[0, :-1].float()
            targets = ids[0, 1:].clone()
            targets[: len(prompt) - 1] = -100
            nll = F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")
            ((r - b) / len(responses) * nll).backward()
        flat = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in params])
    finally:
        model.train()
        for p, g in zip(params, saved):
            p.grad = g
    return flat.numpy()


@pytest.mark.parametrize("baseline", ["mean", "none"])
def test_policy_gradient_equals_direct_backward(run, baseline):
    g = op("generate", **gen_args(indices=EVAL[:1], max_new_tokens=8))
    prompt = g["prompt_ids"].tolist()
    responses = ragged(g["response_ids"], g["response_lengths"])
    rewards = np.array([0.9, 0.2, 0.55], dtype=np.float32)
    args = dict(prompt_ids=g["prompt_ids"], prompt_lengths=g["prompt_lengths"], response_ids=g["response_ids"],
                response_lengths=g["response_lengths"], samples=3, rewards=rewards, seed=5, baseline=baseline)
    grads_before = [p.grad for p in run.trainer.model.parameters()]
    direct = direct_policy_gradient(run, prompt, responses, rewards.astype(np.float64).tolist(), baseline == "mean")
    assert np.abs(direct).max() > 1e-4  # a real signal, not zeros

    raw = op("policy_gradients", proj_dim=0, normalize=False, **args)
    assert raw["grads"].shape == (1, direct.size) and raw["zero_rows"] == 0
    assert_close_scaled(raw["grads"][0], direct, 4e-6)

    # Projected with the `gradients` op's projector (same kind, seed, parameter blocks).
    proj = op("policy_gradients", proj_dim=64, normalize=False, **args)
    sizes = [p.numel() for _, p in run.trainer.model.named_parameters() if p.requires_grad]
    expected = Projector(ProjectorArgs(dim=64, seed=5), sizes).project_flat(torch.from_numpy(direct)[None])
    assert_close_scaled(proj["grads"], expected, 4e-6)
    assert run.trainer.model.training
    # The op never writes .grad (it uses autograd.grad), so training's accumulation state is untouched.
    assert all(a is b for a, b in zip(grads_before, [p.grad for p in run.trainer.model.parameters()]))


def test_equal_rewards_with_mean_baseline_give_a_zero_row(run):
    g = op("generate", **gen_args(indices=EVAL[:2], max_new_tokens=4))
    out = op("policy_gradients", prompt_ids=g["prompt_ids"], prompt_lengths=g["prompt_lengths"],
             response_ids=g["response_ids"], response_lengths=g["response_lengths"], samples=3,
             rewards=np.array([0.5, 0.5, 0.5, 0.1, 0.9, 0.3], dtype=np.float32), proj_dim=32, seed=1,
             normalize=True, baseline="mean")
    assert out["zero_rows"] == 1
    assert np.abs(out["grads"][0]).max() == 0.0
    assert_close_scaled(np.linalg.norm(out["grads"][1]), 1.0, 1e-5)


def test_bad_inputs_are_state_errors(run, reward_model):
    g = op("generate", **gen_args(indices=EVAL[:1], samples=2, max_new_tokens=2))
    with pytest.raises(StateError):
        op("policy_gradients", prompt_ids=g["prompt_ids"], prompt_lengths=g["prompt_lengths"],
           response_ids=g["response_ids"], response_lengths=g["response_lengths"], samples=3,
           rewards=np.zeros(3, np.float32), proj_dim=8)
    with pytest.raises(StateError):
        op("generate", **gen_args(indices=np.array([10_000])))


def test_separate_policy_model_must_share_the_vocabulary(run, tmp_path):
    from dataflex_bridge.executor.errors import ConfigError
    from dataflex_bridge.tools.make_tiny_model import build

    a = op("generate", **gen_args(indices=EVAL[:1], model=str(TINY)))
    b = op("generate", **gen_args(indices=EVAL[:1], model=str(TINY)))
    assert np.array_equal(a["response_ids"], b["response_ids"])
    other = tmp_path / "other-vocab"
    build(other, DEMO, "tiny", "qwen2", 0, 500, None, "causal")  # a smaller BPE vocabulary: other ids
    with pytest.raises(ConfigError, match="vocabulary"):
        op("generate", **gen_args(indices=EVAL[:1], model=str(other)))
