"""The router_loads op (executor/router.py) on the tiny mixture-of-experts model, LoRA-wrapped and trained by LLaMA-Factory."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

import torch.nn.functional as F  # noqa: E402

from dataflex_bridge import executor  # noqa: E402
from dataflex_bridge.executor import step_loop  # noqa: E402
from dataflex_bridge.executor.errors import ConfigError  # noqa: E402
from dataflex_bridge.executor.model_ops import preserved_rng  # noqa: E402

from tiny_run import TINY, TINY_MOE, run_op, tiny_config  # noqa: E402

pytestmark = pytest.mark.skipif(not TINY_MOE.is_dir(), reason="models/tiny-qwen2-moe missing (run `npm run setup`)")


def _executor(tmp_path_factory, model, **extra) -> executor.Executor:
    ex = executor.Executor()
    run_op(ex, "load", {"config": tiny_config(str(tmp_path_factory.mktemp("run")), model_name_or_path=str(model),
                                              eval_strategy="no", **extra)})
    return ex


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    """A LoRA (lora_target: all) run on the MoE model, trained 2 optimizer steps through the step loop."""
    ex = _executor(tmp_path_factory, TINY_MOE)
    run = ex.current()
    run_op(ex, "begin", {"total_steps": 2})
    run_op(ex, "begin_pass", {"epoch": 0, "indices": np.arange(16, dtype=np.int32),
                              "micro_sizes": np.full(4, 4, dtype=np.int32), "step_sizes": np.full(2, 2, dtype=np.int32),
                              "micro_in_epoch": 4})
    flags = np.zeros(2, dtype=np.uint8)
    out = run_op(ex, "train_steps", {"count": 2, "log": flags, "evaluate": flags, "save": flags})
    run_op(ex, "end_pass", {})
    return ex, run, out


def test_llamafactory_trains_the_moe_model_with_lora(moe) -> None:
    _, run, out = moe
    assert type(run.trainer.model.get_base_model()).__name__ == "Qwen2MoeForCausalLM"
    assert out["done"] == 2 and np.isfinite(out["loss"]).all() and np.isfinite(out["sample_loss_sum"]).all()
    lora_b = [p for n, p in run.trainer.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(bool(p.detach().abs().sum() > 0) for p in lora_b)  # two steps moved the adapters
    # lora_target: all reaches the experts and the router.
    names = [n for n, _ in run.trainer.model.named_parameters() if "lora_A" in n]
    assert any(".experts.0." in n for n in names) and any(".mlp.gate." in n for n in names)


def direct_loads(run, split: str, i: int, top_k: int) -> np.ndarray:
    """[layers, experts] from the router logits of a plain forward of row i alone (no padding), counted here."""
    dataset = run.eval_dataset if split == "eval" else run.train_dataset
    model = run.trainer.model
    ids = torch.tensor([dataset[i]["input_ids"]])
    was = model.training
    model.eval()
    try:
        with preserved_rng(), torch.no_grad():
            logits = model(input_ids=ids, output_router_logits=True).router_logits
    finally:
        model.train(was)
    out = []
    for lg in logits:
        probs = F.softmax(lg.float(), dim=-1)
        top = probs.topk(top_k, dim=-1).indices
        out.append([int((top == e).any(dim=-1).sum()) for e in range(lg.shape[-1])])
    return np.array(out, dtype=np.float32)


def test_router_loads_count_each_rows_top_k_tokens(moe) -> None:
    ex, run, _ = moe
    idx = np.array([5, 0, 3, 11, 2], dtype=np.int32)
    out = run_op(ex, "router_loads", {"split": "eval", "indices": idx, "batch_size": 2})
    cfg = run.trainer.model.get_base_model().config
    assert (out["layers"], out["experts"], out["top_k"]) == (cfg.num_hidden_layers, cfg.num_experts, cfg.num_experts_per_tok)
    loads = out["loads"]
    assert loads.dtype == np.float32 and loads.shape == (idx.size, out["layers"] * out["experts"])
    per_layer = loads.reshape(idx.size, out["layers"], out["experts"])
    tokens = np.array([len(run.eval_dataset[int(i)]["input_ids"]) for i in idx])
    # Every token goes to exactly top_k distinct experts in every layer.
    np.testing.assert_array_equal(per_layer.sum(axis=2), np.repeat(tokens[:, None] * out["top_k"], out["layers"], 1))
    for row, i in enumerate(idx.tolist()):
        np.testing.assert_array_equal(per_layer[row], direct_loads(run, "eval", i, out["top_k"]), err_msg=f"row {i}")
    assert per_layer.std() > 0  # the router does discriminate


def test_padding_does_not_count(moe) -> None:
    """A row alone and in a batch padded to a much longer row: the same loads."""
    ex, run, _ = moe
    lengths = np.array([len(x) for x in run.train_dataset["input_ids"]])
    short, long = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[long] > lengths[short]
    alone = run_op(ex, "router_loads", {"split": "train", "indices": np.array([short], dtype=np.int32)})["loads"]
    padded = run_op(ex, "router_loads", {"split": "train", "indices": np.array([long, short], dtype=np.int32),
                                         "batch_size": 2})["loads"]
    np.testing.assert_array_equal(padded[1], alone[0])
    empty = run_op(ex, "router_loads", {"split": "train", "indices": np.zeros(0, dtype=np.int32)})
    assert empty["loads"].shape == (0, alone.shape[1]) and empty["layers"] * empty["experts"] == alone.shape[1]


def test_a_dense_model_is_a_clear_error(tmp_path_factory) -> None:
    ex = _executor(tmp_path_factory, TINY)
    with pytest.raises(ConfigError, match=r"router_loads needs a mixture-of-experts model that returns router logits "
                                          r"\(model type 'qwen2'"):
        run_op(ex, "router_loads", {"split": "eval", "indices": np.array([0], dtype=np.int32)})
