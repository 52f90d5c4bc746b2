"""Build a run exactly as LLaMA-Factory's `tuner._training_function` + `run_sft`/`run_pt` do.

The order matters for bit-exact parity with `llamafactory-cli train`: `get_train_args` seeds the RNG before
`load_model`, and the Trainer's constructor seeds it again. Nothing here patches LLaMA-Factory; we only call its
public loaders and construct its own trainer class.
"""

from __future__ import annotations

import os

import functools

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import domains as domain_data
from . import raw_rows as raw_data
from .errors import ConfigError
from .freeze import freeze_routers

if TYPE_CHECKING:
    import numpy as np

    from .projector import Projector
    from .step_loop import Loop


@dataclass
class RunCaches:
    """What the read-only ops learn or load once per run; each field is written by the one module named."""

    # model_ops.sample_lengths: token count of every sample, per split ('train' / 'eval').
    sample_lengths: dict[str, np.ndarray] = field(default_factory=dict)
    # model_ops.sample_order: the trainer's own train dataloader, whose sampler gives the epoch orders.
    train_dataloader: Any = None
    # shared_prefix.PrefixScorer: None until the first check, then True (verified) or False (disabled for the run).
    prefix_check: bool | None = None
    # gradients: the method that failed on this model is not retried ('linear' -> vmap; vmap -> 'loop').
    linear_unsupported: bool = False
    gradient_fallback: Literal["loop"] | None = None
    pass_rows_logged: bool = False
    # gradients._get_projector (the gradients and policy_gradients ops): the last projector, keyed by its
    # arguments, parameter sizes and device (one at a time bounds the memory).
    projector: tuple[tuple, Projector] | None = None
    # embeddings: separate embedding models by real path.
    embed_models: dict[str, Any] = field(default_factory=dict)
    # generation: (model, tokenizer) by real path, of NICE's policy models and reward models.
    policy_models: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reward_models: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # reference.load_reference (begin_pass's reference_model): frozen reference models by real path.
    reference_models: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    model_args: Any
    data_args: Any
    training_args: Any
    finetuning_args: Any
    generating_args: Any
    stage: str
    tokenizer: Any
    trainer: Any
    train_dataset: Any
    eval_dataset: Any
    collator: Any
    # set by step_loop.begin
    loop: Loop | None = None
    caches: RunCaches = field(default_factory=RunCaches)
    # a mix run (load's `domains`): the training set's domains, and the named eval sets (split `eval:<name>`)
    domains: domain_data.Domains | None = None
    # load's `raw_rows`: the raw row of every training row (and a raw score column)
    raw_rows: raw_data.RawRows | None = None
    # load's `dataset_rows`: the training rows of each dataset of `dataset`
    dataset_rows: domain_data.DatasetRows | None = None
    eval_splits: dict[str, Any] = field(default_factory=dict)
    frozen_params: int = 0  # parameter elements frozen by freeze_gate

    @functools.cached_property
    def eval_rows(self) -> Any:
        """The split 'eval': the eval set, or with eval_on_each_dataset all of its sets in order (None: no eval set)."""
        if not isinstance(self.eval_dataset, dict):
            return self.eval_dataset
        from datasets import concatenate_datasets

        return concatenate_datasets(list(self.eval_dataset.values()))


def _ensure_torchaudio() -> None:
    # LLaMA-Factory imports torchaudio unconditionally; the setup installs a stub package when the real one is
    # absent. This guard only turns a confusing ImportError deep in transformers into a clear message.
    try:
        import torchaudio  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "torchaudio is not importable; run `npm run setup` (installs a stub) or `pip install torchaudio`"
        ) from exc


_SUPPORTED_STAGES = ("sft", "pt")


