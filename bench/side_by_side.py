"""What the side-by-side benchmarks (mix_overhead.py, weight_overhead.py) share: the paths, the environment, and one
run of `dataflex train` (ours) or `dataflex-cli train` (the Python DataFlex 1.1, the selector benchmark's venv) on a
generated YAML, timed as a whole process, with Hugging Face's own `train_runtime` beside it."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
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


def report_path(name: str) -> Path:
    """Where a report goes: the CPU's folder under bench/results when `npm run bench` runs the script
    (BENCH_REPORT_DIR), else scratch, so a direct run never overwrites measured results."""
    return Path(os.environ.get("BENCH_REPORT_DIR") or REPO / "bench" / ".work" / "results") / name


def measurement(rows: list[dict], key: str, unit: str, baseline: str | None = None, scale: float = 1.0) -> dict:
    """One quantity for the structured results (bench/harness.ts's RawMeasurement): every run's value and its repeat."""
    got = [r for r in rows if r.get(key) is not None]
    m = {"unit": unit, "samples": [r[key] * scale for r in got], "tags": [r["tag"] for r in got]}
    return {**m, "baseline": baseline} if baseline else m


def write_measurements(report: Path, measurements: dict) -> None:
    """The structured twin of a report: to BENCH_JSON (set by bench/run.ts), else beside the report as .json."""
    out = Path(os.environ.get("BENCH_JSON") or report.with_suffix(".json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"measurements": {k: v for k, v in measurements.items() if v["samples"]}}, indent=1) + "\n")


def session_start() -> tuple[str, str]:
    """When a benchmark session starts (UTC) and the load average then, for the report's header."""
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return started, " ".join(f"{x:.2f}" for x in os.getloadavg())


def interleaved(cases: list[tuple], repeats: int, run_one: Callable[[tuple, str], dict], results: list[dict],
                work: Path) -> list[dict]:
    """Every case once per repeat, in an order that rotates per repeat (so drift hits every case alike); the raw
    results are saved to work/results.json after each run."""
    for r in range(repeats):
        k = r % len(cases)
        for case in cases[k:] + cases[:k]:
            results.append(run_one(case, f"r{r}"))
            (work / "results.json").write_text(json.dumps(results, indent=1))
    return results
