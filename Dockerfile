# DataFlex for TypeScript on a CUDA host (first version).
#
#   docker build -t dataflex .
#   docker run --gpus all --rm -v "$PWD/runs:/app/runs" dataflex train configs/demo.yaml
#
# Same layout as a checkout after `npm run setup`, except that the Python environment is a CUDA one at
# /opt/venv, used through DATAFLEX_PYTHON (setup.mjs only checks it and builds the demo model).
# The CPU pins in python_bridge/requirements.txt (torch==2.13.0, resolved to 2.13.0+cpu from the local
# wheel directory on CPU hosts) are for CPU machines; here torch 2.13.0 comes from PyTorch's CUDA index
# and every other pin is reused unchanged.
#
# NOTE: not built or tested yet (the development machines have no Docker engine and no GPU). Build needs
# network access to Docker Hub, nodejs images, PyPI and download.pytorch.org. Add a .dockerignore
# (node_modules, .venv, models, runs, bench/.work) to keep the build context small; the COPY lines below
# only take what the image needs either way.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE}
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DATAFLEX_PYTHON=/opt/venv/bin/python \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# Python 3.11 (Ubuntu 22.04 ships it in universe / jammy-updates) + what the native wheels need.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# Node 20 from the official image (glibc build, runs on 22.04's glibc 2.35).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

WORKDIR /app

# --- Python: CUDA torch first, then the same pinned stack as on CPU (torch==2.13.0 is then already
# satisfied by 2.13.0+cu128, so pip keeps it). Never torchvision: LLaMA-Factory does not need it for text.
COPY python_bridge/requirements.txt python_bridge/requirements-nodeps.txt python_bridge/
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}" \
 && /opt/venv/bin/pip install -r python_bridge/requirements.txt \
 && /opt/venv/bin/pip install --no-deps -r python_bridge/requirements-nodeps.txt \
 && /opt/venv/bin/python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

# --- npm
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# --- the project
COPY tsconfig.json vitest.config.ts README.md ./
COPY bin bin
COPY src src
COPY scripts scripts
COPY configs configs
COPY data data
COPY docs docs
COPY examples examples
COPY python_bridge python_bridge

# The bridge, and the torchaudio placeholder (LLaMA-Factory 0.9.5 imports torchaudio unconditionally;
# see docs/setup.md). To use audio datasets, pip install the torchaudio build matching this torch instead:
# a real torchaudio in site-packages takes precedence over the .pth entry.
RUN /opt/venv/bin/pip install --no-deps -e python_bridge \
 && echo /app/python_bridge/stubs > "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_dataflex_stubs.pth" \
 && /opt/venv/bin/python -c "import zmq, msgpack, torchaudio, llamafactory.train.tuner, dataflex_bridge" \
 && DATAFLEX_SKIP_CHROMIUM=1 node scripts/setup.mjs   # also bundles the CLI into dist/cli (bin/cli-bundle.mjs); no test browser

ENTRYPOINT ["node", "bin/dataflex.mjs"]
CMD ["--help"]
