"""The step loop's per-sample losses and loss reductions (executor/step_loop.py, weights.py) on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

import torch.nn.functional as F  # noqa: E402

from dataflex_bridge.executor import step_loop  # noqa: E402
from dataflex_bridge.executor.errors import StateError  # noqa: E402
from dataflex_bridge.executor.model_ops import preserved_rng  # noqa: E402
from dataflex_bridge.executor.weights import LossSpec, training_loss  # noqa: E402

from close import assert_close_scaled  # noqa: E402
from tiny_run import TINY, tiny_config  # noqa: E402

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="models/tiny-qwen2 missing (run `npm run setup`)")

# Uneven micro-batches, gradient accumulation 2 (tiny_config): steps of 7, 6 and 4 samples.
MICRO = np.array([3, 4, 2, 4, 1, 3])
STEPS = np.array([2, 2, 2])
NO_FLAGS = np.zeros(3, dtype=np.uint8)


def build(tmp_path_factory, **extra):
    from dataflex_bridge.executor.build import build_run

    return build_run(tiny_config(str(tmp_path_factory.mktemp("run")), eval_strategy="no", **extra))


def begin_pass(run, indices, **kw):
    return step_loop.begin_pass(run, epoch=0, indices=indices, micro_sizes=MICRO, step_sizes=STEPS,
                                micro_in_epoch=None, micro_done=0, **{"weights": None, **kw})


def label_count(run, i: int) -> int:
    return int((np.asarray(run.train_dataset[i]["labels"][1:]) != -100).sum())


def step_slices(sizes=MICRO, steps=STEPS) -> list[slice]:
    ends = np.cumsum([0] + [int(sizes[a:b].sum()) for a, b in zip(np.cumsum([0, *steps[:-1]]), np.cumsum(steps))])
    return [slice(int(ends[k]), int(ends[k + 1])) for k in range(len(steps))]


def reference_sums(run, indices) -> np.ndarray:
    """Each sample's label-token CE sum by a plain forward of the sample alone (train mode, no grad)."""
    model = run.trainer.model
    out = []
    with preserved_rng(), torch.no_grad():
        for i in indices.tolist():
            row = run.train_dataset[i]
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
            out.append(F.cross_entropy(logits, torch.tensor(row["labels"][1:]), ignore_index=-100, reduction="sum"))
    return torch.stack(out).numpy()


# ------------------------------------------------------------------------------------ per-sample losses


def test_sample_losses_come_from_the_training_forward(tmp_path_factory) -> None:
    """With LoRA dropout on, only the training forward itself can give sums whose token mean is the step's loss."""
    run = build(tmp_path_factory)
    step_loop.begin(run, total_steps=9)
    indices = np.arange(17)[::-1].copy()
    begin_pass(run, indices)
    first = step_loop.train_steps(run, 1, log=NO_FLAGS[:1], evaluate=NO_FLAGS[:1], save=NO_FLAGS[:1])
    rest = step_loop.train_steps(run, 2, log=NO_FLAGS[:2], evaluate=NO_FLAGS[:2], save=NO_FLAGS[:2])
    step_loop.end_pass(run, log=False, evaluate=False, save=False)
    # One entry per sample trained in that call, in plan order.
    assert first["sample_loss_sum"].dtype == np.float32 and first["sample_tokens"].dtype == np.int32
    assert first["sample_loss_sum"].shape == first["sample_tokens"].shape == (7,)
    assert rest["sample_loss_sum"].shape == (10,)
    sums = np.concatenate([first["sample_loss_sum"], rest["sample_loss_sum"]])
    tokens = np.concatenate([first["sample_tokens"], rest["sample_tokens"]])
    assert tokens.tolist() == [label_count(run, i) for i in indices.tolist()]
    loss = np.concatenate([first["loss"], rest["loss"]])
    step_tokens = np.concatenate([first["tokens"], rest["tokens"]])
    for k, rows in enumerate(step_slices()):
        assert tokens[rows].sum() == step_tokens[k]  # SFT: no label at position 0
        assert_close_scaled(sums[rows].sum() / step_tokens[k], loss[k], 1e-6, err_msg=f"step {k}")

    # sample_mean without weights: each step's loss is the mean of its samples' token-mean losses.
    begin_pass(run, indices, reduction="sample_mean")
    got = step_loop.train_steps(run, 3, log=NO_FLAGS, evaluate=NO_FLAGS, save=NO_FLAGS)
    step_loop.end_pass(run, log=False, evaluate=False, save=False)
    per_sample = got["sample_loss_sum"] / got["sample_tokens"]
    assert_close_scaled(got["loss"], [per_sample[rows].mean() for rows in step_slices()], 1e-6)

    # token_mean with weights: Σ w_b Σ_t CE_bt over the group's label tokens.
    w = np.linspace(0.2, 2.0, indices.size).astype(np.float32)
    begin_pass(run, indices, weights=w)
    got = step_loop.train_steps(run, 3, log=NO_FLAGS, evaluate=NO_FLAGS, save=NO_FLAGS)
    want = [(w[rows] * got["sample_loss_sum"][rows]).sum() / got["tokens"][k] for k, rows in enumerate(step_slices())]
    assert_close_scaled(got["loss"], want, 1e-6)


