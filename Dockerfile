# syntax=docker/dockerfile:1
# DataFlex for TypeScript on a CUDA host: Node 20, Python 3.11 with a CUDA build of torch, and everything else
# installed by scripts/setup.mjs, the script `npm run setup` runs: the pinned stack from python_bridge/requirements*.txt,
# the bridge and the torchaudio stub (here into /opt/venv, through DATAFLEX_PYTHON and --install-python), the demo
# models and the CLI bundle. Entrypoint: `dataflex`; working directory /data, for a mounted folder.
#
#   docker build -t dataflex .
#   docker run --gpus all --rm -v "$PWD:/data" dataflex doctor
#   docker run --gpus all --rm -v "$PWD:/data" dataflex train cfg.yaml            # paths in cfg.yaml: relative to /data
#   docker run --gpus all --rm -p 5555:5555 -v "$PWD:/data" dataflex serve --bind tcp://0.0.0.0:5555 --keys /data/keys
#   docker run --rm -w /app dataflex train configs/demo.yaml                         # the bundled demo, CPU or GPU
#
# The CI lints this file with hadolint (test/dockerfile.test.ts) but builds no image: its machines have no Docker
# engine and no GPU. A build needs Docker Hub, PyPI and download.pytorch.org. docs/setup.md, "The Docker image".

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu22.04
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS node

# The CUDA *base* image: torch's CUDA wheels bring their own CUDA runtime, cuBLAS and cuDNN from PyPI (nvidia-*
# packages); the image only has to let the host's driver in (NVIDIA Container Toolkit, `--gpus`).
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

# Python 3.11 (Ubuntu 22.04 ships it) and libgomp for torch's CPU kernels. Not version-pinned: the base image tag
# fixes the Ubuntu release, and pinning a package version breaks the build as soon as a security update replaces it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# Node 20 from the official image (its binary needs glibc >= 2.28; Ubuntu 22.04 has 2.35).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

# The CUDA torch, in a layer of its own (gigabytes; it changes only with TORCH_VERSION). Setup's
# `pip install -r python_bridge/requirements.txt` then finds torch==2.13.0 met by 2.13.0+cu128 and keeps it.
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}" \
 && /opt/venv/bin/python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

WORKDIR /app

# npm packages before the sources, so that an edit to src/ reuses this layer (setup then finds node_modules in sync
# with the lockfile and only stamps it).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY tsconfig.json README.md ./
COPY bin bin
COPY src src
COPY scripts scripts
COPY configs configs
COPY data data
COPY docs docs
COPY examples examples
COPY python_bridge python_bridge

# Everything else, as on any host: the pinned stack, the bridge (editable, from /app/python_bridge) and the
# torchaudio stub into /opt/venv, then the demo models and the CLI bundle. To use audio datasets, pip install the
# torchaudio build matching this torch: a real torchaudio in site-packages takes precedence over the stub.
RUN DATAFLEX_SKIP_CHROMIUM=1 node scripts/setup.mjs --install-python \
 && /opt/venv/bin/python -c "import zmq, msgpack, torchaudio, llamafactory.train.tuner, dataflex_bridge.executor"

WORKDIR /data
EXPOSE 5555
ENTRYPOINT ["node", "/app/bin/dataflex.mjs"]
CMD ["--help"]
