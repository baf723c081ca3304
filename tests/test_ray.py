"""Ray Data runner on a simulated two-node Ray cluster: same rows, same order as one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray  # the dev extra installs ray[data]
from datasets import ClassLabel, Dataset, Features, Value
from ray.cluster_utils import Cluster

from magpie_datasets.runners.checkpoint import run_resumable  # noqa: E402
from magpie_datasets.runners.on_ray import run_on_ray  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes():
    """Two Ray nodes of 1 CPU each on loopback (head + one worker node), small object stores."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # 127.0.0.2 is loopback too, but Ray does not rewrite it to the machine's public address
    # the way it rewrites 127.0.0.1 when a driver connects.
    node = {"num_cpus": 1, "object_store_memory": 150 * 1024**2, "node_ip_address": "127.0.0.2"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        _node_ip_address="127.0.0.2",
        log_to_driver=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}},
    )
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def tagged(batch, salt="s", meeting=None):
    """A deterministic step; with `meeting` (a folder) it waits until two processes have run it."""
    if meeting:
        import time

        Path(meeting, str(os.getpid())).touch()
        deadline = time.monotonic() + 90
        while len(os.listdir(meeting)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"y": [f"{salt}-{x}" for x in batch["x"]], "pid": [os.getpid()] * len(batch["x"])}


def where(batch):
    """The Ray node and process that computed each row (the driver's own outside Ray)."""
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "driver"
    return {"node": [node] * len(batch["x"]), "pid": [os.getpid()] * len(batch["x"])}