def check_engines(config: dict[str, Any], has_gpu: bool | None = None, has_deepspeed: bool | None = None) -> None:
    """DeepSpeed (`deepspeed:`) and FSDP (`fsdp:`) pass through to the Trainer as in LLaMA-Factory; refused here,
    naming the key, where they cannot run: both need GPUs (accelerate has no CPU FSDP, DeepSpeed no CPU path without
    oneCCL), and DeepSpeed must be installed in the sidecar's Python."""
    import importlib.util

    import torch

    ds, fsdp = config.get("deepspeed"), config.get("fsdp")
    if not ds and not fsdp:
        return
    if ds and fsdp:
        raise ConfigError("deepspeed and fsdp: choose one engine (LLaMA-Factory takes one of them)")
    key = "deepspeed" if ds else "fsdp"
    if has_gpu is None:
        has_gpu = torch.cuda.is_available()
    if not has_gpu:
        raise ConfigError(f"{key}: {'DeepSpeed' if ds else 'FSDP'} runs on GPUs and this host has none (torch sees no "
                          "CUDA device); drop the key to train with DDP, or run on a GPU host (docs/ranks.md)")
    if ds:
        if has_deepspeed is None:
            has_deepspeed = importlib.util.find_spec("deepspeed") is not None
        if not has_deepspeed:
            raise ConfigError("deepspeed: DeepSpeed is not installed in the sidecar's Python; `pip install "
                              "deepspeed` there (the Docker image leaves it out), or drop the key")
        if isinstance(ds, str) and not ds.lstrip().startswith("{") and not os.path.isfile(ds):
            raise ConfigError(f"deepspeed: no DeepSpeed config file at '{ds}'")


