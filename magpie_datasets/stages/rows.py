"""Per-row helpers every generating stage shares: a row's id, its seed, the model that continues it.

    >>> row_keys({"uuid": ["a", "b"], "instruction": ["x", "y"]})
    ['a', 'b']
    >>> answering_models({"model": ["m1", "m2"]}, None), answering_models({"model": ["m1"]}, "other")
    (['m1', 'm2'], ['other'])
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

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


def weighted_draw(row_ids: Sequence[str], weights: Sequence[float], seed: int = 0, salt: str = "") -> list[int]:
    """For each row id, the index of the weight it draws: a pure function of (seed, salt, row id).

    Each row hashes to a point in [0, sum(weights)) and takes the weight that covers it, so a row
    draws the same whatever its batch. `salt` makes draws of different things independent (a row's
    system prompt and its decoding configuration), with the same seed.

    >>> weighted_draw(["a", "b", "c"], [1, 0])
    [0, 0, 0]
    """
    total = sum(weights)
    prefix = f"{seed}/" if not salt else f"{seed}/{salt}/"
    chosen = []
    for row_id in row_ids:
        digest = hashlib.sha256(f"{prefix}{row_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "little") / 2**64 * total  # uniform in [0, total)
        for index, weight in enumerate(weights):
            if point < weight:
                break
            point -= weight
        else:  # float rounding at the very top
            index = max(i for i, w in enumerate(weights) if w > 0)
        chosen.append(index)
    return chosen


def _number(value, what: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        value >= low and (high is None or value <= high)
    ):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(what.format(value=value, bound=bound))
    return float(value)


def _distinct_weighted(configs: list, option: str, item: str, mix: object) -> list:
    """`configs` ((value, weight) pairs of a weighted mix), checked: no value twice, not every weight zero."""
    if len({c for c, _ in configs}) != len(configs):
        raise ValueError(f"{option} lists {item} twice: give each once, with its weight; got {mix!r}")
    if sum(w for _, w in configs) <= 0:
        raise ValueError(f"{option} weights must not all be zero: {mix!r}")
    return configs


def decoding_configs(
    mix: Sequence[Mapping[str, float]], temperature: float = 1.0, top_p: float = 1.0
) -> list[tuple[tuple[float, float], float]]:
    """A checked decoding mix: ((temperature, top_p), weight) per entry, a missing key taken from
    the stage's `temperature` / `top_p` and a missing weight as 1.

    >>> decoding_configs([{"temperature": 1.1, "weight": 3}, {"top_p": 0.99}])
    [((1.1, 1.0), 3.0), ((1.0, 0.99), 1.0)]
    """
    example = '[{"temperature": 1.0, "top_p": 1.0, "weight": 1}, {"temperature": 1.2, "top_p": 0.99, "weight": 1}]'
    if isinstance(mix, (str, bytes, Mapping)) or not isinstance(mix, Sequence) or not mix:
        raise ValueError(f"decoding_mix must be a non-empty list of {{temperature, top_p, weight}} dicts, e.g. {example}; got {mix!r}")
    configs = []
    for i, entry in enumerate(mix):
        if not isinstance(entry, Mapping) or set(entry) - {"temperature", "top_p", "weight"}:
            raise ValueError(
                f"decoding_mix[{i}] must be a dict with keys temperature, top_p, weight (each optional), got {entry!r}"
            )
        t = _number(entry.get("temperature", temperature), f"decoding_mix[{i}] temperature must be a number {{bound}}, got {{value!r}}", 0.0)
        p = _number(entry.get("top_p", top_p), f"decoding_mix[{i}] top_p must be a number {{bound}}, got {{value!r}}", 0.0, 1.0)
        if p == 0:
            raise ValueError(f"decoding_mix[{i}] top_p must be > 0 (it keeps no token at 0), got {p!r}")
        w = _number(entry.get("weight", 1.0), f"decoding_mix[{i}] weight must be a number {{bound}}, got {{value!r}}", 0.0)
        configs.append(((t, p), w))
    return _distinct_weighted(configs, "decoding_mix", "a (temperature, top_p) pair", mix)


def assign_decoding(
    row_ids: Sequence[str],
    mix: Sequence[Mapping[str, float]],
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> list[tuple[float, float]]:
    """The (temperature, top_p) each row draws from a decoding mix, reproducibly from (seed, row id).

    >>> assign_decoding(["a", "b"], [{"temperature": 1.2, "top_p": 0.99}])
    [(1.2, 0.99), (1.2, 0.99)]
    """
    configs = decoding_configs(mix, temperature, top_p)
    drawn = weighted_draw(row_ids, [w for _, w in configs], seed, salt="decoding")
    return [configs[i][0] for i in drawn]


def prefix_configs(instruction_prefix: str | Sequence[Mapping[str, object]]) -> list[tuple[str, float]]:
    """A checked instruction-prefix mix: (prefix, weight) per entry; a string is one prefix for every
    row, a missing weight is 1.

    >>> prefix_configs("Write a Python function that")
    [('Write a Python function that', 1.0)]
    >>> prefix_configs([{"prefix": "Write a Python function that", "weight": 3}, {"prefix": "Implement a class"}])
    [('Write a Python function that', 3.0), ('Implement a class', 1.0)]
    """
    if isinstance(instruction_prefix, str):
        return [(instruction_prefix, 1.0)]
    example = '[{"prefix": "Write a Python function that", "weight": 3}, {"prefix": "Implement a class", "weight": 1}]'
    mix = instruction_prefix
    if isinstance(mix, (bytes, Mapping)) or not isinstance(mix, Sequence) or not mix:
        raise ValueError(f"instruction_prefix must be a string or a non-empty list of {{prefix, weight}} dicts, e.g. {example}; got {mix!r}")
    configs = []
    for i, entry in enumerate(mix):
        if not isinstance(entry, Mapping) or set(entry) - {"prefix", "weight"} or not isinstance(entry.get("prefix"), str):
            raise ValueError(f"instruction_prefix[{i}] must be a dict with a string `prefix` and an optional `weight`, got {entry!r}")
        weight = _number(entry.get("weight", 1.0), f"instruction_prefix[{i}] weight must be a number {{bound}}, got {{value!r}}", 0.0)
        configs.append((str(entry["prefix"]), weight))
    return _distinct_weighted(configs, "instruction_prefix", "a prefix", mix)


def assign_prefix(
    row_ids: Sequence[str], instruction_prefix: str | Sequence[Mapping[str, object]] | None, seed: int = 0
) -> list[str]:
    """The prefix each row's instruction starts with ("" without one), reproducibly from (seed, row id).

    >>> assign_prefix(["a", "b"], "Write a Python function that"), assign_prefix(["a"], None)
    (['Write a Python function that', 'Write a Python function that'], [''])
    """
    if instruction_prefix is None:
        return [""] * len(row_ids)
    configs = prefix_configs(instruction_prefix)
    drawn = weighted_draw(row_ids, [w for _, w in configs], seed, salt="prefix")
    return [configs[i][0] for i in drawn]


def row_keys(batch: Mapping[str, list]) -> list[str]:
    """What identifies each row for its seed: `uuid`, else the instruction text."""
    return [str(k) for k in (batch["uuid"] if "uuid" in batch else batch["instruction"])]


def answering_models(batch: Mapping[str, list], model: str | None) -> list[str | None]:
    """The model that continues each row: `model`, or with `model=None` the row's own `model`
    column (the one that wrote the instruction), or the embedded default (None) without one."""
    return list(batch["model"]) if model is None and "model" in batch else [model] * batch_size_of(batch)
