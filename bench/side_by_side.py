"""What the side-by-side benchmarks (mix_overhead.py, weight_overhead.py) share: the paths, the environment, and one
run of `dataflex train` (ours) or `dataflex-cli train` (the Python DataFlex 1.1, the selector benchmark's venv) on a
generated YAML, timed as a whole process, with Hugging Face's own `train_runtime` beside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench" / ".work" / "dataflex-venv"
SMALL = REPO / "bench" / ".work" / "models" / "small"
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def train_runtime(out: Path) -> float | None:
    """Hugging Face's own `train_runtime` (train_results.json): training alone, measured alike on both sides."""
    try:
        return float(json.loads((out / "train_results.json").read_text())["train_runtime"])
    except (OSError, KeyError, ValueError):
        return None


def run_case(side: str, case: Path, train_yaml: str, components_yaml: str) -> dict:
    """One run in a fresh `case` folder: wall time, exit code, training time, and our summary.json when ours."""
    if case.exists():
        shutil.rmtree(case)
    case.mkdir(parents=True)
    cfg = case / "train.yaml"
    cfg.write_text(train_yaml)
    comp = case / "components.yaml"
    comp.write_text(components_yaml)
    out = case / "out"
    overrides = [f"output_dir={out}", f"components_cfg_file={comp}"]
    if side == "dataflex":
        cmd = [str(VENV / "bin" / "dataflex-cli"), "train", str(cfg), *overrides]
    else:
        cmd = ["node", str(REPO / "bin" / "dataflex.mjs"), "train", str(cfg), *overrides]
    t0 = time.time()
    with open(case / "run.log", "w") as log:
        rc = subprocess.call(cmd, cwd=REPO, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    res: dict = {"side": side, "rc": rc, "wall_s": time.time() - t0, "out": str(out)}
    if rc != 0:
        res["error"] = "\n".join((case / "run.log").read_text(errors="replace").splitlines()[-12:])
        return res
    res["train_s"] = train_runtime(out)
    summary = out / "dataflex" / "summary.json"
    if side == "ours" and summary.exists():
        res["summary"] = json.loads(summary.read_text())
    return res
