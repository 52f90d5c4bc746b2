#!/usr/bin/env bash
# The benchmarks' Python side, built once and reused by every suite that needs it (bench/selectors-vs-dataflex.sh,
# `npm run bench -- select|mix|weight`):
# 1. A throwaway venv bench/.work/dataflex-venv (git-ignored) with the project's pinned CPU stack
#    (python_bridge/requirements.txt + --no-deps python_bridge/requirements-nodeps.txt), then `dataflex` and `traker`
#    --no-deps (their declared ranges would replace torch 2.13.0+cpu with a CUDA torch<=2.10), the torchaudio stub
#    through a .pth file. torch is pinned by a constraints file and checked afterwards. Redone only when the inputs change.
# 2. The tiny and small models (bench/.work/models/{tiny,small}) from data/demo.
#
# env: DATAFLEX_VERSION (default 1.1.0, the latest on PyPI when this was written), TRAKER_VERSION (0.3.2),
#      BASE_PYTHON (default python3.11).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$ROOT/bench/.work"
VENV="$WORK/dataflex-venv"
PY="$VENV/bin/python"
DATAFLEX_VERSION="${DATAFLEX_VERSION:-1.1.0}"
TRAKER_VERSION="${TRAKER_VERSION:-0.3.2}"
BASE_PYTHON="${BASE_PYTHON:-python3.11}"
TORCH_PIN="$(grep -E '^torch==' python_bridge/requirements.txt | head -1)"   # torch==2.13.0
log() { echo "[bench] $*"; }

mkdir -p "$WORK"

# ---- 1. the DataFlex venv ------------------------------------------------------------------------------------
stamp_of() {
  { cat python_bridge/requirements.txt python_bridge/requirements-nodeps.txt
    echo "dataflex==$DATAFLEX_VERSION traker==$TRAKER_VERSION recipe-1"; } | sha256sum | cut -c1-32
}
STAMP="$(stamp_of)"
if [[ ! -x "$PY" || "$(cat "$VENV/.bench-stamp" 2>/dev/null)" != "$STAMP" ]]; then
  log "building $VENV (first time: a few minutes)"
  [[ -x "$PY" ]] || "$BASE_PYTHON" -m venv "$VENV"
  rm -f "$VENV/.bench-stamp"
  echo "$TORCH_PIN" > "$WORK/torch-constraint.txt"
  PIP=("$PY" -m pip install --disable-pip-version-check -c "$WORK/torch-constraint.txt")
  "${PIP[@]}" -r python_bridge/requirements.txt
  "${PIP[@]}" --no-deps -r python_bridge/requirements-nodeps.txt
  # DataFlex 1.1.0 declares torch<=2.10, torchvision, torchaudio, tyro, ...: --no-deps keeps the pinned stack.
  # It wants llamafactory>=0.9.5 and transformers>=4.55, which the project's stack already has.
  "${PIP[@]}" --no-deps "dataflex==$DATAFLEX_VERSION" "traker==$TRAKER_VERSION"
  SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$ROOT/python_bridge/stubs" > "$SITE/zz_dataflex_stubs.pth"   # torchaudio stub (LLaMA-Factory imports it)
  "$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE '^(torch|dataflex|traker|llamafactory|transformers) '
  echo "$STAMP" > "$VENV/.bench-stamp"
fi
# Never run against a replaced torch.
TORCH_V="$("$PY" -m pip list --disable-pip-version-check 2>/dev/null | awk '$1=="torch"{print $2}')"
if [[ "$TORCH_V" != "${TORCH_PIN#torch==}"* ]]; then
  echo "[bench] error: torch in $VENV is '$TORCH_V', expected ${TORCH_PIN#torch==}+cpu; rm -rf $VENV and re-run" >&2
  exit 1
fi
DISABLE_VERSION_CHECK=1 HF_HUB_OFFLINE=1 "$PY" -c 'import dataflex.train.selector, trak.projectors, dataflex_bridge' \
  2>/dev/null || PYTHONPATH="$ROOT/python_bridge" DISABLE_VERSION_CHECK=1 HF_HUB_OFFLINE=1 \
  "$PY" -c 'import dataflex.train.selector, trak.projectors, dataflex_bridge' \
  || { echo "[bench] error: $VENV cannot import dataflex / trak / dataflex_bridge" >&2; exit 1; }

# ---- our side: npm packages ----------------------------------------------------------------------------------
if [[ ! -d node_modules/tsx ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi

# ---- 2. models -----------------------------------------------------------------------------------------------
for size in tiny small; do
  PYTHONPATH="$ROOT/python_bridge" "$PY" -m dataflex_bridge.tools.make_tiny_model \
    --out "$WORK/models/$size" --data data/demo --size "$size" | tail -1
done

