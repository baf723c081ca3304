"""Exactly-once resumable runs: batched map functions applied batch by batch to a checkpoint.

    steps = [(add_magpie_instructions, {"max_tokens": 64}), (generate_responses, {"max_tokens": 128})]
    ds = run_resumable(empty(1000), steps, "run.ckpt", batch_size=64)   # kill it, run it again: it resumes

Batch `i` is the fixed slice of input rows `[i * batch_size, (i + 1) * batch_size)`; every
step runs on it (as `Dataset.map(fn, batched=True)` would, output columns replacing input
columns of the same name) and the finished batch is written as one Arrow file with an atomic
write (temporary file, fsync, `os.replace`). A killed run therefore leaves only whole batches,
and running the same call again computes just the missing ones: no row lost, none duplicated.
Stages seed each row from its own id (`generate.row_seed`), so an interrupted run gives the same
rows as an uninterrupted one.

Several batches are computed at once (`in_flight`, one thread each, sized from the engine's own
concurrency): their engine calls join one running engine batch (`engines.shared_loop`), so the
engine is refilled as rows finish instead of waiting for each batch's slowest row. Finished batches
are written in order; a kill loses at most the batches in flight.

`manifest.json` records the run's identity: the package version and code digest, each step's
function and keyword arguments, the input's content hash and row count, and the batch size. A
directory that holds a different run is refused with one error that says what differs. `save_dataset` gives
output directories the same guarantees: written whole or not at all, and never over a different run.

This module is that protocol. Elsewhere: a run's identity (`run_identity`), the atomic writes
and the directory lock (`atomic_files`), the batches in flight (`in_flight`), the bars (`progress`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, concatenate_datasets
from datasets.features.features import get_nested_type
from tqdm.auto import tqdm

from .atomic_files import _exclusive, _fsync_dir, _write_arrow, _write_json
from .in_flight import _in_flight
from .ledger import (
    REPORT_FILE,
    Meter,
    StageYield,
    YieldReport,
    engines_of,
    hardware,
    summed,
)
from .progress import _StepBar
from .run_identity import (
    CheckpointMismatchError,
    Step,
    _function_name,
    _mismatch,
    run_identity,
)

__all__ = [
    "check_output",
    "checkpoint_report",
    "resume",
    "run_batch",
    "run_resumable",
    "save_dataset",
]

MANIFEST = "manifest.json"
YIELD_KEY = b"magpie_yield"  # schema metadata of a finished batch: its figures, per step (ledger.Meter)
RUN_FILE = "magpie_run.json"  # written next to a saved dataset: which run produced it


# ---------------------------------------------------------------- the run


def _open_checkpoint(directory: Path, identity: dict) -> None:
    """Create the manifest, or check that the one there describes this same run."""
    manifest = directory / MANIFEST
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != identity:
            raise _mismatch(
                directory,
                "run",
                old,
                identity,
                "Use another checkpoint directory for this run, or delete that one to start it over.",
            )
        return
    leftovers = [p.name for p in directory.iterdir() if p.name != "lock" and not p.name.startswith(".tmp-")]
    if leftovers:
        raise CheckpointMismatchError(
            f"{directory} is not empty and has no {MANIFEST}, so it is not a checkpoint of this run "
            f"(found {sorted(leftovers)[:5]}). Give the run an empty or new checkpoint directory."
        )
    _write_json(manifest, identity)


def _batch_path(directory: Path, index: int) -> Path:
    return directory / "batches" / f"{index:07d}.arrow"


def _figures_path(directory: Path, index: int) -> Path:
    return directory / "yield" / f"{index:07d}.json"


def _keep_figures(directory: Path, index: int, table: pa.Table) -> pa.Table:
    """Write the batch's figures beside it (before the batch itself: a batch file never lacks
    them unless it was computed where they were lost); return the table without them."""
    metadata = dict(table.schema.metadata or {})
    measured = metadata.pop(YIELD_KEY, None)
    if measured is not None:
        _figures_path(directory, index).parent.mkdir(exist_ok=True)
        _write_json(_figures_path(directory, index), json.loads(measured))
    return table.replace_schema_metadata(metadata or None)


def _step_name(fn: Callable) -> str:
    from ..stages.table import stage_of

    entry = stage_of(fn)
    return entry.name if entry else getattr(fn, "__name__", repr(fn))


def _report(directory: Path, steps: Sequence[Step], n_batches: int, rows: int) -> YieldReport:
    """The run's yield report, from the figures of every batch, whichever run computed it."""
    per_batch = []
    for i in range(n_batches):
        path = _figures_path(directory, i)
        per_batch.append(json.loads(path.read_text()) if path.exists() else None)
    seen = [b["hardware"] for b in per_batch if b]
    stages = []
    for s, (fn, kwargs) in enumerate(steps):
        figures = summed(b["steps"][s] if b and len(b["steps"]) == len(steps) else None for b in per_batch)
        stages.append(StageYield(_step_name(fn), "map", rows, rows, engines=engines_of(fn, dict(kwargs or {})),
                                 hardware=seen[-1] if seen else hardware(), **figures))
    return YieldReport(tuple(stages))


