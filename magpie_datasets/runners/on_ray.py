"""Run batched map stages on a Ray cluster with Ray Data: one engine per actor, exactly once.

    steps = [(add_magpie_instructions, {"model": M, "engine": "vllm"}), (generate_responses, {"engine": "vllm"})]
    ds = run_on_ray(empty(100_000), steps, address="auto", checkpoint_dir="run.ckpt")

The input `Dataset` is cut into the same fixed batches as `checkpoint.run_resumable`
(rows `[i * batch_size, (i + 1) * batch_size)`); each batch becomes one Ray Data block
(`ray.data.from_arrow`), and `map_batches` hands whole blocks to a pool of `StepsActor`
actors, each holding its own loaded engine (one GPU per actor, or `tensor_parallel_size`
GPUs for a model split across GPUs). The driver writes each finished batch to the
checkpoint as it streams back, so a resumed or distributed run gives the same rows, in
the same order, as one process with the same seed.

`StepsActor` also works in a Ray Data pipeline of your own:
`ray.data.from_huggingface(ds).map_batches(StepsActor, fn_constructor_kwargs={"steps": steps},
batch_format="pyarrow", batch_size=64, concurrency=2)` (batch boundaries are then Ray's).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Any, Iterable, Iterator, Mapping, Sequence, cast

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetInfo, Features

from ..engines.base import CPU_ROWS_IN_FLIGHT, GPU_ROWS_IN_FLIGHT
from ..engines.models import ModelSpec
from ..stages.table import stage_of
from .checkpoint import resume, run_batch
from .in_flight import batches_to_fill, step_locks
from .run_identity import Step

__all__ = ["StepsActor", "run_on_ray"]

BATCH_COLUMN = "__magpie_batch"  # which fixed batch a Ray row belongs to (dropped before the steps see it)
# how long the first batches wait for the pool's actors to start and load their engines (a large
# model from network storage onto a new node can take many minutes); past it the run fails
ACTOR_START_S = 1800


def _tensor_parallel_size(steps: Sequence[Step]) -> int:
    """The most GPUs one engine of `steps` is split across (vLLM's `tensor_parallel_size`), 1 if none.

    The stage table says which keywords hold a model's engine options; a function of the user's
    counts as 1 (pass `num_gpus` for it).
    """
    sizes = [1]
    for fn, kwargs in steps:
        entry = stage_of(fn)
        for model in entry.models if entry else ():
            options = dict(kwargs or {}).get(model.options) or {}
            sizes.append(int(dict(options).get("tensor_parallel_size", 1)))
    return max(sizes)


def preload(steps: Sequence[Step]) -> None:
    """Load the engine-run models `steps` name, before the first batch (so a missing model fails
    at actor start). Models a step takes from each row's `model` column, and reward models and
    embedders, load on first use."""
    for fn, kwargs in steps:
        entry, kwargs = stage_of(fn), dict(kwargs or {})
        for model in entry.models if entry and entry.kind == "map" else ():
            name = kwargs.get(model.argument)
            if model.engine is None or (model.from_rows and name is None):
                continue
            ModelSpec(name, kwargs.get(model.engine, "transformers"), kwargs.get(model.options) or {}).load()


class StepsActor:
    """Ray Data callable class: applies `steps` to each Arrow batch.

    Input batch: a `pyarrow.Table` of rows (with `features` to decode them as `datasets` does).
    Output: the rows with the steps' columns, as `checkpoint.run_batch` computes them.

    The engines the steps name are loaded when the actor starts (`preload`, from the stage
    table); a model a step takes from each row's `model` column (`generate_responses` without
    `model`) loads on the first batch that needs it, so no model that no row needs is loaded.
    `load_engine` keeps each for the actor's lifetime.
    """

    def __init__(self, steps: Sequence[Step], features: Features | None = None):
        self.steps = list(steps)
        self.features = features
        # several batches may run at once in a threaded actor (run_on_ray's `in_flight`): their
        # engine calls join one engine loop, the other steps take one batch at a time
        self.locks = step_locks(self.steps)
        preload(self.steps)

    def __call__(self, table: pa.Table) -> pa.Table:
        index = table.column(BATCH_COLUMN) if BATCH_COLUMN in table.column_names else None
        rows = table.drop_columns([BATCH_COLUMN]) if index is not None else table
        features = Features({k: v for k, v in self.features.items() if k in rows.column_names}) if self.features else None
        ds = Dataset(rows, info=DatasetInfo(features=features)) if features else Dataset(rows)
        out = run_batch(ds, self.steps, 0, len(ds), locks=self.locks)
        return out.append_column(BATCH_COLUMN, index) if index is not None else out


def actor_in_flight(gpus: float, batch_size: int, batches: int, actors: int) -> int:
    """Batches an actor computes at once by default (`run_on_ray`'s `in_flight`): enough for twice
    the rows its engine decodes at once by default (`GPU_ROWS_IN_FLIGHT` on a GPU actor,
    `CPU_ROWS_IN_FLIGHT` on a CPU one), but no more than its share of the run's `batches`, so the
    first batches go round the whole pool rather than filling its first actor.

    >>> actor_in_flight(1.0, 64, batches=10_000, actors=8), actor_in_flight(0.0, 64, 10_000, 2)
    (32, 8)
    >>> actor_in_flight(1.0, 4096, 10_000, 8), actor_in_flight(1.0, 64, batches=40, actors=4)
    (1, 10)
    """
    fill = batches_to_fill(GPU_ROWS_IN_FLIGHT if gpus else CPU_ROWS_IN_FLIGHT, batch_size)
    return max(1, min(fill, -(-batches // actors)))


def _cluster_resources(tensor_parallel_size: int = 1) -> tuple[int, float, float]:
    """Default (actors, GPUs per actor, CPUs per actor): one actor per GPU group, else per node."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus:
        tp = max(1, int(tensor_parallel_size))
        return max(1, int(gpus // tp)), float(tp), 1.0
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = min((n["Resources"].get("CPU", 1) for n in nodes), default=1)
    return max(1, len(nodes)), 0.0, float(cpus)


def run_on_ray(
    ds: Dataset,
    steps: Sequence[Step],
    address: str | None = None,
    batch_size: int = 64,
    checkpoint_dir: str | os.PathLike | None = None,
    concurrency: int | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    init_options: Mapping[str, Any] | None = None,
    retries: int = 3,
    in_flight: int | None = None,
) -> Dataset:
    """Apply `steps` to `ds` on a Ray cluster; the same rows and order as `run_resumable`.

    `address`: a running cluster ("auto", "ray://head:10001", "10.0.0.1:6379"), or None to use
    the cluster this process is already connected to, else start a local one. `concurrency`
    actors (default: one per GPU, or per `tensor_parallel_size` GPUs; one per node without
    GPUs), each with `num_gpus` GPUs and `num_cpus` CPUs. With `checkpoint_dir` the run is
    resumable exactly like `run_resumable` (same directory format); without one the result
    is held in memory.

    `retries`: how many times a batch is run again when the process running it dies (a node
    lost, an out-of-memory kill); the dead actor is replaced each time. A batch that keeps
    killing its worker then fails the run (finished batches stay in the checkpoint) instead
    of reloading the model forever. -1 retries without limit.

    `in_flight`: batches each actor computes at once (a threaded actor; their engine calls join
    one engine loop, as in `run_resumable`), so an actor's engine is not idle while one batch
    waits for its slowest row. Default (None): enough batches for twice the rows one engine
    decodes at once (`GPU_ROWS_IN_FLIGHT` on GPU actors, `CPU_ROWS_IN_FLIGHT` on CPU ones), at most
    each actor's share of the batches left to run (`actor_in_flight`). No batch goes out before
    every actor of the pool has started and loaded its engines (up to `ACTOR_START_S`; Ray Data's
    `DataContext.wait_for_min_actors_s`, where you set it, wins): an actor that started first
    would otherwise take batches another was due, and on a short run finish them all alone.
    """
    import ray

    if len(ds) == 0:  # before any cluster is started
        raise ValueError(
            "The input dataset has no rows, so there is nothing to generate. "
            "Pass a dataset with at least one row (e.g. magpie.empty(n) with n >= 1)."
        )
    started = False
    if not ray.is_initialized():
        ray.init(address=address, **dict(init_options or {}))
        started = True
    elif address is not None:
        raise RuntimeError(
            "This process is already connected to a Ray cluster; call run_on_ray(address=None) to "
            "use it, or ray.shutdown() first to connect to another."
        )
    try:
        actors, gpus_each, cpus_each = _cluster_resources(_tensor_parallel_size(steps))
        if in_flight is not None and (not isinstance(in_flight, int) or in_flight < 1):
            raise ValueError(f"in_flight must be an integer >= 1 (or None), got {in_flight!r}")
        actors = concurrency or actors
        gpus = gpus_each if num_gpus is None else num_gpus

        def on_ray(ds: Dataset, todo: list[int]) -> Iterator[tuple[int, pa.Table]]:
            batches = in_flight or actor_in_flight(gpus, batch_size, len(todo), actors)
            streaming: dict[str, Any] = {} if batches == 1 else {
                "max_tasks_in_flight_per_actor": batches, "max_concurrent_calls_per_actor": batches,
                "enable_true_multi_threading": True,
            }
            options = {
                "compute": ray.data.ActorPoolStrategy(size=actors, **streaming),
                "num_gpus": gpus,
                "num_cpus": cpus_each if num_cpus is None else num_cpus,
                # Ray's own defaults retry forever; restarts stay unlimited (a long run may lose
                # many nodes), each batch's attempts are bounded.
                "max_restarts": -1,
                "max_task_retries": retries,
            }
            yield from _ray_batches(ds, steps, todo, batch_size, options)

        if checkpoint_dir is not None:
            return resume(ds, steps, checkpoint_dir, batch_size, on_ray, desc="batches on Ray")
        scratch = tempfile.mkdtemp(prefix="magpie-ray-")
        try:  # a throw-away checkpoint, read into memory before it is removed
            out = resume(ds, steps, scratch, batch_size, on_ray, desc="batches on Ray")
            return Dataset(out.data.table.combine_chunks(), info=DatasetInfo(features=out.features))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        if started:
            ray.shutdown()


def _ray_batches(
    ds: Dataset, steps: Sequence[Step], todo: list[int], batch_size: int, options: Mapping[str, Any]
) -> Iterator[tuple[int, pa.Table]]:
    """Stream `(batch index, finished table)` back from the actors, in completion order."""
    import ray

    if not todo:
        return
    source = ds.with_format("arrow")
    blocks = []
    for i in todo:  # one Ray block per fixed batch, tagged with its index
        part = source[i * batch_size : min((i + 1) * batch_size, len(ds))]
        blocks.append(part.append_column(BATCH_COLUMN, pa.array([i] * part.num_rows, pa.int64())))
    with warnings.catch_warnings():
        # Ray >= 2.60 marks actor options passed as keywords deprecated, but max_restarts and
        # max_task_retries have no other way into map_batches yet.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=Warning)
        results = ray.data.from_arrow(blocks).map_batches(
            StepsActor,
            fn_constructor_kwargs={"steps": list(steps), "features": ds.features},
            batch_size=None,  # a whole block, i.e. exactly one fixed batch, per call
            batch_format="pyarrow",
            zero_copy_batch=True,
            **options,
        )
    # the dataset's own copy of the caller's DataContext (its plan runs on it): the process-wide
    # one is left as it was. Ray's default (<= 0) hands batches to the first actors up while the
    # others start; a value the caller set wins
    if results.context.wait_for_min_actors_s <= 0:
        results.context.wait_for_min_actors_s = ACTOR_START_S
    expected = {i: min((i + 1) * batch_size, len(ds)) - i * batch_size for i in todo}
    pending: dict[int, list[pa.Table]] = {}
    # Ray may split or merge blocks on the way back: regroup rows by their batch index.
    # batch_format="pyarrow": every batch is a pyarrow Table (Ray types it as any batch format)
    for block in cast(Iterable[pa.Table], results.iter_batches(batch_size=None, batch_format="pyarrow")):
        for i in sorted(set(block.column(BATCH_COLUMN).to_pylist())):
            rows = block.filter(pc.equal(block.column(BATCH_COLUMN), i)).drop_columns([BATCH_COLUMN])
            pending.setdefault(i, []).append(rows)
            if sum(t.num_rows for t in pending[i]) == expected[i]:
                yield i, pa.concat_tables(pending.pop(i)).combine_chunks()
    if pending:
        raise RuntimeError(f"Ray returned incomplete batches {sorted(pending)[:10]}; run the same call again.")
