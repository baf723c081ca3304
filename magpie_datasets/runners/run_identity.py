"""What identifies a run: its steps and their keyword arguments, its input, its batch size.

`run_identity` is what a checkpoint's `manifest.json` and a saved dataset's `magpie_run.json`
record; a directory holding a different identity is refused with `CheckpointMismatchError`,
whose message says what differs. Secrets are redacted, never written (`SECRET_KEY`,
`SECRET_VALUE`); `is_secret_key` is the rule for keys never shown to people (cards, reports).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pyarrow as pa
from datasets import Dataset
from datasets.fingerprint import Hasher

from ..version import code_version

__all__ = ["CheckpointMismatchError", "input_fingerprint", "is_secret_key", "run_identity"]

FORMAT_VERSION = 1
_HASH_ROWS = 10_000  # rows per slice when hashing the input's content

Step = tuple[Callable[..., Mapping[str, list]], Mapping[str, Any]]


class CheckpointMismatchError(ValueError):
    """A checkpoint or output directory already holds a different run (or something else)."""


SECRET_KEY = re.compile(
    r"^(?:hf_|use_auth_|access_|auth_|api_)?token$|^(?:api_key|password|secret|authorization|credentials?)$",
    re.IGNORECASE,
)  # not max_tokens, eos_token, ...: those change the rows
SECRET_VALUE = re.compile(r"\b(?:hf|api|sk)_[A-Za-z0-9]{20,}\b")  # Hub / API tokens by their shape
REDACTED = "<redacted>"
_SECRET_NAMES = ("token", "api_key", "password", "secret")
_SECRET_SUFFIXES = ("_token", "_secret", "_api_key")


def is_secret_key(key: str) -> bool:
    """True for an option whose value is a secret, never to be shown (a dataset card, a report).

    The union of `SECRET_KEY` (`token`, `hf_token`, `api_key`, `password`, `authorization`, ...)
    and every key named `token`, `api_key`, `password` or `secret`, or ending in `_token`,
    `_secret` or `_api_key`, in any case. A run's identity (`_canonical`) redacts only the
    `SECRET_KEY` keys: `eos_token` and the like change the rows, so they stay part of it.
    """
    key = str(key)
    if SECRET_KEY.search(key):
        return True
    lowered = key.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def _canonical(value: Any) -> Any:
    """A JSON-able stand-in for a keyword argument: itself, or a content hash for other objects.

    Secrets (a `token=` option, anything shaped like a Hub token) are written as "<redacted>":
    they never change the rows, so they are no part of a run's identity, and manifests are
    plain files that must never hold them.
    """
    if isinstance(value, str):
        return SECRET_VALUE.sub(REDACTED, value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if SECRET_KEY.search(str(k)) and v is not None else _canonical(v)
            for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
        }
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return {"__hash__": Hasher.hash(value), "__type__": type(value).__qualname__}


def _function_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def input_fingerprint(ds: Dataset) -> str:
    """sha256 of the dataset's rows and column types (not of where it is stored).

    The same rows give the same hash whether built in memory or loaded from disk.
    """
    digest = hashlib.sha256()
    table = ds.with_format("arrow")
    for start in range(0, len(ds), _HASH_ROWS):
        part = table[start : start + _HASH_ROWS]
        part = part.replace_schema_metadata(None).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, part.schema) as writer:
            writer.write_table(part)
        digest.update(sink.getvalue())
    if len(ds) == 0:
        digest.update(str(ds.features).encode())
    return digest.hexdigest()


def run_identity(ds: Dataset, steps: Sequence[Step], batch_size: int) -> dict[str, Any]:
    """What makes two runs the same run: steps with their kwargs, the input, the batch size."""
    return {
        "format": FORMAT_VERSION,
        # an upgrade, or an edit of a source install, may write other rows: not the same run
        "package": f"magpie-datasets {code_version()}",
        "steps": [{"function": _function_name(fn), "fn_kwargs": _canonical(dict(kw or {}))} for fn, kw in steps],
        "input": {"num_rows": len(ds), "fingerprint": input_fingerprint(ds)},
        "batch_size": int(batch_size),
    }


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Readable list of where two identities differ, e.g. `steps[0].fn_kwargs.seed: 0 != 1`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if path else key
            if key not in old or key not in new:
                out.append(f"{where}: {'(absent)' if key not in old else _short(old[key])} != "
                           f"{'(absent)' if key not in new else _short(new[key])}")
            else:
                out.extend(_differences(old[key], new[key], where))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{path}[{i}]")]
        if len(old) != len(new):
            out.append(f"{path}: {len(old)} entries != {len(new)}")
        return out
    return [] if old == new else [f"{path}: {_short(old)} != {_short(new)}"]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mismatch(directory: Path, what: str, old: dict, new: dict, fix: str) -> CheckpointMismatchError:
    diffs = _differences(old, new)[:6]
    return CheckpointMismatchError(
        f"{directory} already holds a different {what} ({'; '.join(diffs) or 'identity differs'}). "
        f"{fix}"
    )

