#!/usr/bin/env python3
"""Write the DataFlex demo dataset (alpaca format) into data/demo/.

Stdlib only, seeded, deterministic: running it twice gives byte-identical files.
The generated files are committed; re-run this script only when you change it.

Domains (train, ~120 rows each):
  arith_clean  "What is 37 + 45?" -> "82"
  arith_noisy  same task, ~30% of the answers are corrupted (random 4-digit numbers); which ones is recorded in
               arith_noisy_labels.json (never shown to the model)
  string_ops   reverse or uppercase a short word
  facts        recall from a fixed fictional table ("What is the capital of Zorvania?" -> "Quelt")

Held-out eval sets (clean, 24 rows each): arith_eval, string_ops_eval, facts_eval,
and demo_eval = the three concatenated.

Usage: python data/make_demo_data.py [--out data/demo] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

N_TRAIN = 120
N_EVAL = 24
NOISE_RATE = 0.30

# A fixed fictional world. Every attribute value is unique, so a question has exactly one answer.
COUNTRIES = [
    # country,     capital,    currency, language,   animal
    ("Zorvania", "Quelt", "zorin", "Zorvic", "lynx"),
    ("Mirethia", "Ostrel", "miret", "Mirish", "heron"),
    ("Caldoria", "Venhal", "cald", "Caldic", "otter"),
    ("Elbrakan", "Tirsk", "brak", "Elbran", "ibex"),
    ("Fenwold", "Durmot", "fenny", "Fennic", "badger"),
    ("Gastrovia", "Pellun", "gastro", "Gastric", "stork"),
    ("Halvenor", "Kesmir", "halv", "Halven", "marten"),
    ("Istravel", "Noxhal", "istra", "Istran", "crane"),
    ("Jorundal", "Vekka", "jorn", "Jorundic", "moose"),
    ("Kelthar", "Brisomb", "kel", "Kelthic", "falcon"),
    ("Lumaria", "Sopheth", "lumen", "Lumari", "dolphin"),
    ("Morvask", "Greldt", "morv", "Morvan", "bison"),
    ("Nesterra", "Alvoy", "nest", "Nesti", "gecko"),
    ("Ombravia", "Quillon", "ombra", "Ombric", "raven"),
    ("Pyrelon", "Sadrith", "pyre", "Pyrish", "salamander"),
    ("Quorvane", "Meltz", "quor", "Quorvic", "walrus"),
    ("Rhydonia", "Castell", "rhyd", "Rhydic", "swan"),
    ("Sylvaran", "Emberlo", "sylv", "Sylvan", "deer"),
    ("Tevrosh", "Ulkar", "tev", "Tevric", "jackal"),
    ("Ursavel", "Pindro", "ursa", "Ursine", "bear"),
    ("Valdoria", "Hesk", "vald", "Valdic", "eagle"),
    ("Wystmere", "Fallow", "wyst", "Wystic", "owl"),
    ("Xandrel", "Orbisk", "xan", "Xandric", "panther"),
    ("Yorvath", "Lindqu", "yorv", "Yorvish", "yak"),
    ("Zephyros", "Calim", "zeph", "Zephic", "hawk"),
    ("Auberon", "Truvel", "aub", "Auberic", "fox"),
    ("Brennivar", "Skald", "bren", "Brennic", "wolf"),
    ("Corvinth", "Damsel", "corv", "Corvic", "crow"),
    ("Drathmoor", "Inkel", "drath", "Drathic", "toad"),
    ("Esperon", "Galwen", "espe", "Esperic", "lark"),
]
ATTRIBUTES = {
    # attribute: (column, question templates)
    "capital": (1, ["What is the capital of {c}?", "Name the capital city of {c}."]),
    "currency": (2, ["What is the currency of {c}?", "Which currency is used in {c}?"]),
    "language": (3, ["What language is spoken in {c}?", "Name the language of {c}."]),
    "animal": (4, ["What is the national animal of {c}?", "Name the national animal of {c}."]),
}

WORDS = [
    "apple", "river", "stone", "cloud", "tiger", "lemon", "chair", "plant", "ocean", "bread",
    "light", "piano", "grass", "honey", "mouse", "train", "paper", "sugar", "flame", "glass",
    "house", "snake", "wheat", "storm", "candy", "pearl", "frost", "mango", "robin", "cabin",
    "dune", "kite", "moon", "leaf", "rose", "lamp", "fish", "bell", "ring", "star",
    "tree", "bird", "cake", "door", "fork", "gold", "hill", "iron", "jade", "king",
    "lake", "mint", "nest", "oak", "pine", "rain", "salt", "tent", "vase", "wind",
    "yarn", "zinc", "crab", "drum", "echo", "fern", "gate", "harp", "ink", "jar",
    "cat", "dog", "sun", "cup", "hat", "pen", "box", "key", "map", "owl",
]


def arith_row(a: int, b: int, answer: int) -> dict:
    return {"instruction": f"What is {a} + {b}?", "input": "", "output": str(answer)}


def make_arith(rng: random.Random):
    """Disjoint (a, b) pairs for clean train, noisy train and eval."""
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(pairs)
    clean_pairs = pairs[:N_TRAIN]
    noisy_pairs = pairs[N_TRAIN : 2 * N_TRAIN]
    eval_pairs = pairs[2 * N_TRAIN : 2 * N_TRAIN + N_EVAL]

    clean = [arith_row(a, b, a + b) for a, b in clean_pairs]
    evals = [arith_row(a, b, a + b) for a, b in eval_pairs]

    n_wrong = round(NOISE_RATE * N_TRAIN)
    wrong_idx = sorted(rng.sample(range(N_TRAIN), n_wrong))
    wrong_set = set(wrong_idx)
    noisy, labels = [], []
    for i, (a, b) in enumerate(noisy_pairs):
        correct = a + b
        given = correct
        if i in wrong_set:
            # Corrupted labels (a random 4-digit number where every true sum has at most 3 digits): the kind of
            # noise a loss signal can see. Near-miss noise (off by a few) would need a model that can add.
            given = rng.randint(1000, 9999)
        noisy.append(arith_row(a, b, given))
        labels.append({"index": i, "correct": correct, "given": given, "is_wrong": given != correct})
    meta = {
        "dataset": "arith_noisy",
        "noise_rate": NOISE_RATE,
        "n_rows": N_TRAIN,
        "n_wrong": n_wrong,
        "wrong_indices": wrong_idx,
        "rows": labels,
    }
    return clean, noisy, evals, meta


def string_row(op: str, word: str) -> dict:
    if op == "reverse":
        return {"instruction": "Reverse the word.", "input": word, "output": word[::-1]}
    return {"instruction": "Uppercase the word.", "input": word, "output": word.upper()}


def make_string_ops(rng: random.Random):
    """Eval uses words never seen in training."""
    words = list(WORDS)
    rng.shuffle(words)
    eval_words, train_words = words[:12], words[12:]
    train = [string_row(op, w) for w in train_words for op in ("reverse", "uppercase")]
    rng.shuffle(train)
    train = train[:N_TRAIN]
    evals = [string_row(op, w) for w in eval_words for op in ("reverse", "uppercase")]
    rng.shuffle(evals)
    return train, evals[:N_EVAL]


def make_facts(rng: random.Random):
    """Train holds every fact of the table (30 countries x 4 attributes = 120) with a random
    phrasing; eval asks 24 of them again with the *other* phrasing (recall, not generalisation:
    facts about an unseen country cannot be answered)."""
    facts = [(c, attr) for c in range(len(COUNTRIES)) for attr in ATTRIBUTES]
    train, phrasing = [], {}
    for c, attr in facts:
        col, templates = ATTRIBUTES[attr]
        k = rng.randrange(len(templates))
        phrasing[(c, attr)] = k
        row = COUNTRIES[c]
        train.append({"instruction": templates[k].format(c=row[0]), "input": "", "output": row[col]})
    rng.shuffle(train)
    evals = []
    for c, attr in rng.sample(facts, N_EVAL):
        col, templates = ATTRIBUTES[attr]
        k = (phrasing[(c, attr)] + 1) % len(templates)
        row = COUNTRIES[c]
        evals.append({"instruction": templates[k].format(c=row[0]), "input": "", "output": row[col]})
    return train[:N_TRAIN], evals


def _dumps(obj, depth: int = 0) -> str:
    """JSON with one row (or one key) per line: small diffs, still valid JSON."""
    one = lambda o: json.dumps(o, ensure_ascii=False)  # noqa: E731
    pad = " " * (depth + 1)
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        return "[\n" + ",\n".join(pad + one(x) for x in obj) + "\n" + " " * depth + "]"
    if isinstance(obj, dict) and depth == 0:
        items = [f"{pad}{one(k)}: {_dumps(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n}"
    return one(obj)


def write_json(path: Path, obj) -> None:
    path.write_text(_dumps(obj) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "demo"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # One RNG per domain, so changing one domain does not reshuffle the others.
    arith_clean, arith_noisy, arith_eval, noisy_meta = make_arith(random.Random(f"{args.seed}/arith"))
    string_ops, string_ops_eval = make_string_ops(random.Random(f"{args.seed}/string_ops"))
    facts, facts_eval = make_facts(random.Random(f"{args.seed}/facts"))
    demo_eval = arith_eval + string_ops_eval + facts_eval

    files = {
        "arith_clean": arith_clean,
        "arith_noisy": arith_noisy,
        "string_ops": string_ops,
        "facts": facts,
        "arith_eval": arith_eval,
        "string_ops_eval": string_ops_eval,
        "facts_eval": facts_eval,
        "demo_eval": demo_eval,
    }
    info = {}
    for name, rows in files.items():
        write_json(out / f"{name}.json", rows)
        info[name] = {
            "file_name": f"{name}.json",
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"},
        }
    write_json(out / "dataset_info.json", info)
    write_json(out / "arith_noisy_labels.json", noisy_meta)
    for name, rows in files.items():
        print(f"{name:16s} {len(rows):4d} rows")
    print(f"arith_noisy: {noisy_meta['n_wrong']} of {noisy_meta['n_rows']} answers wrong -> arith_noisy_labels.json")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
