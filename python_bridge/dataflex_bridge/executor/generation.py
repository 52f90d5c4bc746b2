"""NICE's validation signal: sampled continuations, reward-model scores, projected REINFORCE gradients.

Three ops, so TypeScript sees (and logs) every intermediate:

* ``generate``: continuations of each eval example's PROMPT, i.e. the preprocessed row's input_ids up to its first
  label token. DataFlex formatted a template from raw ``instruction``/``input`` columns that LLaMA-Factory had
  already dropped, so every prompt was the bare template. Sampling draws from a ``torch.Generator`` seeded per
  (seed, example, sample): results do not depend on batching or call order, and no global RNG is touched.
* ``reward``: a local ``AutoModelForSequenceClassification`` scores prompt + response: sigmoid of a 1-logit head,
  else the softmax probability of the last class (DataFlex's rule).
* ``policy_gradients``: per example, the gradient of (1/S) Σ_m (r_m − b) · Σ_t −log π(y_mt | x, y_m<t) on the
  TRAINING model (the REINFORCE surrogate −E[(r − b) log π(y|x)]), projected by the same projector as the
  ``gradients`` op. b = mean reward of the example's samples with ``baseline='mean'`` (a difference from DataFlex,
  which has none: it removes the reward's common offset, so an example whose samples all score alike contributes
  nothing instead of a push towards whatever was sampled); ``baseline='none'`` is DataFlex's estimator.

The policy is the training model as it is now (on-policy) unless a separate local model directory is given; it
must share the run's vocabulary because it is fed the run's token ids.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .errors import ConfigError, StateError
from .gradients import MAX_RAW_BYTES, GradientArgs, _get_projector, trainable_parameters
from .model_ops import causal_inputs, eval_mode, preserved_rng, rows_of
from .weights import IGNORE_INDEX

log = logging.getLogger("dataflex_bridge.executor.generation")

_M64 = (1 << 64) - 1


# ------------------------------------------------------------------------------------------------- helpers


def sample_seed(seed: int, index: int, sample: int) -> int:
    """A 63-bit generator seed for (seed, example index, sample): splitmix64 of a mixed key.

    DataFlex used seed + 997·idx + m, which collides once mc_samples ≥ 997 and correlates neighbouring streams.
    """
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9 + int(sample) * 0x94D049BB133111EB) & _M64
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return (x ^ (x >> 31)) & ((1 << 63) - 1)


def prompt_of(row: dict, max_prompt_length: int | None = None) -> list[int]:
    """The prompt of a preprocessed SFT row: input_ids before the first label token (its last tokens if too long)."""
    ids, labels = list(row["input_ids"]), list(row["labels"])
    first = next((t for t, lab in enumerate(labels) if lab != IGNORE_INDEX), len(ids))
    prompt = ids[:first]
    if max_prompt_length is not None and max_prompt_length > 0 and len(prompt) > max_prompt_length:
        # Keep the end: it holds the instruction's tail and the assistant header generation continues from.
        prompt = prompt[-max_prompt_length:]
    return prompt


def _vocab_compatible(run, tokenizer) -> bool:
    """Every run token id means the same token to `tokenizer`."""
    vocab = tokenizer.get_vocab()
    return all(vocab.get(t) == i for t, i in run.tokenizer.get_vocab().items())


def _device_dtype(run):
    ref = next(run.trainer.model.parameters())
    return ref.device, getattr(run.model_args, "compute_dtype", None) or ref.dtype


def _load_local(run, path: str, kind: Literal["causal", "seqcls"], what: str):
    """A local model loaded once per run (eval mode, frozen) with its tokenizer, on the training device and dtype."""
    cache = run.caches.policy_models if kind == "causal" else run.caches.reward_models
    key = os.path.realpath(path)
    if key in cache:
        return cache[key]
    if not os.path.isdir(key):
        raise ConfigError(f"{what} '{path}' is not a local model directory")
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForSequenceClassification
    device, dtype = _device_dtype(run)
    try:
        model = cls.from_pretrained(key, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(key)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot load {what} '{path}': {exc}") from exc
    model.to(device).eval().requires_grad_(False)
    cache[key] = (model, tokenizer)
    return model, tokenizer


def _policy(run, path: str | None):
    if path is None:
        return run.trainer.model
    model, tokenizer = _load_local(run, path, "causal", "policy model")
    if not _vocab_compatible(run, tokenizer):
        raise ConfigError(
            f"policy model '{path}' has a different vocabulary from the training tokenizer; it is fed the run's "
            "token ids, so it must share the training model's tokenizer"
        )
    return model


def _stop_ids(run, model) -> set[int]:
    """LLaMA-Factory's generation stops: eos plus the additional special tokens, plus the policy's own eos."""
    tok = run.tokenizer
    ids = {tok.eos_token_id, *getattr(tok, "additional_special_tokens_ids", [])}
    cfg_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(cfg_eos if isinstance(cfg_eos, (list, tuple)) else [cfg_eos])
    return {int(i) for i in ids if i is not None}


def ragged(flat: np.ndarray, lengths: np.ndarray, what: str) -> list[np.ndarray]:
    """Rows of a flat id list cut at `lengths` (how the ops send NICE's prompts and responses)."""
    flat = np.asarray(flat).astype(np.int64, copy=False).reshape(-1)
    lengths = np.asarray(lengths).astype(np.int64, copy=False).reshape(-1)
    if (lengths < 0).any() or int(lengths.sum()) != flat.size:
        raise StateError(f"'{what}_lengths' (sum {int(lengths.sum())}) does not match '{what}_ids' ({flat.size} ids)")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(lengths.size)]