def build_run(config: dict[str, Any], domains: dict[str, Any] | None = None, freeze_gate: bool = False,
              raw_rows: dict[str, Any] | None = None, dataset_rows: bool = False) -> Run:
    """The run of `config`; `domains` ({eval_sets}) makes it a mix run (domains.py), `freeze_gate` freezes routers,
    `raw_rows` ({score_field}) traces the training rows to raw rows (raw_rows.py), `dataset_rows` counts the
    training rows of each dataset (domains.dataset_rows)."""
    _ensure_torchaudio()
    check_engines(config)
    from llamafactory.hparams import get_train_args
    from llamafactory.train.callbacks import LogCallback, ReporterCallback
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_model, load_tokenizer

    try:
        model_args, data_args, training_args, finetuning_args, generating_args = get_train_args(dict(config))
    except (ValueError, TypeError, OSError, FileNotFoundError) as exc:
        raise ConfigError(_clean(exc)) from exc
    except SystemExit as exc:  # HfArgumentParser exits on some bad values
        raise ConfigError(f"invalid LLaMA-Factory arguments ({exc})") from exc

    stage = finetuning_args.stage
    if stage not in _SUPPORTED_STAGES:
        raise ConfigError(f"stage: '{stage}' is not supported by the DataFlex executor (supported: sft, pt)")
    if not training_args.do_train:
        raise ConfigError("do_train: must be true for `dataflex train`")
    resume = training_args.resume_from_checkpoint
    if resume and not os.path.isfile(os.path.join(resume, "trainer_state.json")):
        raise ConfigError(f"resume_from_checkpoint: '{resume}' is not a complete checkpoint (no trainer_state.json)")
    # Several ranks run under torchrun with rank 0 leading (ranks.py); which ops they support is decided there.
    # DeepSpeed and FSDP configs pass through to the Trainer as in LLaMA-Factory (docs/ranks.md).

    # Same callback list, same order, as tuner._training_function (ReporterCallback last).
    callbacks: list[Any] = [LogCallback()]
    if finetuning_args.early_stopping_steps is not None:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=finetuning_args.early_stopping_steps))
    callbacks.append(ReporterCallback(model_args, data_args, finetuning_args, generating_args))

    if raw_rows is not None:
        if domains is not None:
            raise ConfigError("raw_rows: not supported in a mix run")
        from llamafactory.data.parser import get_dataset_list

        try:
            attrs = get_dataset_list(data_args.dataset, data_args.dataset_dir)
        except (ValueError, OSError, KeyError) as exc:
            raise ConfigError(f"dataset: {_clean(exc)}") from exc
        raw_data.check_config(data_args, data_args.dataset, attrs)  # before anything loads

    traced = None
    try:
        tokenizer_module = load_tokenizer(model_args)
        tokenizer = tokenizer_module["tokenizer"]
        template = get_template_and_fix_tokenizer(tokenizer, data_args)
        mix = None
        try:
            if domains is None:
                dataset_module = get_dataset(template, model_args, data_args, training_args, stage=stage,
                                             **tokenizer_module)
            else:
                mix = domain_data.load(template, model_args, data_args, training_args, stage, tokenizer_module,
                                       domains["eval_sets"])
                dataset_module = mix.dataset_module
        except Exception as exc:
            bad = _dataset_error(exc, data_args)
            if bad is None:
                raise
            raise bad from exc
        if stage == "sft":  # before the model loads
            _check_labels(dataset_module.get("train_dataset"), data_args)
        counted = None
        if dataset_rows:
            if mix is not None:
                counted = domain_data.DatasetRows(names=mix.domains.names, rows=mix.domains.rows, unavailable=None)
            else:
                train_rows = dataset_module.get("train_dataset")
                counted = domain_data.dataset_rows(model_args, data_args, training_args, stage,
                                                   0 if train_rows is None else len(train_rows))
        if raw_rows is not None:  # before the model loads: a bad score column fails fast
            traced = raw_data.load(template, model_args, data_args, training_args, stage, tokenizer_module,
                                   dataset_module["train_dataset"], raw_rows["score_field"])
        model = load_model(tokenizer, model_args, finetuning_args, training_args.do_train)
    except (ValueError, OSError, FileNotFoundError, KeyError) as exc:
        raise ConfigError(_clean(exc)) from exc
    frozen_params = freeze_routers(model) if freeze_gate else 0  # before the Trainer builds its optimizer

    if stage == "sft":
        trainer, collator = _sft_trainer(
            model, tokenizer_module, template, dataset_module, model_args, data_args, training_args,
            finetuning_args, generating_args, callbacks,
        )
    else:
        trainer, collator = _pt_trainer(model, tokenizer_module, dataset_module, training_args, finetuning_args, callbacks)

    train_dataset = dataset_module.get("train_dataset")
    if train_dataset is None or len(train_dataset) == 0:
        raise ConfigError("dataset: the training set is empty after preprocessing (check `dataset` and `cutoff_len`)")
    eval_dataset = dataset_module.get("eval_dataset")
    eval_splits = {} if mix is None else dict(mix.eval_splits)
    if isinstance(eval_dataset, dict):
        # eval_on_each_dataset: each set is also a named split `eval:<name>` (and 'eval' is all of them).
        for name, rows in eval_dataset.items():
            eval_splits.setdefault(name, rows)
    return Run(
        model_args=model_args,
        data_args=data_args,
        training_args=training_args,
        finetuning_args=finetuning_args,
        generating_args=generating_args,
        stage=stage,
        tokenizer=tokenizer,
        trainer=trainer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        collator=collator,
        domains=None if mix is None else mix.domains,
        raw_rows=traced,
        dataset_rows=counted,
        eval_splits=eval_splits,
        frozen_params=frozen_params,
    )


def _sft_trainer(model, tokenizer_module, template, dataset_module, model_args, data_args, training_args,
                 finetuning_args, generating_args, callbacks):
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.train.sft.metric import ComputeAccuracy, ComputeSimilarity, eval_logit_processor
    from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer

    tokenizer = tokenizer_module["tokenizer"]
    collator = SFTDataCollatorWith4DAttentionMask(
        template=template,
        model=model if not training_args.predict_with_generate else None,
        pad_to_multiple_of=8 if training_args.do_train else None,
        label_pad_token_id=IGNORE_INDEX if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id,
        block_diag_attn=model_args.block_diag_attn,
        neat_packing=data_args.neat_packing,
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        compute_dtype=model_args.compute_dtype,
        **tokenizer_module,
    )
    metric_module: dict[str, Any] = {}
    if training_args.predict_with_generate:
        metric_module["compute_metrics"] = ComputeSimilarity(tokenizer=tokenizer)
    elif finetuning_args.compute_accuracy:
        metric_module["compute_metrics"] = ComputeAccuracy()
        metric_module["preprocess_logits_for_metrics"] = eval_logit_processor
    gen_kwargs = generating_args.to_dict(obey_generation_config=True)
    gen_kwargs["eos_token_id"] = [tokenizer.eos_token_id] + tokenizer.additional_special_tokens_ids
    gen_kwargs["pad_token_id"] = tokenizer.pad_token_id
    trainer = CustomSeq2SeqTrainer(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        data_collator=collator,
        callbacks=callbacks,
        gen_kwargs=gen_kwargs,
        **dataset_module,
        **tokenizer_module,
        **metric_module,
    )
    return trainer, collator


