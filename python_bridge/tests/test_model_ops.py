"""Batched model ops (gradients, embeddings, losses) against direct per-sample computations on the tiny model."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

import torch.nn.functional as F  # noqa: E402

from dataflex_bridge import executor  # noqa: E402
from dataflex_bridge.executor import gradients as G  # noqa: E402
from dataflex_bridge.executor import model_ops, step_loop  # noqa: E402
from dataflex_bridge.executor.embeddings import EmbeddingArgs, sample_embeddings  # noqa: E402
from dataflex_bridge.executor.errors import ConfigError, StateError  # noqa: E402
from dataflex_bridge.executor.projector import (  # noqa: E402
    Projector,
    ProjectorArgs,
    dense_matrix,
    dense_sign_groups,
    sparse_entries,
)

from close import assert_close_scaled, close_scaled  # noqa: E402
from tiny_run import DEMO, REPO, TINY, run_op, tiny_config as _tiny_config  # noqa: E402

BRIDGE = REPO / "python_bridge"
# Per-sample gradients by two methods: float rounding of the largest entries (float32 eps ≈ 1.2e-7).
GRAD_REL = 4e-6

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="models/tiny-qwen2 missing (run `npm run setup`)")

EXECUTOR = executor.Executor()


def tiny_config(output_dir: str, **extra) -> dict:
    # Non-default Adam betas/eps, so the op must read them from the run.
    return _tiny_config(output_dir, adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-6, **extra)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run for the module, trained for 3 optimizer steps (LoRA B ≠ 0, live Adam moments)."""
    from dataflex_bridge.executor.build import build_run

    r = build_run(tiny_config(str(tmp_path_factory.mktemp("run"))))
    step_loop.begin(r, total_steps=4)
    n = 24
    step_loop.begin_pass(r, epoch=0, indices=np.arange(n), micro_sizes=np.full(n // 4, 4),
                         step_sizes=np.full(3, 2), micro_in_epoch=None, micro_done=0, weights=None)
    flags = np.zeros(3, dtype=np.uint8)
    step_loop.train_steps(r, 3, log=flags, evaluate=flags, save=flags)
    assert r.trainer.model.training
    EXECUTOR.run = r  # the op handlers read the executor's run
    yield r
    EXECUTOR.run = None


# --------------------------------------------------------------------------------------------- references


def reference_gradients(run, split: str, indices) -> np.ndarray:
    """One unpadded forward/backward per sample, eval mode: the flat gradient in named_parameters order."""
    model = run.trainer.model
    dataset = model_ops.dataset_for(run, split)
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    rows = []
    was_training = model.training
    model.eval()
    try:
        for i in indices:
            sample = dataset[int(i)]
            ids = torch.tensor([sample["input_ids"]])
            labels = torch.tensor([sample["labels"]])
            logits = model(input_ids=ids).logits
            loss = F.cross_entropy(logits[0, :-1].float(), labels[0, 1:], ignore_index=-100)
            grads = torch.autograd.grad(loss, params)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    finally:
        model.train(was_training)
    return torch.stack(rows).numpy()


def reference_adam(run, raw: np.ndarray) -> np.ndarray:
    opt = run.trainer.optimizer
    parts = []
    for _, p in run.trainer.model.named_parameters():
        if not p.requires_grad:
            continue
        group = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
        state = opt.state[p]
        parts.append((state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1), *group["betas"], group["eps"]))
    m = torch.cat([x[0] for x in parts]).double()
    v = torch.cat([x[1] for x in parts]).double()
    b1, b2, eps = parts[0][2], parts[0][3], parts[0][4]
    assert (b1, b2, eps) == (0.8, 0.95, 1e-6)
    g = torch.from_numpy(raw).double()
    return ((b1 * m + (1 - b1) * g) / (torch.sqrt(b2 * v + (1 - b2) * g * g) + eps)).numpy()


def rng_snapshot():
    return (random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state().numpy().tobytes())


# -------------------------------------------------------------------------------------- per-sample gradients