def _flat(rows: list[np.ndarray] | list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray([len(r) for r in rows], dtype=np.int32)
    flat = np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]) if rows else np.zeros(0, np.int32)
    return flat.astype(np.int32, copy=False), lengths


# ------------------------------------------------------------------------------------------------ generate


@dataclass(frozen=True)
class GenerateArgs:
    max_new_tokens: int = 512
    temperature: float = 0.7
    samples: int = 4
    seed: int = 42
    model: str | None = None
    max_prompt_length: int | None = None


@torch.no_grad()
def sample_continuations(model, prompt: list[int], seeds: list[int], args: GenerateArgs, stops: set[int],
                         vocab_rows: int) -> list[list[int]]:
    """len(seeds) sampled continuations of one prompt (batched: equal prompts need no padding).

    Row r draws only from its own generator, so its tokens depend on (seeds[r], the logits) alone. A stop token
    ends a row and is kept (its log-probability is part of the sequence's). Temperature 0 is greedy.
    """
    s = len(seeds)
    if s == 0 or args.max_new_tokens <= 0:
        return [[] for _ in range(s)]
    device = next(model.parameters()).device
    gens = [torch.Generator(device=device).manual_seed(x) for x in seeds]
    ids = torch.tensor([prompt], dtype=torch.long, device=device).expand(s, -1).contiguous()
    out = model(**{**causal_inputs(ids), "use_cache": True})
    past = out.past_key_values
    # Only ids the training model can embed may be sampled (a policy may pad its vocabulary further).
    logits = out.logits[:, -1, :vocab_rows].float()
    done = [False] * s
    rows: list[list[int]] = [[] for _ in range(s)]
    for _ in range(args.max_new_tokens):
        nxt = torch.empty(s, dtype=torch.long, device=device)
        if args.temperature <= 0:
            nxt.copy_(logits.argmax(-1))
        else:
            probs = torch.softmax(logits / args.temperature, dim=-1)
            for r in range(s):
                nxt[r] = torch.multinomial(probs[r], 1, generator=gens[r])[0]
        for r, t in enumerate(nxt.tolist()):
            if not done[r]:
                rows[r].append(t)
                done[r] = t in stops
        if all(done):
            break
        # Finished rows keep decoding (their tokens are discarded): causal attention keeps rows independent.
        out = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :vocab_rows].float()
    return rows