def checkpoint_report(checkpoint_dir: str | os.PathLike) -> YieldReport:
    """The yield report a finished `run_resumable` left in `checkpoint_dir` (one `StageYield` per step)."""
    return YieldReport.read(Path(checkpoint_dir) / REPORT_FILE)

def _apply_steps(
    batch: dict[str, list], steps: Sequence[Step], rows: int, bars: Sequence[_StepBar] | None = None,
    figures: list[dict[str, Any]] | None = None, locks: Mapping[int, threading.Lock] | None = None,
) -> dict[str, list]:
    for s, (fn, kwargs) in enumerate(steps):
        meter = Meter(concurrent=locks is not None)
        try:
            with (locks or {}).get(s) or contextlib.nullcontext():
                out = fn(batch, **dict(kwargs or {}))
        finally:
            measured = meter.figures()
        if figures is not None:
            figures.append(measured)
        if bars:
            bars[s].update(rows, measured["completion_tokens"], measured["seconds"])
        bad = {name: len(values) for name, values in out.items() if len(values) != rows}
        if bad:
            raise ValueError(
                f"{_function_name(fn)} returned {bad} rows for a batch of {rows}: run_resumable needs "
                "steps that return one output row per input row."
            )
        batch = {**batch, **out}
    return batch


def run_batch(
    ds: Dataset, steps: Sequence[Step], start: int, stop: int, bars: Sequence[_StepBar] | None = None,
    locks: Mapping[int, threading.Lock] | None = None,
) -> pa.Table:
    """Rows `[start, stop)` of `ds` through every step, as an Arrow table.

    Its schema metadata holds what each step cost (`YIELD_KEY`: seconds, tokens, peak memory,
    hardware), which the checkpoint keeps per batch for the run's yield report. `locks`: with
    other batches in flight, step index -> the lock that step runs under (see `step_locks`).
    """
    source = ds.with_format("arrow")[start:stop]
    original = ds.with_format(None)[start:stop]
    figures: list[dict[str, Any]] = []
    out = _apply_steps(dict(original), steps, stop - start, bars, figures, locks)
    arrays = {}
    for name, values in out.items():
        if name in original and values is original[name]:
            arrays[name] = source.column(name)  # untouched input column: keep its type exactly
        elif hasattr(values, "__arrow_array__"):
            arrays[name] = values.__arrow_array__()
        else:
            arrays[name] = pa.array(list(values))
    measured = json.dumps({"steps": figures, "hardware": hardware()})
    return pa.table(arrays).replace_schema_metadata({YIELD_KEY: measured.encode()})


def _assemble(files: list[Path], input_features: Features) -> Dataset:
    """One Dataset memory-mapping the batch files, types unified across batches."""
    parts = [Dataset.from_file(str(f)) for f in files]
    schemas = [p.data.schema.remove_metadata() for p in parts]
    if any(s != schemas[0] for s in schemas[1:]):
        # A column typed null in one batch (all None) and string in another: promote.
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        features = Features.from_arrow_schema(unified)
        parts = [
            p.cast(features, keep_in_memory=True) if p.data.schema.remove_metadata() != unified else p for p in parts
        ]  # in memory: no cache files written into the checkpoint
    ds = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    # Input columns the steps left alone keep their declared features (ClassLabel, ...).
    kept = {
        name: feature
        for name, feature in input_features.items()
        if name in ds.features and ds.features[name] != feature
        and ds.data.schema.field(name).type == get_nested_type(feature)
    }
    if not kept:
        return ds
    # Same Arrow types, so only the declared features change: no rewrite of the data.
    return Dataset(ds.data, info=DatasetInfo(features=Features({**ds.features, **kept})))


