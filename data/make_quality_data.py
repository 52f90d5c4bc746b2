#!/usr/bin/env python3
"""Write the quality study's multi-domain SFT set into data/quality/ (alpaca format), with a known structure.

Stdlib only, seeded, deterministic: running it twice gives byte-identical files. The generated files are committed;
re-run this script only when you change it. bench/quality-study.ts runs every method on this set and on data/demo.

What is known about it, by construction (docs/results.md states what each method should therefore do):

  domain      train  held-out  task                                      difficulty  what is special
  target        160        48  "Which is larger, 37 or 52?" -> "52"      medium      half of the held-out rows
  add           320        16  "What is 37 + 45?" -> "82"                medium      clean
  add_noisy     480        16*  the same task, other pairs               medium      40% of the answers are random
                                                                                     4-digit numbers
  parity        160        16  "Is 347 even or odd?" -> "odd"            easy        two possible answers
  facts         120        16  the demo's fictional-world facts          hard        recall of rare names

  * add_noisy has no held-out set of its own: add_eval (clean) measures the arithmetic both domains teach.

Every held-out row is clean and unseen in training (other number pairs, other numbers; facts asked with the other
phrasing, as in the demo). The held-out sets are target_eval, add_eval, parity_eval and facts_eval; the study's
headline held-out loss weights each set by its rows, so the target domain counts for half of it. Which add_noisy rows
are wrong is in add_noisy_labels.json (the demo's arith_noisy_labels.json format), never shown to the model.

Usage: python data/make_quality_data.py [--out data/quality] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_demo_data", HERE / "make_demo_data.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)  # the demo's row builders and JSON writer, reused as they are

N_TARGET, N_ADD, N_NOISY, N_PARITY = 160, 320, 480, 160
N_TARGET_EVAL, N_EVAL = 48, 16
NOISE_RATE = 0.40


def compare_row(a: int, b: int) -> dict:
    return {"instruction": f"Which is larger, {a} or {b}?", "input": "", "output": str(max(a, b))}


def make_target(rng: random.Random):
    """Ordered pairs of distinct two-digit numbers; train and held-out pairs are disjoint as unordered pairs."""
    pairs = [(a, b) for a in range(10, 100) for b in range(a + 1, 100)]
    rng.shuffle(pairs)
    chosen = pairs[: N_TARGET + N_TARGET_EVAL]
    # Either order, so the answer is first or second equally often.
    rows = [compare_row(a, b) if rng.random() < 0.5 else compare_row(b, a) for a, b in chosen]
    return rows[:N_TARGET], rows[N_TARGET:]


def make_add(rng: random.Random):
    """Disjoint (a, b) pairs for add, add_noisy and add_eval; a fixed share of add_noisy's answers corrupted."""
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(pairs)
    clean_pairs = pairs[:N_ADD]
    noisy_pairs = pairs[N_ADD : N_ADD + N_NOISY]
    eval_pairs = pairs[N_ADD + N_NOISY : N_ADD + N_NOISY + N_EVAL]
    clean = [demo.arith_row(a, b, a + b) for a, b in clean_pairs]
    evals = [demo.arith_row(a, b, a + b) for a, b in eval_pairs]
    n_wrong = round(NOISE_RATE * N_NOISY)
    wrong = set(rng.sample(range(N_NOISY), n_wrong))
    noisy, labels = [], []
    for i, (a, b) in enumerate(noisy_pairs):
        # As in the demo: a true sum has at most 3 digits, a wrong answer always 4, so a loss signal can see it.
        given = rng.randint(1000, 9999) if i in wrong else a + b
        noisy.append(demo.arith_row(a, b, given))
        labels.append({"index": i, "correct": a + b, "given": given, "is_wrong": given != a + b})
    meta = {
        "dataset": "add_noisy",
        "noise_rate": NOISE_RATE,
        "n_rows": N_NOISY,
        "n_wrong": n_wrong,
        "wrong_indices": sorted(wrong),
        "rows": labels,
    }
    return clean, noisy, evals, meta


def parity_row(n: int) -> dict:
    return {"instruction": f"Is {n} even or odd?", "input": "", "output": "even" if n % 2 == 0 else "odd"}


def make_parity(rng: random.Random):
    numbers = rng.sample(range(100, 1000), N_PARITY + N_EVAL)
    rows = [parity_row(n) for n in numbers]
    return rows[:N_PARITY], rows[N_PARITY:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "quality"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # One RNG per domain, so changing one domain does not reshuffle the others.
    target, target_eval = make_target(random.Random(f"{args.seed}/quality-target"))
    add, add_noisy, add_eval, noisy_meta = make_add(random.Random(f"{args.seed}/quality-add"))
    parity, parity_eval = make_parity(random.Random(f"{args.seed}/quality-parity"))
    facts, facts_eval = demo.make_facts(random.Random(f"{args.seed}/quality-facts"))
    files = {
        "target": target,
        "add": add,
        "add_noisy": add_noisy,
        "parity": parity,
        "facts": facts,
        "target_eval": target_eval,
        "add_eval": add_eval,
        "parity_eval": parity_eval,
        "facts_eval": facts_eval[:N_EVAL],
    }
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    for name, rows in files.items():
        demo.write_json(out / f"{name}.json", rows)
    demo.write_json(out / "add_noisy_labels.json", noisy_meta)
    demo.write_json(out / "dataset_info.json", {n: {"file_name": f"{n}.json", "formatting": "alpaca", "columns": columns} for n in files})
    for name, rows in files.items():
        print(f"{name:12s} {len(rows):4d} rows")
    print(f"add_noisy: {noisy_meta['n_wrong']} of {noisy_meta['n_rows']} answers wrong -> add_noisy_labels.json")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