def generate(run, split: str, indices: np.ndarray, args: GenerateArgs) -> dict:
    if args.samples < 1 or args.max_new_tokens < 0:
        raise StateError("generate: samples must be >= 1 and max_new_tokens >= 0")
    dataset = rows_of(run, split, indices, "generate")
    if "labels" not in dataset.column_names:
        raise StateError(f"generate: split '{split}' has no labels column, so prompts cannot be told from responses")
    model = _policy(run, args.model)
    stops = _stop_ids(run, model)
    vocab_rows = run.trainer.model.get_input_embeddings().num_embeddings
    prompts: list[list[int]] = []
    responses: list[list[int]] = []
    t0 = time.perf_counter()
    with preserved_rng(), eval_mode(model):
        for i in indices.tolist():
            prompt = prompt_of(dataset[i], args.max_prompt_length)
            if not prompt:
                raise StateError(
                    f"generate: example {i} of split '{split}' has an empty prompt (its first token is already a "
                    "label: stage pt or train_on_prompt); NICE needs SFT rows with a masked prompt"
                )
            prompts.append(prompt)
            seeds = [sample_seed(args.seed, i, m) for m in range(args.samples)]
            responses.extend(sample_continuations(model, prompt, seeds, args, stops, vocab_rows))
    prompt_ids, prompt_lengths = _flat(prompts)
    response_ids, response_lengths = _flat(responses)
    return {
        "prompt_ids": prompt_ids,
        "prompt_lengths": prompt_lengths,
        "response_ids": response_ids,
        "response_lengths": response_lengths,
        "samples": args.samples,
        "seconds": time.perf_counter() - t0,
    }


# -------------------------------------------------------------------------------------------------- reward