def test_raw_gradients_equal_per_sample_backward(run) -> None:
    idx = np.array([3, 0, 17, 5, 11, 25, 8, 1, 19, 2], dtype=np.int64)
    ref = reference_gradients(run, "train", idx)
    assert np.abs(ref).max() > 1e-3  # B ≠ 0 after training, so every LoRA block has a gradient
    for method in ("linear", "vmap", "loop"):
        got, total = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0, chunk_size=4, method=method))
        assert total == ref.shape[1] == got.shape[1]
        assert_close_scaled(got, ref, GRAD_REL, err_msg=method)


def test_gradient_passes_hold_at_most_a_training_micro_batch(run, monkeypatch) -> None:
    micro = run.trainer.args.per_device_train_batch_size  # 4 in tiny_config
    assert G.pass_rows(run, 16) == micro and G.pass_rows(run, 2) == 2
    seen: list[int] = []
    linear = G.per_sample_grads_linear
    monkeypatch.setattr(G, "per_sample_grads_linear", lambda m, o, ids, lab: seen.append(ids.shape[0]) or linear(m, o, ids, lab))
    idx = np.arange(10, dtype=np.int64)
    capped, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0, chunk_size=16, method="linear"))
    assert seen == [4, 4, 2]
    small, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0, chunk_size=3, method="linear"))
    assert_close_scaled(capped, small, GRAD_REL)  # a row's gradient does not depend on its pass


def test_linear_method_applies_only_to_plain_linear_parameters(run) -> None:
    model = run.trainer.model
    named = G.trainable_parameters(model)
    owners = G.linear_owners(model, named)
    assert owners is not None and set(owners) == {n for n, _ in named}
    assert all(type(m) is torch.nn.Linear and attr == "weight" for m, attr in owners.values())
    # A trainable norm weight (or an embedding tied to lm_head) is not a linear map's weight: vmap handles those.
    norm = next((n, p) for n, p in model.named_parameters() if "norm" in n)
    assert G.linear_owners(model, named + [norm]) is None
    embed = model.get_input_embeddings().weight
    assert G.linear_owners(model, [("embed", embed)]) is None


def test_eval_split_gradients(run) -> None:
    idx = np.array([4, 0, 9], dtype=np.int64)
    got, _ = G.sample_gradients(run, "eval", idx, G.GradientArgs(proj_dim=0))
    assert_close_scaled(got, reference_gradients(run, "eval", idx), GRAD_REL)


def test_adam_preconditioned_gradients(run) -> None:
    idx = np.array([2, 7, 13, 21, 0], dtype=np.int64)
    raw, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0))
    got, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0, precondition="adam"))
    # The transform itself, on the op's own raw gradients, exactly (float32 vs a float64 reference).
    assert_close_scaled(got, reference_adam(run, raw), 1e-6)
    # End to end against the backward loop: 1/sqrt(v) amplifies the ~1e-8 raw differences where v is tiny.
    assert_close_scaled(got, reference_adam(run, reference_gradients(run, "train", idx)), 1e-4)


def test_adam_before_the_first_step_uses_zero_moments(tmp_path) -> None:
    from dataflex_bridge.executor.build import build_run

    fresh = build_run(tiny_config(str(tmp_path), max_samples=4, dataset="arith_clean"))
    idx = np.arange(2)
    raw, _ = G.sample_gradients(fresh, "train", idx, G.GradientArgs(proj_dim=0))
    got, _ = G.sample_gradients(fresh, "train", idx, G.GradientArgs(proj_dim=0, precondition="adam"))
    want = (0.2 * raw) / (np.sqrt(0.05 * raw * raw) + 1e-6)
    assert_close_scaled(got, want, 1e-5)


def test_projected_op_matches_projecting_raw(run) -> None:
    idx = np.array([1, 6, 12, 20], dtype=np.int32)
    raw, _ = G.sample_gradients(run, "train", idx.astype(np.int64), G.GradientArgs(proj_dim=0, precondition="adam"))
    sizes = [p.numel() for _, p in G.trainable_parameters(run.trainer.model)]
    for kind in ("dense", "sparse"):
        res = run_op(EXECUTOR, "gradients",
            {"split": "train", "indices": idx, "proj_dim": 512, "seed": 9, "precondition": "adam",
             "normalize": True, "projector": kind, "chunk_size": 3})
        assert res["grads"].dtype == np.float32 and res["grads"].shape == (4, 512)
        assert res["trainable_params"] == sum(sizes)
        want = Projector(ProjectorArgs(dim=512, seed=9, kind=kind), sizes).project_flat(torch.from_numpy(raw))
        want = want / want.norm(dim=1, keepdim=True)
        assert_close_scaled(res["grads"], want, 1e-5)
        assert_close_scaled(np.linalg.norm(res["grads"], axis=1), np.ones(4), 1e-5)


