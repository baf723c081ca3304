"""A whole-dataset report (a recipe's report stage, e.g. `compare_responders`) computed once per
checkpoint directory, as `run_resumable` computes each batch once."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

from datasets import Dataset

from .atomic_files import _exclusive, _write_json
from .checkpoint import _open_checkpoint
from .run_identity import run_identity

REPORT = "report.json"


def report_once(ds: Dataset, fn: Callable[..., Any], kwargs: Mapping[str, Any], checkpoint_dir: str | os.PathLike) -> Any:
    """`fn(ds, **kwargs)`, kept in `checkpoint_dir/report.json` beside the run's manifest: the same
    call after a crash reads it back instead of computing it again.

    Returns the result as JSON gives it back (tuples become lists), the same on the first run and
    on a resumed one. A directory that holds another run (other rows or keywords) is refused with
    `CheckpointMismatchError`, as `run_resumable` refuses it; a first run that fails leaves nothing.
    """
    directory = Path(checkpoint_dir)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    done = directory / REPORT
    try:
        with _exclusive(directory):
            _open_checkpoint(directory, run_identity(ds, [(fn, kwargs)], batch_size=max(1, len(ds))))
            if not done.exists():
                _write_json(done, fn(ds, **kwargs))
            return json.loads(done.read_text())
    except BaseException:
        if created and not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
        raise