def reward_scores(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid of a single logit, else the softmax probability of the last class; float32 [B]."""
    logits = logits.float()
    if logits.dim() == 1:
        return torch.sigmoid(logits)
    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=-1)[:, -1]


def rewards(run, prompts: list[np.ndarray], responses: list[np.ndarray], samples: int, path: str,
            batch_size: int = 8) -> tuple[np.ndarray, bool]:
    """Score every response (responses[j] continues prompts[j // samples]); returns scores and whether text was
    re-tokenised for a reward model with another vocabulary."""
    if samples < 1 or len(responses) != len(prompts) * samples:
        raise StateError(f"reward: {len(responses)} responses for {len(prompts)} prompts × {samples} samples")
    model, tokenizer = _load_local(run, path, "seqcls", "reward model")
    same_vocab = _vocab_compatible(run, tokenizer)
    device = next(model.parameters()).device
    pad = model.config.pad_token_id
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        # HF pools the last non-pad token and refuses batches without a pad id.
        model.config.pad_token_id = pad
    seqs: list[list[int]] = []
    for j, resp in enumerate(responses):
        prompt = prompts[j // samples]
        if same_vocab:
            seqs.append([int(t) for t in prompt] + [int(t) for t in resp])
        else:
            # Another tokenizer: go through text. The prompt keeps its chat-template markers.
            text = run.tokenizer.decode(prompt.tolist() + resp.tolist(), skip_special_tokens=False)
            seqs.append(tokenizer(text, add_special_tokens=True)["input_ids"])
    out = np.zeros(len(seqs), dtype=np.float32)
    with preserved_rng(), eval_mode(model):
        for start in range(0, len(seqs), max(1, batch_size)):
            batch = seqs[start : start + batch_size]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), int(pad if pad is not None else 0), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, s in enumerate(batch):
                ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                mask[r, : len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            out[start : start + len(batch)] = reward_scores(logits).cpu().numpy()
    if not np.isfinite(out).all():
        raise StateError("reward: the reward model returned non-finite scores")
    return out, not same_vocab


# ---------------------------------------------------------------------------------------- policy gradients


def reinforce_weights(rewards_: np.ndarray, samples: int, baseline: str) -> np.ndarray:
    """(r_m − b) / S per sample, [n, S]; b = the example's mean reward ('mean') or 0 ('none')."""
    r = np.asarray(rewards_, dtype=np.float64).reshape(-1, samples)
    if baseline == "mean":
        r = r - r.mean(axis=1, keepdims=True)
    elif baseline != "none":
        raise StateError(f"policy_gradients: baseline must be 'mean' or 'none', got {baseline!r}")
    return r / samples


def weighted_nll(model, prompt: list[int], responses: list[list[int]], weights: list[float]) -> torch.Tensor:
    """Σ_m w_m · Σ_t −log π(y_mt | x, y_m<t), the S continuations of one prompt in one right-padded batch.

    Right padding is exact under causal attention and pads carry no label, so each row's term equals its unpadded
    one (model_ops.causal_inputs, as in the `gradients` op).
    """
    device = next(model.parameters()).device
    width = len(prompt) + max(len(r) for r in responses)
    ids = torch.zeros(len(responses), width, dtype=torch.long, device=device)
    labels = torch.full((len(responses), width), IGNORE_INDEX, dtype=torch.long, device=device)
    for m, resp in enumerate(responses):
        seq = torch.tensor(list(prompt) + list(resp), dtype=torch.long, device=device)
        ids[m, : seq.numel()] = seq
        labels[m, len(prompt) : seq.numel()] = seq[len(prompt) :]
    logits = model(**causal_inputs(ids)).logits[:, :-1].float()
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(len(responses), -1)
    w = torch.tensor(weights, dtype=torch.float32, device=device)
    return (ce.sum(dim=1) * w).sum()


def policy_gradients(run, prompts: list[np.ndarray], responses: list[np.ndarray], rewards_: np.ndarray,
                     samples: int, args: GradientArgs, baseline: str = "mean") -> tuple[np.ndarray, int, int]:
    """Projected REINFORCE gradients [n, d] (float32), P, and the number of all-zero-weight examples."""
    n = len(prompts)
    if len(responses) != n * samples or np.asarray(rewards_).size != n * samples:
        raise StateError(
            f"policy_gradients: {len(responses)} responses and {np.asarray(rewards_).size} rewards for "
            f"{n} prompts × {samples} samples"
        )
    if args.proj_dim < 0 or args.chunk_size < 1:
        raise StateError("policy_gradients: proj_dim must be >= 0 and chunk_size >= 1")
    weights = reinforce_weights(rewards_, samples, baseline)
    model = run.trainer.model
    named = trainable_parameters(model)
    if not named:
        raise StateError("policy_gradients: the model has no trainable parameters")
    params = [p for _, p in named]
    sizes = [p.numel() for p in params]
    total = sum(sizes)
    vocab_rows = model.get_input_embeddings().num_embeddings
    for resp in responses:
        if resp.size and (int(resp.min()) < 0 or int(resp.max()) >= vocab_rows):
            raise StateError(f"policy_gradients: response token ids must lie in [0, {vocab_rows})")
    device = params[0].device
    dim = args.proj_dim or total
    if args.proj_dim == 0 and n * total * 4 > MAX_RAW_BYTES:
        raise StateError(f"policy_gradients: raw gradients would take {n * total * 4 / 2**30:.1f} GiB; set proj_dim")
    projector = _get_projector(run, args, sizes, device) if args.proj_dim else None
    offsets = np.cumsum([0] + sizes)
    out = torch.zeros(n, dim, dtype=torch.float32, device=device)
    zero_rows = 0
    with preserved_rng(), eval_mode(model, grad=True):
        for start in range(0, n, args.chunk_size):
            stop = min(n, start + args.chunk_size)
            # Per-parameter accumulators of the chunk's examples: [rows, numel] each, fp32.
            acc = [torch.zeros(stop - start, s, dtype=torch.float32, device=device) for s in sizes]
            for i in range(start, stop):
                # Samples of weight 0 contribute nothing: leave them out of the forward/backward.
                keep = [m for m in range(samples) if weights[i, m] != 0.0]
                if not keep:
                    zero_rows += 1
                    continue
                loss = weighted_nll(model, prompts[i].tolist(), [responses[i * samples + m].tolist() for m in keep],
                                    [float(weights[i, m]) for m in keep])
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                with torch.no_grad():
                    for b, g in enumerate(grads):
                        if g is not None:
                            acc[b][i - start] = g.reshape(-1).float()
            with torch.no_grad():
                block = out[start:stop]
                for b in range(len(sizes)):
                    if projector is None:
                        block[:, offsets[b] : offsets[b + 1]] = acc[b]
                    else:
                        projector.add_block(block, b, acc[b])
    if args.normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out.cpu().numpy(), total, zero_rows