def test_gradient_op_is_deterministic_and_leaves_rng_and_mode_alone(run) -> None:
    args = {"split": "train", "indices": np.arange(10, dtype=np.int32), "proj_dim": 256, "seed": 3,
            "precondition": "adam", "normalize": False}
    before = rng_snapshot()
    a = run_op(EXECUTOR, "gradients", args)["grads"]
    b = run_op(EXECUTOR, "gradients", {**args, "chunk_size": 7})["grads"]
    assert rng_snapshot() == before
    assert run.trainer.model.training
    assert a.tobytes() == run_op(EXECUTOR, "gradients", args)["grads"].tobytes()
    assert_close_scaled(b, a, 1e-6)  # chunking changes only float summation order


def test_gradient_checkpointing_is_switched_off_and_restored(tmp_path) -> None:
    from dataflex_bridge.executor.build import build_run

    gc = build_run(tiny_config(str(tmp_path), max_samples=6, dataset="arith_clean",
                               disable_gradient_checkpointing=False))
    model = gc.trainer.model
    emb = model.get_input_embeddings()
    flagged = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    hooks = len(emb._forward_hooks)
    assert flagged and hooks == 1  # LLaMA-Factory's checkpointing and PEFT's input-require-grads hook
    idx = np.arange(4)
    loop, _ = G.sample_gradients(gc, "train", idx, G.GradientArgs(proj_dim=0, method="loop"))
    for method in ("linear", "vmap"):
        got, _ = G.sample_gradients(gc, "train", idx, G.GradientArgs(proj_dim=0, method=method))
        assert_close_scaled(got, loop, GRAD_REL, err_msg=method)
    assert len(emb._forward_hooks) == hooks
    assert all(m.gradient_checkpointing for m in flagged)


def test_linear_method_hands_over_to_vmap_when_rows_are_not_per_sample(run, monkeypatch, caplog) -> None:
    def routed(*a, **k):  # what a MoE expert's gathered token rows trigger
        raise G.NotPerSample("a trainable linear layer sees inputs that are not [batch, positions, features]")

    monkeypatch.setattr(G, "per_sample_grads_linear", routed)
    idx = np.array([0, 5, 9], dtype=np.int64)
    try:
        with caplog.at_level(logging.WARNING, logger="dataflex_bridge.executor.gradients"):
            got, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0))
        assert "using vmap from now on" in caplog.text and run.caches.linear_unsupported
        with pytest.raises(StateError, match="method 'linear' does not apply"):
            G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0, method="linear"))
    finally:
        run.caches.linear_unsupported = False
    assert_close_scaled(got, reference_gradients(run, "train", idx), GRAD_REL)


def test_vmap_failure_falls_back_to_the_loop(run, monkeypatch, caplog) -> None:
    def broken(*a, **k):
        raise RuntimeError("vmap: unsupported op")

    monkeypatch.setattr(G, "per_sample_grads_vmap", broken)
    monkeypatch.setattr(G, "linear_owners", lambda model, named: None)  # as for non-linear trainable params
    idx = np.array([0, 5], dtype=np.int64)
    try:
        with caplog.at_level(logging.WARNING, logger="dataflex_bridge.executor.gradients"):
            got, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0))
        assert "vmap failed" in caplog.text
        assert run.caches.gradient_fallback == "loop"
    finally:
        run.caches.gradient_fallback = None
    assert_close_scaled(got, reference_gradients(run, "train", idx), GRAD_REL)


# --------------------------------------------------------------------------------------------- projectors


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _spec_word(seed: int, tag: int, i: int, w: int) -> int:
    """The sign-generator spec in plain Python integers (what any other implementation must reproduce)."""
    seed &= (1 << 64) - 1
    h = _fmix32((seed & 0xFFFFFFFF) ^ tag)
    h = _fmix32(h ^ (seed >> 32))
    h = _fmix32(h ^ (i & 0xFFFFFFFF))
    h ^= (i >> 32) & 0xFFFFFFFF
    a, b = _fmix32(h), _fmix32(h ^ 0x3C6EF372)
    return _fmix32(a ^ (((w + 1) * 0x9E3779B9) & 0xFFFFFFFF)) ^ b