def _exit_the_first_time(marker):
    """Exit this process at once (a crashed worker) unless `marker` exists; it records the pid, so
    the retry and the single-process run go on normally."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(1)


def dies_once(batch, marker, at):
    """`where`, but the first process to reach row `at` exits at once (`_exit_the_first_time`)."""
    if at in batch["x"]:
        _exit_the_first_time(marker)
    return where(batch)


def loaded_models(batch):
    """The model ids this process has loaded engines for, on every row."""
    from magpie_datasets import engines

    ids = {getattr(m, "model_id", None) for m in engines._engines.values()}  # chat engines have one
    ids = sorted(i for i in ids if i is not None)
    return {"loaded_models": [ids] * len(batch["instruction"])}


def numbered(n):
    return Dataset.from_dict(
        {"x": list(range(n)), "label": [i % 2 for i in range(n)]},
        features=Features({"x": Value("int64"), "label": ClassLabel(names=["even", "odd"])}),
    )


def test_two_actors_give_the_rows_of_one_process_in_order(two_nodes, tmp_path):
    ds = numbered(23)
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


def test_one_actor_per_node_by_default_and_a_crashed_worker_is_retried(two_nodes, tmp_path):
    ds = numbered(40)
    steps = [(tagged, {"salt": "n"}), (dies_once, {"marker": str(tmp_path / "died"), "at": 22})]
    out = run_on_ray(ds, steps, batch_size=4, checkpoint_dir=tmp_path / "ck")  # default sizing
    dead = int((tmp_path / "died").read_text())  # a worker really died mid-run
    ref = run_resumable(ds, steps, tmp_path / "local", batch_size=4)

    assert out["x"] == list(range(40))  # every row exactly once, in order: none lost, none twice
    drop = ["pid", "node"]
    assert out.remove_columns(drop).to_list() == ref.remove_columns(drop).to_list()
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert set(out["node"]) == nodes and len(nodes) == 2  # both nodes worked
    assert os.getpid() not in out["pid"] and dead not in out["pid"][20:24]  # batch 5 ran again elsewhere


def kills_its_replica_once(batch, marker):
    """Nothing, but the first process to reach it exits at once (a replica killed mid-run, its
    engine loaded and its batch's steps 1 and 2 done)."""
    _exit_the_first_time(marker)
    return {}


def test_two_engine_replicas_give_the_rows_of_one_process_and_survive_one_killed(two_nodes, tmp_path):
    """Two actors, each with its own transformers engine on the embedded model and two batches in
    flight (the default on a GPU: their engine calls share the actor's engine loop), one killed
    after its batch's steps 1 and 2: every row once, equal to a single process's."""
    import torch

    from magpie_datasets.stages.generate import (
        add_magpie_instructions,
        empty,
        generate_responses,
    )

    options = {"engine_options": {"batch_size": 2}}  # the engine other tests load too (one load per session)
    ds = empty(6)
    marker = tmp_path / "killed"
    steps = [
        (add_magpie_instructions, {**options, "max_tokens": 10, "seed": 7}),
        (generate_responses, {**options, "max_tokens": 10, "seed": 7}),
        (kills_its_replica_once, {"marker": str(marker)}),
    ]
    out = run_on_ray(ds, steps, batch_size=2, concurrency=2, num_cpus=1, checkpoint_dir=tmp_path / "ck", in_flight=2)
    assert marker.exists()  # a replica really died mid-run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run with one thread each; keep the arithmetic identical
    try:
        ref = run_resumable(ds, steps, tmp_path / "local", batch_size=2)
    finally:
        torch.set_num_threads(threads)
    assert out["uuid"] == ref["uuid"] and len(set(out["uuid"])) == 6  # every row exactly once, in order
    assert out["instruction"] == ref["instruction"]
    assert out["response"] == ref["response"]
    assert out.to_list() == ref.to_list()
    assert sum(bool(q.strip()) for q in out["instruction"]) >= 3  # the model really wrote text
    assert sum(bool(a.strip()) for a in out["response"]) >= 3


def test_actors_load_only_the_models_the_rows_name(two_nodes, tmp_path):
    from magpie_datasets.engines.embedded import EMBEDDED_CHAT_MODEL
    from magpie_datasets.stages.generate import generate_responses
    from tests.tiny_models import (
        CHATML,
        CHATML_SPECIALS,
        byte_tokenizer,
        save_tiny_model,
    )

    tiny = save_tiny_model(tmp_path / "tiny", byte_tokenizer(CHATML, CHATML_SPECIALS, name=str(tmp_path / "tiny")))
    ds = Dataset.from_dict({"instruction": ["Name a prime.", "Say hi.", "", "Count to 3."], "model": [tiny] * 4})
    # No `model`: each row is answered by the model in its own `model` column, never the embedded one.
    steps = [(generate_responses, {"engine": "transformers", "max_tokens": 3}), (loaded_models, {})]
    out = run_on_ray(ds, steps, batch_size=2, concurrency=2, num_cpus=1)

    assert out["loaded_models"] == [[tiny]] * 4  # EMBEDDED_CHAT_MODEL was never loaded in an actor
    assert EMBEDDED_CHAT_MODEL not in str(out["loaded_models"])
    assert [c["output_generator"] for c in out["gen_response_configs"]] == [tiny] * 4
    assert out["response_issue"][2] == "no_instruction" and all(out["response_length"][i] > 0 for i in (0, 1, 3))
    ref = run_resumable(ds, steps, tmp_path / "local", batch_size=2)
    for column in ref.column_names:
        if column != "loaded_models":  # this process may hold other tests' engines
            assert out[column] == ref[column], column


def always_dies(batch, attempts):
    """Records this attempt in `attempts` (a folder), then exits the process: a poison batch."""
    Path(attempts, str(os.getpid())).touch()
    os._exit(1)


def test_a_batch_that_always_kills_its_worker_fails_after_its_retries(two_nodes, tmp_path):
    (tmp_path / "attempts").mkdir()
    steps = [(always_dies, {"attempts": str(tmp_path / "attempts")})]
    with pytest.raises(ray.exceptions.RayActorError):
        run_on_ray(numbered(2), steps, batch_size=2, checkpoint_dir=tmp_path / "ck", retries=1)
    assert len(os.listdir(tmp_path / "attempts")) == 2  # the first try and one retry, each in a new process
