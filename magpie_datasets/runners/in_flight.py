"""Several checkpoint batches computed at once, in threads, and handed back in order.

Their engine calls join one running engine batch (`engines.shared_loop`); steps that are not
known to be thread-safe run one batch at a time under `step_locks`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Sequence

import pyarrow as pa

from .run_identity import Step


def step_locks(steps: Sequence[Step]) -> dict[int, threading.Lock]:
    """A lock for each step that must see one batch at a time: all but the stages whose every
    model is engine-run (their calls join the engine's shared loop). Reward models, embedders
    and functions of your own are not known to be safe in several threads at once."""
    from ..stages.table import stage_of

    locks = {}
    for s, (fn, _) in enumerate(steps):
        entry = stage_of(fn)
        if not (entry and entry.models and all(m.engine is not None for m in entry.models)):
            locks[s] = threading.Lock()
    return locks


def batches_to_fill(rows_at_once: int, batch_size: int) -> int:
    """Checkpoint batches that hold twice the rows an engine decodes at once (at least one), so
    rows wait to take the place of those that finish.

    >>> batches_to_fill(256, 64), batches_to_fill(1024, 4096)
    (8, 1)
    """
    return max(1, -(-2 * rows_at_once // batch_size))


def _in_flight(
    ds, steps, batches: list[tuple[int, tuple[int, int]]], bars, batch_size: int, limit: int | None,
    run_batch: Callable[..., pa.Table],
):
    """Compute `batches` ((index, (start, stop)), in order) with several in flight; yield each
    (index, table) in that order as soon as it and the ones before it are done, so a checkpoint
    grows as a prefix. After a failure, every batch that finished is still yielded (not lost),
    then the error is raised. `run_batch`: `checkpoint.run_batch`, which computes one batch."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from ..engines import engine_concurrency

    def allowed() -> int:
        if limit is not None:
            return limit
        concurrency = engine_concurrency()  # None until a step has loaded its engine
        return max(2, batches_to_fill(concurrency, batch_size)) if concurrency else 2

    locks, waiting, order = step_locks(steps), deque(batches), deque(index for index, _ in batches)
    running: dict = {}
    spans = dict(batches)
    finished: dict[int, pa.Table] = {}  # done, waiting for the batches before them
    error = None
    pool = ThreadPoolExecutor(max_workers=max(1, len(batches)), thread_name_prefix="magpie-batch")
    try:
        while waiting or running:
            # a slow batch holds the ones after it in memory: bound those too
            while waiting and error is None and len(running) < allowed() and len(finished) < 2 * allowed():
                index, (start, stop) = waiting.popleft()
                running[pool.submit(run_batch, ds, steps, start, stop, bars, locks)] = index
            for bar in bars:
                bar.in_flight = sum(spans[i][1] - spans[i][0] for i in running.values())
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                if future.exception() is not None:
                    error = error or future.exception()
                else:
                    finished[index] = future.result()
            while order and order[0] in finished:
                index = order.popleft()
                yield index, finished.pop(index)
        for index in sorted(finished):  # after a failure: the finished batches past the gap
            yield index, finished.pop(index)
        if error is not None:
            raise error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
