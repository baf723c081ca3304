"""Files written whole or not at all (temporary file, fsync, `os.replace`), and the directory lock.

A killed writer leaves the old file or the new one, never part of one; `_exclusive` keeps two
live runs out of one directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from .run_identity import CheckpointMismatchError


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every OS/filesystem lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_json(path: Path, value: Any) -> None:
    with _atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def _write_arrow(path: Path, table: pa.Table) -> None:
    with _atomic_path(path) as tmp:
        # IPC stream format: what `Dataset.from_file` memory-maps.
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold an advisory lock on the directory so two live runs cannot share it (freed on kill -9)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock, the atomic writes still hold
        yield
        return
    with open(directory / "lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointMismatchError(
                f"Another process is running in checkpoint directory {directory}. "
                "Wait for it to finish, or give this run its own checkpoint directory."
            ) from None
        yield
