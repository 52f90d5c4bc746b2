"""Run the Python DataFlex's `dataflex-cli train` in-process, with timers around its selectors (measurement only).

    DATAFLEX_TIMINGS=out.jsonl python bench/dataflex_timed.py train <config.yaml> [key=value ...]

Everything DataFlex does is unchanged: this imports `dataflex`, wraps `select` of every registered selector class
(and, for the breakdown, LESS's per-sample gradient function and trak's projector) with wall-clock and CPU timers,
then calls `dataflex.cli.main()` exactly as the `dataflex-cli` console script would. One JSON line per `select`
call goes to $DATAFLEX_TIMINGS:

    {"selector": "less", "step": 2, "start": <unix s>, "end": <unix s>, "wall_s": ..., "cpu_s": ...,
     "num_train": 480, "num_eval": 72, "breakdown": {"gradients_s": ..., "gradient_calls": ..., "project_s": ...}}

cpu_s is this process's user+system CPU time (all threads) plus that of reaped children (DataLoader workers).
Used by bench/selectors_vs_dataflex.py; see bench/README.md.
"""
from __future__ import annotations

import functools
import json
import os
import resource
import sys
import time


def _cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


_breakdown: dict[str, float] = {}


def _accumulate(key: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _breakdown[key + "_s"] = _breakdown.get(key + "_s", 0.0) + time.perf_counter() - t0
            _breakdown[key + "_calls"] = _breakdown.get(key + "_calls", 0) + 1

    return wrapper


def _instrument(out_path: str) -> None:
    import dataflex.train.selector  # noqa: F401  (registers every selector class)
    from dataflex.core.registry import REGISTRY

    def timed_select(name: str, fn):
        @functools.wraps(fn)
        def wrapper(self, model, step_id, num_samples, **kwargs):
            _breakdown.clear()
            start, c0, t0 = time.time(), _cpu(), time.perf_counter()
            result = fn(self, model, step_id, num_samples, **kwargs)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            eval_ds = getattr(self, "eval_dataset", None)
            line = {
                "selector": name,
                "step": int(step_id),
                "start": start,
                "end": time.time(),
                "wall_s": wall,
                "cpu_s": cpu,
                "num_samples": int(num_samples),
                "num_train": len(self.dataset),
                "num_eval": len(eval_ds) if eval_ds is not None and name in ("less", "cluster_less", "nice") else 0,
                "breakdown": dict(_breakdown),
            }
            with open(out_path, "a") as f:
                f.write(json.dumps(line) + "\n")
            return result

        return wrapper

    for name, cls in REGISTRY._store.get("selector", {}).items():
        if "select" in cls.__dict__:
            cls.select = timed_select(name, cls.__dict__["select"])

    from dataflex.train.selector.less_selector import LessSelector

    LessSelector._obtain_gradients = _accumulate("gradients", LessSelector._obtain_gradients)
    try:
        from trak.projectors import BasicProjector

        BasicProjector.project = _accumulate("project", BasicProjector.project)
    except ImportError:
        pass


def main() -> None:
    out_path = os.environ.get("DATAFLEX_TIMINGS")
    if not out_path:
        sys.exit("dataflex_timed.py: set DATAFLEX_TIMINGS to the JSONL file the timings go to")
    _instrument(out_path)
    from dataflex.cli import main as dataflex_main

    sys.argv = ["dataflex-cli", *sys.argv[1:]]
    dataflex_main()


if __name__ == "__main__":
    main()
