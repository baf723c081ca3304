#!/usr/bin/env bash
# The GPU check for a CUDA machine that reaches no package index and has torch and transformers but
# neither vLLM nor `datasets` (the device tool's): our transformers engine on CUDA through the CLI's
# path, run_resumable and Dataset.map, against transformers' own `generate` over the same prompts
# (bench/bench_user_path.py --ceiling bare), on a randomly initialised model of the embedded model's
# architecture (bench/random_model.py) with every row generating its cap (--ignore-eos). Prints each
# path's tok/s, its ratio and peak GPU memory.
#
#   bash bench/gpu_check_device.sh prepare       # here, with the package index: .gpu-check/ (62 MB, 55 of them pyarrow)
#   bash bench/gpu_check_device.sh run "$OUT"    # there, with .gpu-check carried; about 6 minutes on an H100
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    # the packages the image lacks, at the versions the tests run here (pyarrow: datasets needs a recent one)
    versions=$(python -m pip list --format=freeze | grep -iE '^(datasets|dill|multiprocess|llguidance|pyarrow)==') || {
        echo "run it in the environment the tests use (its pip list names datasets, dill, ...)" >&2; exit 1; }
    mkdir -p .gpu-check/wheels
    # shellcheck disable=SC2086
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_31_x86_64 -d .gpu-check/wheels $versions
    python bench/random_model.py architecture .gpu-check/smollm2-architecture
    du -sh .gpu-check
    ;;
run)
    out="${2:-bench/results}"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu-check/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
    python3 bench/random_model.py weights .gpu-check/smollm2-architecture /tmp/random-smollm2
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    timeout 540 python3 bench/bench_user_path.py --engine transformers --model /tmp/random-smollm2 \
        --ceiling bare --ignore-eos --rows "${ROWS:-2048}" --max-instruction-tokens 128 \
        --max-response-tokens "${MAX_RESPONSE_TOKENS:-512}" --checkpoint-sizes 64,4096 \
        --json "$out/bench_user_path_gpu_transformers.json"
    ;;
*)
    echo "usage: bash bench/gpu_check_device.sh prepare | run [OUT]" >&2
    exit 2
    ;;
esac
