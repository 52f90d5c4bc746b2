"""The tiny LoRA SFT config the Python tests build runs from (mirrors test/support.ts `tinyConfig`)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "models" / "tiny-qwen2"
TINY_MOE = REPO / "models" / "tiny-qwen2-moe"  # its mixture-of-experts twin (same tokenizer)
DEMO = REPO / "data" / "demo"

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")


def tiny_config(output_dir: str, **extra) -> dict:
    """LoRA with dropout (the ops must still be deterministic), GA 2, no checkpoints."""
    return {
        "model_name_or_path": str(TINY), "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "lora_rank": 4, "lora_alpha": 8, "lora_target": "all", "lora_dropout": 0.1,
        "disable_gradient_checkpointing": True, "dataset_dir": str(DEMO), "dataset": "arith_clean,facts",
        "template": "qwen", "cutoff_len": 128, "max_samples": 26, "overwrite_cache": True,
        "preprocessing_num_workers": 1, "dataloader_num_workers": 0, "output_dir": output_dir,
        "logging_steps": 1, "save_strategy": "no", "overwrite_output_dir": True, "report_to": "none",
        "plot_loss": False, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
        "learning_rate": 5.0e-3, "num_train_epochs": 1.0, "bf16": False, "seed": 42,
        "eval_dataset": "demo_eval", "per_device_eval_batch_size": 8, **extra,
    }


def run_op(executor, name: str, args: dict) -> dict:
    """Call an executor op's handler as the sidecar would after TypeScript sent `args` (catalog defaults filled)."""
    from dataflex_bridge import catalog

    return executor.handlers()[name].fn(catalog.with_defaults(name, args), None)