def test_sign_generator_matches_the_integer_spec() -> None:
    seed, dim = (1 << 40) + 12345, 80
    for start in (0, 7, (1 << 33) + 5):  # coordinates beyond 2^32 use the high word
        groups = dense_sign_groups(seed, start, 3, dim)
        for r in range(3):
            words = [_spec_word(seed, 0x6A09E667, start + r, w) for w in range((dim + 31) // 32)]
            bits = [(words[j // 32] >> (j % 32)) & 1 for j in range(dim)]
            row = dense_matrix(seed, start + r, 1, dim)[0].numpy()
            np.testing.assert_array_equal(np.sign(row), 1 - 2 * np.array(bits, dtype=np.float32))
            np.testing.assert_allclose(np.abs(row), 1 / np.sqrt(dim), rtol=1e-7)
            got = [(int(groups[r, k]) >> t) & 1 for k in range(groups.shape[1]) for t in range(16)][:dim]
            assert got == bits
    bucket, values = sparse_entries(seed, 11, 2, 4096, 4)
    for r in range(2):
        for k in range(4):
            h = _spec_word(seed, 0xBB67AE85, 11 + r, k)
            assert int(bucket[r, k]) == k * 1024 + (((h & 0x7FFFFFFF) * 1024) >> 31)
            assert float(values[r, k]) == (-0.5 if h >> 31 else 0.5)


PROJECT_SCRIPT = """
import hashlib, sys, torch
from dataflex_bridge.executor.projector import Projector, ProjectorArgs
sizes = [300, 1200, 37, 2048]
x = torch.sin(torch.arange(5 * sum(sizes), dtype=torch.float64) * 0.37).float().reshape(5, -1)
for kind in ("dense", "sparse"):
    y = Projector(ProjectorArgs(dim=384, seed=2024, kind=kind, chunk_elems=50_000), sizes).project_flat(x)
    print(kind, hashlib.sha256(y.numpy().tobytes()).hexdigest())
"""


def test_projection_is_identical_across_processes() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BRIDGE), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", PROJECT_SCRIPT], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    local: dict[str, str] = {}
    exec(compile(PROJECT_SCRIPT.replace("print(kind, ", "local[kind] = ("), "<s>", "exec"), {"local": local})
    assert out.split() == [w for kind in ("dense", "sparse") for w in (kind, local[kind])]


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_projectors_preserve_inner_products(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    sizes = [4000, 16000, 256, 3744]  # P = 24k, LoRA-like uneven blocks
    common = torch.randn(1, sum(sizes), generator=gen)
    x = torch.randn(32, sum(sizes), generator=gen) + common  # pairwise cosines ≈ 0.5
    proj = Projector(ProjectorArgs(dim=1024, seed=5, kind=kind), sizes)
    y = proj.project_flat(x).double()
    xd = x.double()
    ratio = (y * y).sum(1) / (xd * xd).sum(1)
    assert (ratio - 1).abs().max() < 0.2
    cos = lambda a: (a / a.norm(dim=1, keepdim=True)) @ (a / a.norm(dim=1, keepdim=True)).T  # noqa: E731
    off = ~torch.eye(32, dtype=torch.bool)
    assert (cos(y) - cos(xd))[off].abs().mean() < 0.03  # ≈ 0.6/sqrt(d) expected
    # block-invariant: one block or many give the same projection of the flat vector
    whole = Projector(ProjectorArgs(dim=1024, seed=5, kind=kind), [sum(sizes)]).project_flat(x)
    assert_close_scaled(whole, y, 4e-6)
    # cache on and off agree exactly
    cold = Projector(ProjectorArgs(dim=1024, seed=5, kind=kind, cache_bytes=0), sizes).project_flat(x)
    assert torch.equal(cold, proj.project_flat(x))


def test_dense_projector_is_the_explicit_matrix() -> None:
    x = torch.randn(3, 5000, generator=torch.Generator().manual_seed(1))
    got = Projector(ProjectorArgs(dim=100, seed=8, kind="dense", chunk_elems=30_000), [1000, 4000]).project_flat(x)
    assert_close_scaled(got, x @ dense_matrix(8, 0, 5000, 100), 1e-6)


# ----------------------------------------------------------------------------------------- losses, embeddings


def test_scoring_forward_folds_lora_without_touching_the_model(run) -> None:
    model = run.trainer.model
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    batch = model_ops.collate(run, run.train_dataset, [0, 3, 9])
    batch.pop("labels")
    with model_ops.eval_mode(model):
        want = model(**batch).logits
        with model_ops.scoring_forward(model) as forward:
            assert forward is not model  # the test model is plain LoRA: folded
            got = forward(**batch).logits
        again = model(**batch).logits
    assert_close_scaled(got, want, 1e-6)
    assert torch.equal(again, want)  # adapters back on
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n][0]) and p.requires_grad == before[n][1], n


def test_length_batches_cover_every_row_within_the_token_budget() -> None:
    lengths = np.array([5, 40, 7, 7, 100, 12, 3, 40, 9], dtype=np.int64)
    batches = model_ops.length_batches(lengths, max_tokens=48)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(lengths.size))
    for b in batches:
        assert len(b) == 1 or len(b) * lengths[b].max() <= 48
    assert [lengths[b].tolist() for b in batches] == [[3, 5, 7, 7, 9], [12], [40], [40], [100]]
    capped = model_ops.length_batches(lengths, max_tokens=10_000, max_rows=4)
    assert [len(b) for b in capped] == [4, 4, 1]


def test_batched_losses_equal_batch_one(run) -> None:
    idx = np.array([0, 4, 9, 13, 18, 21, 25, 2, 7, 11, 16, 24], dtype=np.int64)  # mixed lengths
    run.caches.prefix_check = None
    batched = model_ops.sample_losses(run, "train", idx, 8)
    # The template's system prompt is a shared prefix: batches ran from its cache, checked on the first one.
    assert run.caches.prefix_check is True
    single = model_ops.sample_losses(run, "train", idx, 1)  # one row: no prefix cache
    assert_close_scaled(batched, single, 1e-6)
    packed = model_ops.sample_losses(run, "train", idx, max_tokens=4096)  # the default: one token-budget batch
    assert_close_scaled(packed, single, 1e-6)
    # Hugging Face's own loss (full logits) of each sample alone: the definition training uses.
    model = run.trainer.model
    with model_ops.eval_mode(model):
        hf = [model(**model_ops.collate(run, run.train_dataset, [i])).loss.item() for i in idx.tolist()]
    assert_close_scaled(single, hf, 2e-6)


def test_shared_prefix_length_stops_before_labels_and_differences() -> None:
    from dataflex_bridge.executor.shared_prefix import shared_prefix_length

    ids = torch.tensor([[5, 6, 7, 8, 9, 1, 0], [5, 6, 7, 8, 3, 3, 3], [5, 6, 7, 8, 9, 9, 0]])
    no = -100
    labels = torch.tensor([[no, no, no, no, no, 1, no], [no, no, no, no, no, 3, 3], [no, no, no, no, no, no, 9]])
    assert shared_prefix_length(ids, labels) == 4  # row 1 differs at position 4
    # Position 3 predicts row 0's label at 4: it must produce logits, so stays out of the prefix.
    early = labels.clone()
    early[0, 4] = 9
    assert shared_prefix_length(ids, early) == 3
    assert shared_prefix_length(ids[:, :1], labels[:, :1]) == 0  # every row keeps one position


def test_trim_after_labels_keeps_every_position_a_label_needs() -> None:
    no = -100
    ids = torch.tensor([[1, 2, 3, 4, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 0, 0]])
    mask = (ids != 0).long()
    labels = torch.tensor([[no, no, 3, 4, no, no, no, no], [no, no, no, no, 5, 6, no, no]])
    inputs, cut = model_ops.trim_after_labels({"input_ids": ids, "attention_mask": mask}, labels)
    # The last label sits in column 5, predicted by position 4: positions 0-4 stay, labels up to column 5.
    assert inputs["input_ids"].tolist() == ids[:, :5].tolist() and inputs["attention_mask"].shape == (2, 5)
    assert cut.tolist() == labels[:, :6].tolist()
    packed = {"input_ids": ids, "attention_mask": mask[:, None, None, :]}  # a 4-D mask: left as is
    assert model_ops.trim_after_labels(packed, labels)[0] is packed


def test_shared_prefix_falls_back_when_it_disagrees() -> None:
    from types import SimpleNamespace

    from dataflex_bridge.executor.build import RunCaches
    from dataflex_bridge.executor.shared_prefix import PrefixScorer

    model = torch.nn.Module()
    model.get_input_embeddings = lambda: torch.nn.Embedding(4, 2)
    run = SimpleNamespace(caches=RunCaches())
    scorer = PrefixScorer(run, model, forward=None)
    assert scorer.check(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-6]))
    assert scorer.verified
    run.caches = RunCaches()
    assert not scorer.check(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))
    assert not scorer.enabled and run.caches.prefix_check is False