def test_sample_losses_equal_a_separate_forward(tmp_path_factory) -> None:
    run = build(tmp_path_factory, lora_dropout=0.0)  # no dropout: a separate forward sees the same function
    step_loop.begin(run, total_steps=3)
    indices = np.array([5, 0, 16, 3, 11, 8, 1, 14, 2, 9, 13, 4, 7, 10, 6, 15, 12])
    begin_pass(run, indices)
    for rows in step_slices():
        want = reference_sums(run, indices[rows])  # the weights the step trains from
        got = step_loop.train_steps(run, 1, log=NO_FLAGS[:1], evaluate=NO_FLAGS[:1], save=NO_FLAGS[:1])
        assert_close_scaled(got["sample_loss_sum"], want, 1e-6)
        assert got["sample_tokens"].tolist() == [label_count(run, i) for i in indices[rows].tolist()]


def test_begin_pass_checks_reduction_and_weights(tmp_path_factory) -> None:
    run = build(tmp_path_factory, max_samples=8, dataset="arith_clean")
    step_loop.begin(run, total_steps=1)
    plan = dict(epoch=0, indices=np.arange(4), micro_sizes=np.array([2, 2]), step_sizes=np.array([2]),
                micro_in_epoch=None, micro_done=0)
    with pytest.raises(StateError, match="reduction must be one of token_mean, sample_mean, got 'mean'"):
        step_loop.begin_pass(run, **plan, weights=None, reduction="mean")
    with pytest.raises(StateError, match="weight 2 is not finite"):
        step_loop.begin_pass(run, **plan, weights=np.array([1, 1, np.nan, 1], dtype=np.float32))
    with pytest.raises(StateError, match="one entry per planned sample"):
        step_loop.begin_pass(run, **plan, weights=np.ones(3, dtype=np.float32))


# ------------------------------------------------------------------------------------------- reductions


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """A run without dropout and two uneven micro-batches of one accumulation group (3 + 2 samples)."""
    run = build(tmp_path_factory, lora_dropout=0.0)
    groups = [[4, 0, 9], [13, 2]]
    batches = [run.trainer.data_collator([run.train_dataset[i] for i in g]) for g in groups]
    return run, groups, batches


def params_of(run) -> list[torch.nn.Parameter]:
    return [p for p in run.trainer.model.parameters() if p.requires_grad]


def group_loss_and_grad(run, batches, weights: list[np.ndarray] | None, reduction: str):
    """The step loop's accumulation of one group through trainer.training_step: (Σ losses, flat gradient)."""
    trainer, model = run.trainer, run.trainer.model
    for p in params_of(run):
        p.grad = None
    samples, num_items = trainer.get_batch_samples(iter(batches), len(batches), trainer.args.device)
    trainer.current_gradient_accumulation_steps = len(samples)
    total = 0.0
    for i, inputs in enumerate(samples):
        spec = None
        if weights is not None or reduction != "token_mean":
            w = weights[i] if weights is not None else np.ones(inputs["labels"].shape[0], dtype=np.float32)
            spec = LossSpec(reduction, torch.as_tensor(w), group_samples=sum(b["labels"].shape[0] for b in samples),
                            group_micro=len(samples))
        with training_loss(trainer, model, inputs["labels"], spec):
            total += trainer.training_step(model, inputs, num_items).item()
    grad = torch.cat([p.grad.reshape(-1) for p in params_of(run)]).clone()
    for p in params_of(run):
        p.grad = None
    return total, grad


def per_sample_terms(run, groups) -> tuple[list[torch.Tensor], list[int], int]:
    """Each sample alone, with autograd: its label-token CE sum, its label count, and the group's label tokens as
    Hugging Face counts them (num_items_in_batch)."""
    model = run.trainer.model
    sums, counts = [], []
    for i in [i for g in groups for i in g]:
        row = run.train_dataset[i]
        logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
        labels = torch.tensor(row["labels"])
        sums.append(F.cross_entropy(logits, labels[1:], ignore_index=-100, reduction="sum"))
        counts.append(int((labels[1:] != -100).sum()))
    num_items = sum(int((np.asarray(run.train_dataset[i]["labels"]) != -100).sum()) for g in groups for i in g)
    return sums, counts, num_items


def grad_of(run, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params_of(run))])