def run_resumable(
    ds: Dataset,
    steps: Sequence[Step],
    checkpoint_dir: str | os.PathLike,
    batch_size: int = 64,
    desc: str | None = None,
    in_flight: int | None = None,
) -> Dataset:
    """Apply `steps` (batched map functions with their kwargs) to `ds`, resumably and exactly once.

    Input: a Dataset and `[(fn, fn_kwargs), ...]`, each `fn(batch, **fn_kwargs) -> dict of lists`
    with one output row per input row. Output: the same rows with the steps' columns, as
    `ds.map(fn1, batched=True, batch_size=batch_size).map(fn2, ...)` would give, memory-mapped
    from `checkpoint_dir/batches/`. Call it again with the same arguments after a crash to
    finish the run; a finished run is only read back.

    Args:
        batch_size (`int`, defaults to 64): rows per checkpoint batch, the unit written at once
            and lost at most per batch in flight when the run is killed. It does not bound the
            engine's batch: see `in_flight`.
        desc (`str`, optional): label of the progress bar.
        in_flight (`int`, optional): checkpoint batches computed at once, one thread each. Their
            `generate` calls join one running batch in the engine (`engines.shared_loop`), so
            the engine is fed as rows finish, not once per checkpoint batch. Default: enough
            batches for twice the loaded engines' own concurrency (vLLM's `max_num_seqs`, the
            transformers engine's `batch_size`), at least 2. 1: one batch after another.
            Steps that load no engine (reward models, embedders, functions of your own) run one
            batch at a time. The rows do not depend on it.
    """
    if in_flight is not None and (not isinstance(in_flight, int) or in_flight < 1):
        raise ValueError(f"in_flight must be an integer >= 1 (or None for the engine's own concurrency), got {in_flight!r}")

    def in_this_process(ds: Dataset, todo: list[int]) -> Iterator[tuple[int, pa.Table]]:
        spans = [(i * batch_size, min((i + 1) * batch_size, len(ds))) for i in todo]
        rows = sum(stop - start for start, stop in spans)
        bars = [_StepBar(fn, rows, position) for position, (fn, _) in enumerate(steps, start=1)]
        try:
            yield from _in_flight(ds, steps, list(zip(todo, spans)), bars, batch_size, in_flight, run_batch)
        finally:
            for step in bars:
                step.bar.close()

    return resume(ds, steps, checkpoint_dir, batch_size, in_this_process, desc=desc)

