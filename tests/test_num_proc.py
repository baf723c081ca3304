"""`Dataset.map(num_proc=2)` works in a process that has already run a stage (and the other
way round), and `engine="vllm"` in num_proc workers is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


import magpie_datasets as magpie

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import magpie_datasets as magpie

    def run(num_proc):
        return magpie.empty(8).map(
            magpie.add_magpie_instructions, batched=True, batch_size=4, num_proc=num_proc,
            fn_kwargs={"max_tokens": 8, "seed": 1}, load_from_cache_file=False,
        )["instruction"]

    order = [None, 2] if sys.argv[1] == "plain-first" else [2, None]
    first, second = (run(n) for n in order)
    print("RESULT " + json.dumps({"same_rows": first == second, "rows": len(second)}))
    """
)


@pytest.mark.parametrize("order", ["plain-first", "num-proc-first"])
def test_num_proc_map_in_a_process_that_already_ran_a_stage(order):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # the hang needs the parent's multi-threaded pool
    # the time limit is the test: a hung fork never prints
    proc = subprocess.run([sys.executable, "-c", SCRIPT, order], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    assert lines[0] == 'RESULT {"same_rows": true, "rows": 8}'


def test_vllm_in_num_proc_workers_is_one_clear_error():
    with pytest.raises(RuntimeError, match="tensor_parallel_size"):
        magpie.empty(4).map(
            magpie.add_magpie_instructions, batched=True, batch_size=2, num_proc=2,
            fn_kwargs={"engine": "vllm", "max_tokens": 4}, load_from_cache_file=False,
        )
