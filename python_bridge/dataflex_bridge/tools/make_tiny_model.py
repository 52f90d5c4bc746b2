"""Build a tiny random-init causal LM plus a locally trained tokenizer, fully offline.

    python -m dataflex_bridge.tools.make_tiny_model --out models/tiny-qwen2 --data data/demo \
        [--size tiny|small] [--arch qwen2|llama|qwen2_moe] [--seed 0] [--vocab 1024] [--head causal|seqcls]

* Tokenizer: byte-level BPE trained with `tokenizers` on the text of the datasets listed in
  `<data>/dataset_info.json` (plus the chat-template boilerplate, so prompts stay short). Digits are
  split one per token, which suits the arithmetic demo. Special tokens: <|endoftext|> (pad),
  <|im_start|>, <|im_end|> (eos, the stop word of LLaMA-Factory's `qwen` template). ChatML chat_template.
* Model: Qwen2 (or Llama) config of the chosen size with tied embeddings, seeded random weights,
  saved with `save_pretrained` (safetensors).
* `--arch qwen2_moe`: the same backbone sizes as a Qwen2-MoE (MOE_SIZES: routed experts, top-k, one shared
  expert in every layer): the mixture-of-experts test model of the `router_loads` op. The tokenizer is the one
  the other archs get from the same data, so its token ids mean what they mean to tiny-qwen2.
* `--head seqcls`: the same backbone and tokenizer as an AutoModelForSequenceClassification with one
  label (a local reward model for NICE's tests: score = sigmoid of the logit).

Deterministic: the same data, arguments and library versions give byte-identical files. Runs in a
few seconds on a CPU and never touches the network. The output directory is written to a temporary
sibling first and renamed into place, so an interrupted run never leaves a half-written model behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

# Never reach for the Hub; everything here is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]

# System prompts that chat templates insert by default; adding them to the tokenizer corpus keeps the
# tokenized prompt short (LLaMA-Factory's `qwen` template injects the first one).
DEFAULT_SYSTEMS = [
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    "You are a helpful assistant.",
]

# Pre-tokenizer split: contractions, letter runs (with one leading non-letter), single digits,
# punctuation runs, newlines, other whitespace.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)

# ChatML; adds the default system prompt when the conversation has none.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

SIZES = {
    # hidden, layers, heads, kv heads, intermediate
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=192),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4, intermediate_size=704),
}
# Qwen2-MoE: every layer sparse. The dense `intermediate_size` of SIZES goes unused (no mlp_only_layers).
MOE_SIZES = {
    "tiny": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48, shared_expert_intermediate_size=96),
    "small": dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=176, shared_expert_intermediate_size=352),
}
ARCHS = ("qwen2", "llama", "qwen2_moe")
MAX_POSITIONS = 1024
# Default init std of the tied embedding is EMBED_SCALE / hidden_size (0.1 for tiny): see build().
EMBED_SCALE = 6.4


def read_corpus(data_dir: Path) -> list[str]:
    """Text of every dataset listed in dataset_info.json, in a fixed order, rendered roughly as
    the chat template will show it (without the special tokens)."""
    info_path = data_dir / "dataset_info.json"
    if not info_path.is_file():
        raise SystemExit(f"make_tiny_model: {info_path} not found (run data/make_demo_data.py first)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    files = sorted({entry["file_name"] for entry in info.values() if "file_name" in entry})
    corpus: list[str] = []
    for system in DEFAULT_SYSTEMS:
        corpus.append(f"system\n{system}\n")
    for name in files:
        rows = json.loads((data_dir / name).read_text(encoding="utf-8"))
        for row in rows:
            prompt = row.get("instruction", "")
            if row.get("input"):
                prompt = f"{prompt}\n{row['input']}"
            corpus.append(f"user\n{prompt}\nassistant\n{row.get('output', '')}\n")
    return corpus


def train_tokenizer(corpus: list[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=MAX_POSITIONS,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_config(arch: str, size: str, tokenizer):
    from transformers import LlamaConfig, Qwen2Config, Qwen2MoeConfig

    common = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        initializer_range=0.02,
        hidden_act="silu",
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
        dtype="float32",
        use_cache=True,
        **SIZES[size],
    )
    if arch == "qwen2":
        return Qwen2Config(use_sliding_window=False, attention_dropout=0.0, **common)
    if arch == "llama":
        return LlamaConfig(attention_bias=False, mlp_bias=False, attention_dropout=0.0, **common)
    if arch == "qwen2_moe":
        return Qwen2MoeConfig(
            use_sliding_window=False, attention_dropout=0.0, decoder_sparse_step=1, norm_topk_prob=False,
            router_aux_loss_coef=0.001, **MOE_SIZES[size], **common,
        )
    raise SystemExit(f"make_tiny_model: unknown --arch {arch!r} (expected one of {', '.join(ARCHS)})")


HEADS = ("causal", "seqcls")


def build(
    out: Path, data_dir: Path, size: str, arch: str, seed: int, vocab: int, embed_std: float | None, head: str = "causal"
) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, GenerationConfig

    t0 = time.perf_counter()
    tokenizer = train_tokenizer(read_corpus(data_dir), vocab)
    config = build_config(arch, size, tokenizer)

    torch.manual_seed(seed)
    if head == "seqcls":
        # One label: the reward is sigmoid(logit). HF pools the last non-pad token, so pad_token_id must be set
        # (build_config does).
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    elif head == "causal":
        model = AutoModelForCausalLM.from_config(config)
    else:
        raise SystemExit(f"make_tiny_model: unknown --head {head!r} (expected one of {', '.join(HEADS)})")
    if embed_std is None:
        embed_std = EMBED_SCALE / config.hidden_size
    if embed_std > 0:
        # The (tied) embedding is also the output head, and the final RMSNorm fixes |h| at ~sqrt(hidden),
        # so logits can span only about std * hidden nats. With the usual std of 0.02 that is ~1.3 nats for
        # hidden=64, and LoRA (which never touches the embedding or the norm) cannot sharpen them: the loss
        # stalls near log(vocab) (bench/results/setup.md). std = 6.4 / hidden keeps the initial loss near
        # log(vocab) and lets LoRA-only training learn (bench/results/setup.md).
        with torch.no_grad():
            weight = model.get_input_embeddings().weight
            weight.normal_(0.0, embed_std)
            weight[config.pad_token_id].zero_()
    if head == "causal":
        model.generation_config = GenerationConfig(
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=False, max_new_tokens=32
        )
    n_params = sum(p.numel() for p in model.parameters())

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            f.chmod(0o644)  # safetensors writes 0600; the model is shared, e.g. inside an image
        meta = {
            "generator": "dataflex_bridge.tools.make_tiny_model",
            "arch": arch,
            "size": size,
            "head": head,
            "seed": seed,
            "embed_std": round(embed_std, 6) if embed_std > 0 else config.initializer_range,
            "vocab_size": len(tokenizer),
            "parameters": n_params,
            "data": str(data_dir),
        }
        (tmp / "dataflex_model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dataflex_bridge.tools.make_tiny_model",
        description="Build a tiny random-init causal LM and a locally trained BPE tokenizer (offline).",
    )
    ap.add_argument("--out", required=True, type=Path, help="output directory (replaced)")
    ap.add_argument("--data", required=True, type=Path, help="dataset dir with dataset_info.json (tokenizer corpus)")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--arch", choices=ARCHS, default="qwen2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=1024, help="maximum BPE vocabulary size (incl. special tokens)")
    ap.add_argument(
        "--embed-std",
        type=float,
        default=None,
        help=f"init std of the tied embedding (default {EMBED_SCALE}/hidden_size; 0 = transformers' default 0.02)",
    )
    ap.add_argument("--head", choices=HEADS, default="causal", help="causal LM, or a 1-label sequence classifier (reward model)")
    args = ap.parse_args(argv)
    if not 300 <= args.vocab <= 1024:
        ap.error("--vocab must be between 300 and 1024")
    meta = build(args.out, args.data, args.size, args.arch, args.seed, args.vocab, args.embed_std, args.head)
    print(
        f"make_tiny_model: {meta['arch']}/{meta['size']}/{meta['head']} seed={meta['seed']} vocab={meta['vocab_size']} "
        f"params={meta['parameters']:,} -> {args.out} ({meta['seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