def resume(
    ds: Dataset,
    steps: Sequence[Step],
    checkpoint_dir: str | os.PathLike,
    batch_size: int,
    compute: Callable[[Dataset, list[int]], Iterator[tuple[int, pa.Table]]],
    desc: str | None = None,
) -> Dataset:
    """The checkpoint protocol, with the batches computed by `compute(ds, todo)`.

    `compute` yields `(batch_index, finished Arrow table)` for every index in `todo`, in
    any order (in this process, or on a cluster: see `ray_runner`). Each is written
    atomically as it arrives.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if len(ds) == 0:
        raise ValueError(
            "The input dataset has no rows, so there is nothing to generate. "
            "Pass a dataset with at least one row (e.g. magpie.empty(n) with n >= 1)."
        )
    if not steps:
        raise ValueError("A resumable run needs at least one (function, fn_kwargs) step")
    identity = run_identity(ds, steps, batch_size)
    directory = Path(checkpoint_dir)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _resume(ds, steps, directory, batch_size, compute, identity, desc)
    except BaseException:
        # A run that fails before finishing any batch (bad model, bad template...) leaves nothing.
        if created and not any((directory / "batches").glob("[0-9]*.arrow")):
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _resume(ds, steps, directory: Path, batch_size: int, compute, identity: dict, desc) -> Dataset:
    n_batches = -(-len(ds) // batch_size)
    rows_in = [min((i + 1) * batch_size, len(ds)) - i * batch_size for i in range(n_batches)]
    with _exclusive(directory):
        _open_checkpoint(directory, identity)
        (directory / "batches").mkdir(exist_ok=True)
        for stale in (directory / "batches").glob(".tmp-*"):  # left by a killed write
            stale.unlink(missing_ok=True)
        files = [_batch_path(directory, i) for i in range(n_batches)]
        todo = [i for i, f in enumerate(files) if not f.exists()]
        bar = tqdm(total=n_batches, initial=n_batches - len(todo), desc=desc or "batches", unit="batch")
        for i, table in compute(ds, todo):
            if table.num_rows != rows_in[i]:
                raise ValueError(f"Batch {i} came back with {table.num_rows} rows instead of {rows_in[i]}")
            _write_arrow(files[i], _keep_figures(directory, i, table))
            bar.update(1)
        bar.close()

        missing = [i for i, f in enumerate(files) if not f.exists()]
        if missing:
            raise RuntimeError(f"Batches {missing[:10]} were not computed; run the same call again to finish.")
        for i, part_rows in enumerate(_rows_per_file(files)):
            if part_rows != rows_in[i]:
                raise CheckpointMismatchError(
                    f"{files[i]} holds {part_rows} rows where batch {i} has {rows_in[i]}: the checkpoint "
                    f"was changed by hand. Delete {directory} to start the run over."
                )
        report = _report(directory, steps, n_batches, len(ds))
        if not (directory / REPORT_FILE).exists() or YieldReport.read(directory / REPORT_FILE) != report:
            report.write(directory / REPORT_FILE)  # a finished run read back changes no file
        return _assemble(files, ds.features)


def _rows_per_file(files: list[Path]) -> Iterator[int]:
    for f in files:
        with pa.memory_map(str(f)) as source:
            yield sum(b.num_rows for b in pa.ipc.open_stream(source))


# ---------------------------------------------------------------- output directories


def save_dataset(
    ds: Dataset, output_dir: str | os.PathLike, identity: Mapping[str, Any], report: YieldReport | None = None
) -> Path:
    """`ds.save_to_disk(output_dir)`, all or nothing, refusing a directory that holds another run.

    The dataset is saved to a temporary sibling and renamed into place, with `magpie_run.json`
    (the run identity) and, when given, the run's `yield_report.json` beside it. Returns the path.
    """
    output = Path(output_dir)
    check_output(output, identity)
    if output.exists():  # same run, already complete
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    for stale in output.parent.glob(f".tmp-{output.name}-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{output.name}-", dir=output.parent))
    try:
        ds.save_to_disk(str(tmp))
        _write_json(tmp / RUN_FILE, dict(identity))
        if report is not None:
            report.write(tmp / REPORT_FILE)
        os.replace(tmp, output)  # atomic for a directory: `output` did not exist
        _fsync_dir(output.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def check_output(output_dir: str | os.PathLike, identity: Mapping[str, Any]) -> bool:
    """True when `output_dir` already holds this finished run, False when it is absent or empty.

    Raises `CheckpointMismatchError` when it holds a different run or files of something else.
    """
    output = Path(output_dir)
    if not output.exists():
        return False
    if not output.is_dir():
        raise CheckpointMismatchError(f"Output {output} exists and is not a directory. Choose another --output.")
    if not any(output.iterdir()):
        output.rmdir()  # an empty directory is as good as none; `os.replace` needs it gone
        return False
    run_file = output / RUN_FILE
    if not run_file.exists():
        raise CheckpointMismatchError(
            f"Output directory {output} already holds files that this run did not write "
            f"(no {RUN_FILE}). Choose another --output, or delete {output}."
        )
    old = json.loads(run_file.read_text())
    if old != json.loads(json.dumps(dict(identity), sort_keys=True)):
        raise _mismatch(output, "run", old, dict(identity), "Choose another --output, or delete it to replace it.")
    return True