@pytest.mark.parametrize("loss_kwargs", [True, False])
def test_token_mean_with_unit_weights_is_hugging_faces_loss(frozen, loss_kwargs) -> None:
    run, groups, batches = frozen
    trainer = run.trainer
    assert trainer.model_accepts_loss_kwargs  # Qwen2: num_items_in_batch normalises
    trainer.model_accepts_loss_kwargs = loss_kwargs  # False: the micro-batch mean over GA, as for multimodal runs
    try:
        hf_loss, hf_grad = group_loss_and_grad(run, batches, None, "token_mean")
        ones = [np.ones(len(g), dtype=np.float32) for g in groups]
        loss, grad = group_loss_and_grad(run, batches, ones, "token_mean")
    finally:
        trainer.model_accepts_loss_kwargs = True
    assert hf_grad.abs().max() > 1e-4
    assert_close_scaled(loss, hf_loss, 1e-6)
    assert_close_scaled(grad, hf_grad, 2e-6)


def test_sample_mean_is_the_formula(frozen) -> None:
    run, groups, batches = frozen
    w = [np.array([0.5, 2.0, 1.5], dtype=np.float32), np.array([3.0, 0.25], dtype=np.float32)]
    loss, grad = group_loss_and_grad(run, batches, w, "sample_mean")
    sums, counts, _ = per_sample_terms(run, groups)
    flat_w = np.concatenate(w)
    # Σ_b w_b (Σ_t CE_bt / n_b) / B_group over the whole group of 5, whatever its split into micro-batches.
    want = sum(float(flat_w[b]) * sums[b] / max(1, counts[b]) for b in range(5)) / 5
    assert_close_scaled(loss, want.item(), 1e-6)
    assert_close_scaled(grad, grad_of(run, want), 4e-6)
    # Unit weights: the group's mean per-sample loss.
    ones_loss, _ = group_loss_and_grad(run, batches, None, "sample_mean")
    assert_close_scaled(ones_loss, np.mean([s.item() / c for s, c in zip(sums, counts)]), 1e-6)


@pytest.mark.parametrize("reduction", ["token_mean", "sample_mean"])
def test_one_hot_weights_give_that_samples_gradient(frozen, reduction) -> None:
    run, groups, batches = frozen
    sums, counts, num_items = per_sample_terms(run, groups)
    for j in (1, 3):  # one sample in each micro-batch
        flat = np.zeros(5, dtype=np.float32)
        flat[j] = 1.0
        _, grad = group_loss_and_grad(run, batches, [flat[:3], flat[3:]], reduction)
        scale = num_items if reduction == "token_mean" else 5 * counts[j]
        assert_close_scaled(grad, grad_of(run, sums[j] / scale), 4e-6, err_msg=f"sample {j}")


# ------------------------------------------------------------------------------------------- safe points


def test_train_steps_stops_at_a_step_boundary_when_cancelled_or_faulted(tmp_path_factory, monkeypatch) -> None:
    """check_cancelled runs before every step (docs/reliability.md); so does the test-only fault injection."""
    from dataflex_bridge.executor import fault
    from dataflex_bridge.server import OpError

    run = build(tmp_path_factory)
    step_loop.begin(run, total_steps=9)
    indices = np.arange(17)

    calls = 0

    def cancel_after_one_step() -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OpError("cancelled", "cancelled by the caller")

    begin_pass(run, indices)
    with pytest.raises(OpError, match="cancelled"):
        step_loop.train_steps(run, 3, log=NO_FLAGS, evaluate=NO_FLAGS, save=NO_FLAGS, check_cancelled=cancel_after_one_step)
    assert run.trainer.state.global_step == 1  # one whole step, then stopped before the second

    monkeypatch.setenv(fault.ENV, "raise@3")
    with pytest.raises(fault.InjectedFault, match="before step 3"):
        step_loop.train_steps(run, 2, log=NO_FLAGS[:2], evaluate=NO_FLAGS[:2], save=NO_FLAGS[:2])
    assert run.trainer.state.global_step == 2
    monkeypatch.setenv(fault.ENV, "raise@x")
    with pytest.raises(ValueError, match="expected raise@<step>"):
        step_loop.train_steps(run, 1, log=NO_FLAGS[:1], evaluate=NO_FLAGS[:1], save=NO_FLAGS[:1])


def test_train_steps_ends_after_the_step_in_progress_once_a_stop_is_requested(tmp_path_factory) -> None:
    """request_stop's flag is read at the same safe point: the steps done come back, with should_training_stop."""
    run = build(tmp_path_factory)
    step_loop.begin(run, total_steps=9)
    begin_pass(run, np.arange(17))
    asked = 0

    def stop_after_one_step() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1

    r = step_loop.train_steps(run, 3, log=NO_FLAGS, evaluate=NO_FLAGS, save=NO_FLAGS, stop_requested=stop_after_one_step)
    assert r["done"] == 1 and r["should_training_stop"] is True
    assert run.trainer.state.global_step == 1
    assert r["loss"].shape == (1,) and r["sample_tokens"].shape == (7,)  # the first step's 7 samples
    again = step_loop.train_steps(run, 2, log=NO_FLAGS[:2], evaluate=NO_FLAGS[:2], save=NO_FLAGS[:2], stop_requested=lambda: True)
    assert again["done"] == 0 and again["should_training_stop"] is True
    step_loop.end_pass(run, log=False, evaluate=False, save=False)
    assert step_loop.finish(run)["global_step"] == 1
