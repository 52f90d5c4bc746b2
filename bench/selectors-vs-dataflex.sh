#!/usr/bin/env bash
# Side-by-side benchmark of our `less` / `loss` selectors against the Python DataFlex (PyPI), one command:
#
#   bench/selectors-vs-dataflex.sh [options of bench/selectors_vs_dataflex.py]
#       e.g. --quick            (1 repeat, every case capped at max_samples 16: ~15-20 min)
#            --repeats 3 --cases tiny/less,tiny/loss
#            --report-only      (rewrite the report from the last raw results)
#
# 1. bench/setup-python.sh: the throwaway DataFlex venv and the tiny and small models.
# 2. bench/selectors_vs_dataflex.py: the runs, interleaved; writes selectors-vs-dataflex.md and its .json twin into
#    BENCH_REPORT_DIR (bench/results/<cpu>/ under `npm run bench -- select`), else bench/.work/results.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/bench/setup-python.sh"
exec "$ROOT/bench/.work/dataflex-venv/bin/python" bench/selectors_vs_dataflex.py "$@"
