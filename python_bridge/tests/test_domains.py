"""A mix run's data (load's `domains`): per-domain rows, named eval splits, the refusals; and freeze_gate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llamafactory")

from dataflex_bridge import catalog  # noqa: E402
from dataflex_bridge.executor import Executor  # noqa: E402
from dataflex_bridge.executor.build import build_run  # noqa: E402
from dataflex_bridge.executor.errors import ConfigError, StateError  # noqa: E402
from dataflex_bridge.executor.freeze import freeze_routers, is_router_parameter  # noqa: E402
from dataflex_bridge.schema_check import check  # noqa: E402

from close import assert_close_scaled  # noqa: E402
from tiny_run import DEMO, REPO, TINY, run_op, tiny_config  # noqa: E402

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="models/tiny-qwen2 missing (run `npm run setup`)")

DOMAINS = ["arith_clean", "arith_noisy", "string_ops", "facts"]
EVAL_SETS = ["arith_eval", "string_ops_eval", "facts_eval"]
MAX_SAMPLES = 10  # per dataset (LLaMA-Factory truncates each dataset on its own)
TINY_MOE = REPO / "models" / "tiny-qwen2-moe"


def mix_config(output_dir: str, **extra) -> dict:
    return tiny_config(output_dir, **{"dataset": ",".join(DOMAINS), "max_samples": MAX_SAMPLES, **extra})


def load(executor: Executor, config: dict, eval_sets: list[str] | None = None, freeze_gate: bool = False,
         dataset_rows: bool = False) -> dict:
    args = {"config": config, "freeze_gate": freeze_gate, "dataset_rows": dataset_rows}
    if eval_sets is not None:
        args["domains"] = {"eval_sets": eval_sets}
    result = run_op(executor, "load", args)
    check(result, catalog.ops()["load"]["result"])  # what TypeScript's strict parse will see
    return result


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """The four demo domains and three named eval sets; `eval_dataset` is arith_eval too, to compare the two."""
    executor = Executor()
    result = load(executor, mix_config(str(tmp_path_factory.mktemp("mix")), eval_dataset="arith_eval"), EVAL_SETS)
    yield executor, result


def lf_rows(run, dataset: str | None, eval_dataset: str | None):
    """LLaMA-Factory's own get_dataset for one dataset alone, with the run's arguments: the reference rows."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    data_args = dataclasses.replace(run.data_args, dataset=dataset and [dataset],
                                    eval_dataset=eval_dataset and [eval_dataset])
    tokenizer_module = load_tokenizer(run.model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    return get_dataset(template, run.model_args, data_args, run.training_args, stage=run.stage, **tokenizer_module)


def write_dataset_dir(root: Path, datasets: dict[str, list[dict]]) -> str:
    info = {}
    for name, rows in datasets.items():
        (root / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")
        info[name] = {"file_name": f"{name}.json", "formatting": "alpaca"}
    (root / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return str(root)


def qa(i: int, valid: bool = True) -> dict:
    """An alpaca row; an invalid one has a null output, which LLaMA-Factory's processor drops (no response)."""
    return {"instruction": f"What is {i} + 1?", "input": "", "output": str(i + 1) if valid else None}


# ------------------------------------------------------------------------------------------------- domains


def test_load_reports_each_domain_in_list_order(mix) -> None:
    executor, result = mix
    d = result["domains"]
    assert d["names"] == DOMAINS
    assert d["raw_rows"] == [MAX_SAMPLES] * 4 and d["rows"] == [MAX_SAMPLES] * 4  # the demo rows are all valid
    assert result["num_train"] == sum(d["rows"]) == len(executor.run.train_dataset)
    assert d["domain_of_row"].dtype == np.int32
    np.testing.assert_array_equal(d["domain_of_row"], np.repeat(np.arange(4), MAX_SAMPLES))
    assert result["eval_splits"] == [{"name": n, "rows": MAX_SAMPLES} for n in EVAL_SETS]
    assert result["num_eval"] == MAX_SAMPLES and result["frozen_params"] == 0


def test_each_domain_holds_the_rows_llamafactory_makes_of_that_dataset_alone(mix) -> None:
    executor, result = mix
    run = executor.run
    starts = np.concatenate([[0], np.cumsum(result["domains"]["rows"])])
    for k, name in enumerate(DOMAINS):
        own = lf_rows(run, name, None)["train_dataset"]
        mixed = run.train_dataset.select(range(int(starts[k]), int(starts[k + 1])))
        assert len(own) == len(mixed)
        assert mixed["input_ids"] == own["input_ids"], name
        assert mixed["labels"] == own["labels"], name
    # Domains differ, so a wrong offset would not go unnoticed.
    assert run.train_dataset[0]["input_ids"] != run.train_dataset[int(starts[2])]["input_ids"]


def test_named_eval_splits_are_the_rows_and_losses_of_the_same_set_as_eval_dataset(mix) -> None:
    executor, result = mix
    run = executor.run
    for name in EVAL_SETS:
        own = lf_rows(run, None, name)["eval_dataset"]
        assert run.eval_splits[name]["input_ids"] == own["input_ids"], name
        assert run.eval_splits[name]["labels"] == own["labels"], name
    n = MAX_SAMPLES
    idx = np.arange(n, dtype=np.int32)[::-1].copy()
    named = run_op(executor, "losses", {"split": "eval:arith_eval", "indices": idx})["losses"]
    plain = run_op(executor, "losses", {"split": "eval", "indices": idx})["losses"]  # eval_dataset: arith_eval
    assert named.shape == (n,) and np.all(np.isfinite(named)) and np.all(named > 0)
    assert_close_scaled(named, plain, 1e-6)
    other = run_op(executor, "losses", {"split": "eval:facts_eval", "indices": idx})["losses"]
    assert not np.allclose(other, plain)


def test_every_model_op_resolves_a_named_split(mix) -> None:
    executor, _ = mix
    idx = np.arange(2, dtype=np.int32)
    emb = run_op(executor, "embeddings", {"split": "eval:string_ops_eval", "indices": idx})["embeddings"]
    assert emb.shape[0] == 2 and np.all(np.isfinite(emb))
    grads = run_op(executor, "gradients", {"split": "eval:facts_eval", "indices": idx, "proj_dim": 8})["grads"]
    assert grads.shape == (2, 8) and np.any(grads != 0)
    gen = run_op(executor, "generate", {"split": "eval:arith_eval", "indices": idx[:1], "max_new_tokens": 2})
    assert gen["prompt_lengths"][0] > 0


def test_an_unknown_split_names_itself_and_the_known_ones(mix) -> None:
    executor, _ = mix
    for split in ("eval:nope", "eval:arith_clean"):  # a training domain is no eval split
        with pytest.raises(StateError) as info:
            run_op(executor, "losses", {"split": split, "indices": np.arange(1, dtype=np.int32)})
        message = str(info.value)
        assert f"unknown split '{split}'" in message
        assert "train, eval, eval:arith_eval, eval:string_ops_eval, eval:facts_eval" in message
    with pytest.raises(StateError, match="index out of range"):
        run_op(executor, "losses", {"split": "eval:facts_eval", "indices": np.array([MAX_SAMPLES], dtype=np.int32)})


def test_without_domains_load_reports_none_and_named_splits_are_unknown(tmp_path) -> None:
    executor = Executor()
    result = load(executor, tiny_config(str(tmp_path), dataset="arith_clean", max_samples=6, eval_dataset=None))
    assert result["domains"] is None and result["eval_splits"] == [] and result["frozen_params"] == 0
    with pytest.raises(StateError, match=r"unknown split 'eval:arith_eval' \(this run has: train\)"):
        run_op(executor, "losses", {"split": "eval:arith_eval", "indices": np.arange(1, dtype=np.int32)})


def test_preprocessing_drops_are_counted_per_domain(tmp_path) -> None:
    data = write_dataset_dir(tmp_path, {
        "ok": [qa(i) for i in range(3)],
        "one_bad": [qa(10), qa(11, valid=False), qa(12), qa(13), qa(14)],
    })
    executor = Executor()
    result = load(executor, tiny_config(str(tmp_path / "out"), dataset_dir=data, dataset="one_bad,ok",
                                        eval_dataset=None, max_samples=None), [])
    d = result["domains"]
    assert d["names"] == ["one_bad", "ok"] and d["raw_rows"] == [5, 3] and d["rows"] == [4, 3]
    np.testing.assert_array_equal(d["domain_of_row"], [0, 0, 0, 0, 1, 1, 1])
    assert result["num_train"] == 7 and result["num_eval"] == 0 and result["eval_splits"] == []


# ------------------------------------------------------------------------------- dataset_rows (a select run's)


def test_dataset_rows_of_a_plain_run_are_the_ranges_llamafactory_concatenated(tmp_path) -> None:
    """Without domains the training set is get_dataset's; each dataset's range holds that dataset's own rows."""
    executor = Executor()
    names = ["arith_clean", "string_ops", "facts"]
    result = load(executor, tiny_config(str(tmp_path), dataset=",".join(names), max_samples=7, eval_dataset=None),
                  dataset_rows=True)
    counted = result["dataset_rows"]
    assert counted == {"names": names, "rows": [7, 7, 7], "unavailable": None} and result["domains"] is None
    run = executor.run
    start = 0
    for name, n in zip(names, counted["rows"]):
        alone = lf_rows(run, name, None)["train_dataset"]
        assert run.train_dataset["input_ids"][start:start + n] == alone["input_ids"]
        start += n


def test_dataset_rows_unknown_when_rows_are_shuffled_or_dropped(tmp_path) -> None:
    shuffled = build_run(tiny_config(str(tmp_path / "a"), dataset="arith_clean,facts", val_size=0.25,
                                     eval_dataset=None), dataset_rows=True)
    assert shuffled.dataset_rows.rows is None and shuffled.dataset_rows.unavailable.startswith("val_size:")
    data = write_dataset_dir(tmp_path, {"ok": [qa(i) for i in range(3)], "one_bad": [qa(10), qa(11, valid=False)]})
    dropped = build_run(tiny_config(str(tmp_path / "b"), dataset_dir=data, dataset="ok,one_bad", eval_dataset=None,
                                    max_samples=None), dataset_rows=True)
    assert dropped.dataset_rows.rows is None
    assert dropped.dataset_rows.unavailable == "preprocessing dropped 1 of 5 rows, of datasets not recorded"


# ------------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("extra", "eval_sets", "says"),
    [
        ({"val_size": 0.2, "eval_dataset": None}, [], r"^val_size: .*eval_dataset.*mixer_eval_dataset"),
        ({"tokenized_path": "tok"}, [], r"^tokenized_path: "),
        ({"mix_strategy": "interleave_under"}, [], r"^mix_strategy: not supported with domain mixing \('interleave_under' interleaves"),
        ({"dataset": "facts,arith_clean,facts"}, [], r"^dataset: each domain must be listed once"),
        ({}, ["arith_eval", "arith_eval"], r"^domains.eval_sets: each eval set must be listed once"),
        ({}, ["no_such_set"], r"^domains.eval_sets: .*no_such_set"),
        ({"dataset": "arith_clean,no_such_domain"}, [], r"^dataset: .*no_such_domain"),
    ],
)
def test_mix_settings_that_cannot_work_are_refused_naming_the_key(tmp_path, extra, eval_sets, says) -> None:
    config = mix_config(str(tmp_path), **extra)
    if "tokenized_path" in extra:
        config["tokenized_path"] = str(tmp_path / "tok")
    with pytest.raises(ConfigError, match=says):
        build_run(config, domains={"eval_sets": eval_sets})


def test_a_domain_with_no_valid_row_is_refused_by_name(tmp_path) -> None:
    data = write_dataset_dir(tmp_path, {"ok": [qa(1)], "all_bad": [qa(2, valid=False), qa(3, valid=False)]})
    config = tiny_config(str(tmp_path / "out"), dataset_dir=data, dataset="ok,all_bad", eval_dataset=None)
    with pytest.raises(ConfigError, match=r"^dataset 'all_bad': no rows left after preprocessing"):
        build_run(config, domains={"eval_sets": []})


# ---------------------------------------------------------------------------------------------- freeze_gate


@pytest.mark.parametrize(
    ("name", "router"),
    [
        ("model.layers.0.mlp.gate.weight", True),  # Qwen2-MoE
        ("model.layers.0.mlp.shared_expert_gate.weight", True),
        ("model.layers.3.block_sparse_moe.gate.weight", True),  # Mixtral
        ("base_model.model.model.layers.0.mlp.gate.lora_A.default.weight", True),  # an adapter inside a router
        ("model.layers.0.mlp.gate_proj.weight", False),  # a dense MLP's projection is no router
        ("base_model.model.model.layers.0.mlp.experts.1.gate_proj.lora_B.default.weight", False),
        ("model.layers.0.mlp.shared_expert.gate_proj.weight", False),
        ("model.gate", False),  # a parameter called gate, outside any gate module
    ],
)
def test_router_parameters_are_those_inside_a_module_named_gate(name: str, router: bool) -> None:
    assert is_router_parameter(name) is router


def test_freeze_routers_on_a_lora_mixture_of_experts_model() -> None:
    """A random two-layer Qwen2-MoE with LoRA on the routers and the experts' MLPs: only the routers freeze."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(0)
    config = Qwen2MoeConfig(vocab_size=64, hidden_size=16, intermediate_size=32, moe_intermediate_size=8,
                            shared_expert_intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                            num_key_value_heads=1, num_experts=4, num_experts_per_tok=2)
    base = Qwen2MoeForCausalLM(config)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["gate", "shared_expert_gate", "gate_proj"]))
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    routers = {n for n in trainable if ".mlp.gate." in n or ".mlp.shared_expert_gate." in n}
    assert routers and any("gate_proj" in n for n in trainable)
    assert freeze_routers(model) == sum(trainable[n] for n in routers)
    still = {n for n, p in model.named_parameters() if p.requires_grad}
    assert still == set(trainable) - routers
    assert freeze_routers(model) == 0  # nothing trainable is left in a router


def test_freeze_gate_on_a_dense_model_freezes_nothing(tmp_path) -> None:
    result = load(Executor(), tiny_config(str(tmp_path), dataset="arith_clean", max_samples=4), freeze_gate=True)
    assert result["frozen_params"] == 0 and result["trainable_params"] > 0


@pytest.mark.skipif(not TINY_MOE.is_dir(), reason="models/tiny-qwen2-moe missing")
def test_freeze_gate_on_the_tiny_moe_model(tmp_path) -> None:
    """LoRA on every linear layer (lora_target: all), routers included: their adapters freeze, gate_proj's do not."""
    config = tiny_config(str(tmp_path), model_name_or_path=str(TINY_MOE), dataset="arith_clean", max_samples=4)
    plain, frozen = Executor(), Executor()
    plain_result = load(plain, config)
    frozen_result = load(frozen, {**config, "output_dir": str(tmp_path / "frozen")}, freeze_gate=True)

    def trainable(executor: Executor) -> dict[str, int]:
        return {n: p.numel() for n, p in executor.run.trainer.model.named_parameters() if p.requires_grad}

    before, after = trainable(plain), trainable(frozen)
    routers = {n for n in before if ".mlp.gate.lora_" in n or ".mlp.shared_expert_gate.lora_" in n}
    assert routers and any(".gate_proj.lora_" in n for n in after)
    assert set(after) == set(before) - routers
    assert frozen_result["frozen_params"] == sum(before[n] for n in routers)
    assert frozen_result["trainable_params"] == plain_result["trainable_params"] - frozen_result["frozen_params"]
    # The optimizer, built later from the trainer's model, never sees them.
    frozen.run.trainer.create_optimizer()
    held = {id(p) for group in frozen.run.trainer.optimizer.param_groups for p in group["params"]}
    model = frozen.run.trainer.model
    assert not any(id(p) in held for n, p in model.named_parameters() if n in routers)


@pytest.mark.skipif(not TINY_MOE.is_dir(), reason="models/tiny-qwen2-moe missing")
def test_router_loads_read_a_named_eval_split(tmp_path) -> None:
    """router_loads resolves `eval:<name>` like every model op: the named set's rows equal eval_dataset's."""
    executor = Executor()
    config = tiny_config(str(tmp_path), model_name_or_path=str(TINY_MOE), dataset="arith_clean,facts",
                         max_samples=4, eval_dataset="facts_eval")
    load(executor, config, ["facts_eval"])
    idx = np.arange(3, dtype=np.int32)
    named = run_op(executor, "router_loads", {"split": "eval:facts_eval", "indices": idx})
    plain = run_op(executor, "router_loads", {"split": "eval", "indices": idx})
    assert named["loads"].shape == (3, named["layers"] * named["experts"]) and named["loads"].sum() > 0
    np.testing.assert_array_equal(named["loads"], plain["loads"])  # token counts: exact
