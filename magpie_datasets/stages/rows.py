"""Per-row helpers every generating stage shares: a row's id, its seed, the model that continues it.

    >>> row_keys({"uuid": ["a", "b"], "instruction": ["x", "y"]})
    ['a', 'b']
    >>> answering_models({"model": ["m1", "m2"]}, None), answering_models({"model": ["m1"]}, "other")
    (['m1', 'm2'], ['other'])
"""

from __future__ import annotations

import hashlib
from typing import Mapping

from ..schema import batch_size_of


def row_seed(seed: int, key: str) -> int:
    """The seed of one row's sample: a hash of the run's seed and the row's own id.

    A row therefore gets the same text whatever `batch_size`, `num_proc`, the rows around
    it or a resume.

    >>> row_seed(0, "a2639ae2-f300-5e4b-8490-5103f59a5891") != row_seed(1, "a2639ae2-f300-5e4b-8490-5103f59a5891")
    True
    >>> 0 <= row_seed(0, "any row") < 2**63
    True
    """
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def row_keys(batch: Mapping[str, list]) -> list[str]:
    """What identifies each row for its seed: `uuid`, else the instruction text."""
    return [str(k) for k in (batch["uuid"] if "uuid" in batch else batch["instruction"])]


def answering_models(batch: Mapping[str, list], model: str | None) -> list[str | None]:
    """The model that continues each row: `model`, or with `model=None` the row's own `model`
    column (the one that wrote the instruction), or the embedded default (None) without one."""
    return list(batch["model"]) if model is None and "model" in batch else [model] * batch_size_of(batch)
