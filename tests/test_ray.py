"""Ray Data runner on a local two-worker Ray cluster: same rows, same order as one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, Value

import ray  # the dev extra installs ray[data]

from magpie_datasets.checkpoint import run_resumable  # noqa: E402
from magpie_datasets.ray_runner import run_on_ray  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster():
    """A local Ray cluster with two 1-CPU worker actors' worth of room and a small object store."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray.init(
        num_cpus=2,
        object_store_memory=300 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}},
    )
    yield
    ray.shutdown()


def tagged(batch, salt="s", meeting=None):
    """A deterministic step; with `meeting` (a folder) it waits until two processes have run it."""
    if meeting:
        import time

        Path(meeting, str(os.getpid())).touch()
        deadline = time.monotonic() + 90
        while len(os.listdir(meeting)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"y": [f"{salt}-{x}" for x in batch["x"]], "pid": [os.getpid()] * len(batch["x"])}


def test_two_actors_give_the_rows_of_one_process_in_order(local_cluster, tmp_path):
    ds = Dataset.from_dict(
        {"x": list(range(23)), "label": [i % 2 for i in range(23)]},
        features=Features({"x": Value("int64"), "label": ClassLabel(names=["even", "odd"])}),
    )
    (tmp_path / "meeting").mkdir()
    steps = [(tagged, {"salt": "t", "meeting": str(tmp_path / "meeting")})]
    out = run_on_ray(ds, steps, batch_size=3, checkpoint_dir=tmp_path / "ck", concurrency=2, num_cpus=1)
    (tmp_path / "meeting" / "local").touch()  # the single-process run need not wait
    ref = run_resumable(ds, steps, tmp_path / "local", batch_size=3)
    assert len(set(out["pid"])) == 2 and os.getpid() not in out["pid"]  # really two worker processes
    assert out.remove_columns("pid").to_list() == ref.remove_columns("pid").to_list()
    assert out.features["label"] == ClassLabel(names=["even", "odd"])
    # the Ray run wrote a normal checkpoint: the same call resumes (here: reads back) without Ray work
    again = run_resumable(ds, steps, tmp_path / "ck", batch_size=3)
    assert again.to_list() == out.to_list()


def test_embedded_model_steps_1_and_2_match_a_single_process_run(local_cluster, tmp_path):
    import torch

    from magpie_datasets.generate import add_magpie_instructions, empty, generate_responses

    options = {"engine_options": {"batch_size": 2}}  # the engine other tests load too (one load per session)
    steps = [
        (add_magpie_instructions, {**options, "max_tokens": 10, "seed": 7}),
        (generate_responses, {**options, "max_tokens": 10, "seed": 7}),
    ]
    ds = empty(6)
    out = run_on_ray(ds, steps, batch_size=2, concurrency=2, num_cpus=1)  # in memory, no checkpoint
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run with one thread each; keep the arithmetic identical
    try:
        ref = run_resumable(ds, steps, tmp_path / "local", batch_size=2)
    finally:
        torch.set_num_threads(threads)
    assert len(out) == 6
    assert out["uuid"] == ref["uuid"]
    assert out["instruction"] == ref["instruction"]
    assert out["response"] == ref["response"]
    assert out.to_list() == ref.to_list()
    assert sum(bool(q.strip()) for q in out["instruction"]) >= 3  # the model really wrote text
    assert sum(bool(a.strip()) for a in out["response"]) >= 3