def _manual_pool(h: torch.Tensor, pooling: str) -> torch.Tensor:
    # h: [T, H] of one unpadded sample
    if pooling == "mask_mean":
        return h.mean(0)
    if pooling == "position_weighted":
        w = torch.arange(1, h.shape[0] + 1, dtype=h.dtype)
        return (h * (w / w.sum())[:, None]).sum(0)
    return h[-1]


@pytest.mark.parametrize("pooling", ["mask_mean", "position_weighted", "last_token"])
@pytest.mark.parametrize("layer", [-1, 1])
def test_embeddings_match_a_direct_forward(run, pooling: str, layer: int) -> None:
    idx = np.array([5, 0, 22, 9, 14], dtype=np.int64)
    got = sample_embeddings(run, "train", idx, EmbeddingArgs(layer=layer, pooling=pooling, batch_size=3))
    model = run.trainer.model
    model.eval()
    try:
        with torch.no_grad():
            want = []
            for i in idx:
                ids = torch.tensor([run.train_dataset[int(i)]["input_ids"]])
                states = model(input_ids=ids, output_hidden_states=True).hidden_states
                want.append(_manual_pool(states[layer][0].float(), pooling))
    finally:
        model.train()
    assert_close_scaled(got, torch.stack(want), 5e-6)


