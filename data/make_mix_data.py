#!/usr/bin/env python3
"""Write an imbalanced multi-domain dataset for the mixing study into data/mix/ (alpaca format).

The demo data (data/demo) has four domains of 120 rows each, so stratified and uniform sampling are the same mixture
there. This set makes them differ and gives a mixer something to find: a large domain of mostly wrong answers next
to small clean ones. Stdlib only, seeded, deterministic; the generated files are committed.

Domains (train):
  arith        120 clean additions
  arith_noisy  480 additions, 50% of the answers random 4-digit numbers (which ones: arith_noisy_labels.json)
  string_ops   136 reverse/uppercase rows (every training word, both operations)
  facts        120 fictional-world facts (the demo's table)
Held-out (clean): arith_eval 32, string_ops_eval 24 (unseen words), facts_eval 24 (the other phrasing).

Usage: python data/make_mix_data.py [--out data/mix] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_demo_data", HERE / "make_demo_data.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)  # the demo's generators, reused as they are

N_CLEAN, N_NOISY, N_EVAL, NOISE = 120, 480, 32, 0.5


def make_arith(rng: random.Random):
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(pairs)
    clean = [demo.arith_row(a, b, a + b) for a, b in pairs[:N_CLEAN]]
    noisy_pairs = pairs[N_CLEAN : N_CLEAN + N_NOISY]
    evals = [demo.arith_row(a, b, a + b) for a, b in pairs[N_CLEAN + N_NOISY : N_CLEAN + N_NOISY + N_EVAL]]
    wrong = set(rng.sample(range(N_NOISY), round(NOISE * N_NOISY)))
    noisy = [demo.arith_row(a, b, rng.randint(1000, 9999) if i in wrong else a + b) for i, (a, b) in enumerate(noisy_pairs)]
    return clean, noisy, evals, sorted(wrong)


def make_string_ops(rng: random.Random):
    words = list(demo.WORDS)
    rng.shuffle(words)
    eval_words, train_words = words[:12], words[12:]
    train = [demo.string_row(op, w) for w in train_words for op in ("reverse", "uppercase")]
    evals = [demo.string_row(op, w) for w in eval_words for op in ("reverse", "uppercase")]
    rng.shuffle(train)
    rng.shuffle(evals)
    return train, evals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "mix"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arith, arith_noisy, arith_eval, wrong = make_arith(random.Random(f"{args.seed}/mix-arith"))
    string_ops, string_ops_eval = make_string_ops(random.Random(f"{args.seed}/mix-string_ops"))
    facts, facts_eval = demo.make_facts(random.Random(f"{args.seed}/mix-facts"))
    files = {
        "arith": arith,
        "arith_noisy": arith_noisy,
        "string_ops": string_ops,
        "facts": facts,
        "arith_eval": arith_eval,
        "string_ops_eval": string_ops_eval,
        "facts_eval": facts_eval,
    }
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    for name, rows in files.items():
        demo.write_json(out / f"{name}.json", rows)
    demo.write_json(out / "arith_noisy_labels.json", {"dataset": "arith_noisy", "noise_rate": NOISE, "n_rows": N_NOISY, "wrong_indices": wrong})
    demo.write_json(out / "dataset_info.json", {n: {"file_name": f"{n}.json", "formatting": "alpaca", "columns": columns} for n in files})
    print(f"wrote {out}: " + ", ".join(f"{n} {len(r)}" for n, r in files.items()))


if __name__ == "__main__":
    main()