def _pt_trainer(model, tokenizer_module, dataset_module, training_args, finetuning_args, callbacks):
    from transformers import DataCollatorForLanguageModeling
    from llamafactory.train.pt.trainer import CustomTrainer

    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer_module["tokenizer"], mlm=False)
    trainer = CustomTrainer(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        data_collator=collator,
        callbacks=callbacks,
        **dataset_module,
        **tokenizer_module,
    )
    return trainer, collator


def _dataset_names(data_args: Any) -> str:
    names = [*(data_args.dataset or []), *(data_args.eval_dataset or [])]
    return ", ".join(f"'{n}'" for n in names) or "(none)"


def _dataset_error(exc: BaseException, data_args: Any) -> ConfigError | None:
    """A loading failure of the datasets as a ConfigError naming them, or None when it is not about the data.

    LLaMA-Factory and `datasets` report bad data without naming the dataset: "An error occurred while generating the
    dataset" (unreadable file; the parser's error is its cause), "Cannot find valid samples" (every row dropped),
    "corresponds to no data" (an empty file), or a bare KeyError for a missing column.
    """
    from datasets.exceptions import DatasetGenerationError

    where = f"{_dataset_names(data_args)} (dataset_dir {data_args.dataset_dir})"
    if isinstance(exc, DatasetGenerationError):
        cause = exc.__cause__ or exc.__context__
        why = _clean(cause) if cause is not None else _clean(exc)
        return ConfigError(f"dataset: cannot read the data file of {where}: {why}")
    msg = str(exc)
    if isinstance(exc, RuntimeError) and "Cannot find valid samples" in msg:
        return ConfigError(f"dataset: every row of {where} was dropped by preprocessing (no row has both a "
                           "prompt and a response in the columns dataset_info.json maps); check its `columns` and "
                           "`formatting`")
    if "corresponds to no data" in msg:
        return ConfigError(f"dataset: {where} has no rows")
    if isinstance(exc, KeyError):
        return ConfigError(f"dataset: a row of {where} has no column {msg}; check the file or the `columns` "
                           "of its dataset_info.json entry")
    if isinstance(exc, (ValueError, OSError)):
        return ConfigError(f"dataset: {_clean(exc)} ({where})")
    return None


def _check_labels(train_dataset: Any, data_args: Any) -> None:
    """Refuse a training set where no row keeps a label token: cutoff_len cut every response away, and training on it
    would report a loss of 0 for every step."""
    from llamafactory.extras.constants import IGNORE_INDEX

    if train_dataset is None or len(train_dataset) == 0 or "labels" not in train_dataset.column_names:
        return
    # Stops at the first row with a label: one batch in any usable run.
    for batch in train_dataset.select_columns(["labels"]).iter(batch_size=1024):
        if any(t != IGNORE_INDEX for row in batch["labels"] for t in row):
            return
    raise ConfigError(
        f"cutoff_len: none of the {len(train_dataset)} training rows of {_dataset_names(data_args)} keeps a "
        f"label token after truncation to cutoff_len {data_args.cutoff_len}, so the loss would be 0 at every step; "
        "set a larger cutoff_len",
    )


def _clean(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    return msg.splitlines()[0] if len(msg) > 600 else msg