def test_embedding_op_normalises_and_leaves_rng_alone(run) -> None:
    before = rng_snapshot()
    res = run_op(EXECUTOR, "embeddings",
        {"split": "eval", "indices": np.arange(6, dtype=np.int32), "layer": -1, "pooling": "mask_mean",
         "normalize": True})
    assert rng_snapshot() == before and run.trainer.model.training
    e = res["embeddings"]
    assert e.dtype == np.float32 and e.shape == (6, 64)
    assert_close_scaled(np.linalg.norm(e, axis=1), np.ones(6), 1e-5)


def test_embeddings_with_a_separate_model(run) -> None:
    from transformers import AutoModelForCausalLM

    idx = np.array([3, 1], dtype=np.int64)
    got = sample_embeddings(run, "train", idx, EmbeddingArgs(model=str(TINY), pooling="last_token"))
    assert run.caches.embed_models[str(TINY.resolve())] is not None
    base = AutoModelForCausalLM.from_pretrained(str(TINY)).eval()
    with torch.no_grad():
        want = [base(input_ids=torch.tensor([run.train_dataset[int(i)]["input_ids"]]), output_hidden_states=True)
                .hidden_states[-1][0, -1] for i in idx]
    assert_close_scaled(got, torch.stack(want), 5e-6)
    # the training model (LoRA trained for 3 steps) embeds differently
    trained = sample_embeddings(run, "train", idx, EmbeddingArgs(pooling="last_token"))
    assert not close_scaled(got, trained, 5e-6)


def test_embedding_model_with_another_vocabulary_is_refused(run, tmp_path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "other")
    with pytest.raises(ConfigError, match="vocabulary"):
        sample_embeddings(run, "train", np.arange(2), EmbeddingArgs(model=str(tmp_path / "other")))
    with pytest.raises(ConfigError, match="not a local model directory"):
        sample_embeddings(run, "train", np.arange(2), EmbeddingArgs(model=str(tmp_path / "missing")))
