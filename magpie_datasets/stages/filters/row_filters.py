"""Row predicates for `Dataset.filter` on the Magpie tags: `RowFilter` and its factories."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


from ...schema import DIFFICULTY_LABELS as DIFFICULTY
from ...schema import QUALITY_LABELS as QUALITY
from ...version import code_version
from ..columns import require_reads

CODING_TASK = "Coding & Debugging"

@dataclass(frozen=True)
class RowFilter:
    """A row predicate for `Dataset.filter`, single rows or batches; combine with `&`."""

    name: str
    rule: Callable[[Mapping[str, Any]], bool] = field(repr=False)
    columns: tuple[str, ...]
    # part of the `datasets` fingerprint of `ds.filter(f)`: an upgrade, or an edit of a source
    # install, does not reuse old results
    version: str = field(default_factory=code_version, repr=False)

    def __call__(self, example: Mapping[str, Any]) -> bool | list[bool]:
        example = require_reads(example, f"filter {self.name}", self.columns)
        first = example[self.columns[0]]
        if not isinstance(first, list):
            return bool(self.rule(example))
        batch = {c: example[c] for c in self.columns}
        return [bool(self.rule({c: batch[c][i] for c in self.columns})) for i in range(len(first))]

    def __and__(self, other: "RowFilter") -> "RowFilter":
        return all_of(self, other)


def all_of(*filters: RowFilter, name: str | None = None) -> RowFilter:
    """One filter keeping the rows every one of `filters` keeps."""
    columns = tuple(dict.fromkeys(c for f in filters for c in f.columns))
    rules = tuple(f.rule for f in filters)
    return RowFilter(name or " & ".join(f.name for f in filters), lambda row: all(r(row) for r in rules), columns)


def _rank(order: tuple[str, ...], label: Any) -> int:
    if not isinstance(label, str):
        return -1
    try:
        return order.index(" ".join(label.strip().lower().split()))
    except ValueError:
        return -1


def _at_least(order: tuple[str, ...], column: str, label: str) -> RowFilter:
    floor = _rank(order, label)
    if floor < 0:
        raise ValueError(f"Unknown {column} label {label!r}: choose one of {', '.join(order)}")
    return RowFilter(f"{column} >= {order[floor]}", lambda row: _rank(order, row[column]) >= floor, (column,))


def min_quality(label: str = "good", column: str = "input_quality") -> RowFilter:
    """Keep rows whose input quality is at least `label` (very poor < poor < average < good < excellent).

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch. Labels compare case- and space-insensitively; a missing or
    unknown label in a row fails.

    Args:
        label (`str`, *optional*, defaults to `"good"`): the lowest quality kept (inclusive), one of
            `schema.QUALITY_LABELS`; another is a `ValueError`. "good" is the release's filtered sets'
            (`PAPER["air-300k"]`, `"pro-300k"`, `"llama3.1-pro-300k"`: quality in {good, excellent});
            "average" is `"paper-300k"`'s and table 5's Filter 1 (paper appendix C).
        column (`str`, *optional*, defaults to `"input_quality"`): the label column read, as
            `tag_with_llm` writes it (the published `input_quality`).

    >>> keep = min_quality("good")
    >>> keep({"input_quality": "Excellent"}), keep({"input_quality": ["poor", "good", None]})
    (True, [False, True, False])
    """
    return _at_least(QUALITY, column, label)


def min_difficulty(label: str = "easy", column: str = "difficulty") -> RowFilter:
    """Keep rows whose difficulty is at least `label` (very easy < easy < medium < hard < very hard).

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch. Labels compare case- and space-insensitively; a missing or
    unknown label in a row fails.

    Args:
        label (`str`, *optional*, defaults to `"easy"`): the lowest difficulty kept (inclusive), one of
            `schema.DIFFICULTY_LABELS`; another is a `ValueError`. "easy" is the floor of
            `PAPER["llama3.1-pro-300k"]`, `"paper-300k"` and table 5's Pro filters 2, 4, 5 and 6 (appendix C);
            "medium" is the Magpie-Air filter's (`"air-filter"`).
        column (`str`, *optional*, defaults to `"difficulty"`): the label column read, as
            `tag_with_llm` writes it (the published `difficulty`).
    """
    return _at_least(DIFFICULTY, column, label)


def _greater(column: str, threshold: float) -> RowFilter:
    def rule(row):
        value = row[column]
        return value is not None and not math.isnan(value) and value > threshold

    return RowFilter(f"{column} > {threshold:g}", rule, (column,))


def min_reward(threshold: float = -10, column: str = "instruct_reward") -> RowFilter:
    """Keep rows whose reward is strictly above `threshold` (the authors' `instruct_reward > -10`).

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch. A None or NaN reward fails.

    Args:
        threshold (`float`, *optional*, defaults to `-10`): the reward a row must exceed (strict `>`).
            -10 is the release's filtered sets' rule (`PAPER["air-300k"]`, `"pro-300k"`,
            `"llama3.1-pro-300k"`); the paper's tau1 = -12 (table 5, appendix C) is in `"paper-300k"`
            and `table5`. Both are on the scale of the paper's reward model (FsfairX-LLaMA3-RM-v0.1);
            another reward model needs its own.
        column (`str`, *optional*, defaults to `"instruct_reward"`): the reward column read, as
            `add_rewards` / `reward_diff` write it (the published `instruct_reward`).
    """
    return _greater(column, threshold)


def positive_reward_difference(threshold: float = 0, column: str = "reward_difference") -> RowFilter:
    """Keep rows whose reward difference (instruct - base) is strictly above `threshold`.

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch. A None or NaN difference fails.

    Args:
        threshold (`float`, *optional*, defaults to `0`): the difference a row must exceed (strict `>`):
            the paper's tau2 = 0 (table 5, appendix C; `"paper-300k"`, `"air-filter"`, `"pro-filter4"`),
            i.e. the response scores better than the base model's URIAL answer.
        column (`str`, *optional*, defaults to `"reward_difference"`): the column read, as `reward_diff`
            writes it (`instruct_reward - base_reward`, the published `reward_difference`).
    """
    return _greater(column, threshold)


def not_ending_with(suffix: str = ":", column: str = "instruction") -> RowFilter:
    """Drop rows whose text ends with `suffix` after trailing spaces (incomplete prompts); None is dropped.

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch.

    Args:
        suffix (`str`, *optional*, defaults to `":"`): the ending that drops a row, compared after
            trailing whitespace is stripped, case-sensitively. ":" is the release's rule (every `PAPER`
            recipe of the dataset cards): an instruction ending with a colon announces content it does
            not contain.
        column (`str`, *optional*, defaults to `"instruction"`): the text column read; a None or
            non-string value is dropped.
    """
    return RowFilter(
        f"{column} not ending with {suffix!r}",
        lambda row: isinstance(row[column], str) and not row[column].rstrip().endswith(suffix),
        (column,),
    )


def max_newlines(
    limit: int = 5, except_task: str | None = CODING_TASK, column: str = "instruction"
) -> RowFilter:
    """Keep rows whose text has fewer than `limit` newlines, or whose `task_category` is `except_task`.

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column` (and
    `task_category` unless `except_task` is None); Output: a bool, or a list of bools for a batch.
    A None or non-string text is dropped unless exempt.

    Args:
        limit (`int`, *optional*, defaults to `5`): the kept rows have fewer than this many newline
            characters (strict `<`): 5 is the rule of the later Pro releases (`PAPER["llama3.1-pro-300k"]`).
        except_task (`str`, *optional*, defaults to `"Coding & Debugging"`): the `task_category` that
            is kept whatever its newlines (code needs lines), compared exactly as `tag_with_llm` writes
            it. None = no exemption, and `task_category` is not read.
        column (`str`, *optional*, defaults to `"instruction"`): the text column whose newlines are
            counted.
    """

    def rule(row):
        if except_task is not None and row["task_category"] == except_task:
            return True
        return isinstance(row[column], str) and row[column].count("\n") < limit

    columns = (column, "task_category") if except_task is not None else (column,)
    exempt = f" unless {except_task}" if except_task is not None else ""
    return RowFilter(f"{column} newlines < {limit}{exempt}", rule, columns)


def language_is(*codes: str, column: str = "language") -> RowFilter:
    """Keep rows tagged with one of the ISO 639-1 `codes` (e.g. "EN").

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch.

    Args:
        codes (`str`): the language codes kept, given as positional arguments (`language_is("EN", "ZH")`):
            ISO 639-1, upper-cased before the comparison; the row's value must match exactly, as
            `tag_language` writes it (upper case, the published `language`). No codes keeps no row.
        column (`str`, *optional*, defaults to `"language"`): the language column read (keyword only).
    """
    wanted = {c.upper() for c in codes}
    return RowFilter(f"{column} in {sorted(wanted)}", lambda row: row[column] in wanted, (column,))


def min_distance(threshold: float = 0.0, column: str = "min_neighbor_distance") -> RowFilter:
    """Keep rows whose nearest other instruction is strictly farther than `threshold` (paper
    table 5: "> 0", which drops every row that has an exact duplicate, both copies).

    Returns a `RowFilter` for `Dataset.filter`. Input: a row or batch with `column`; Output: a bool,
    or a list of bools for a batch. A None or NaN distance (a single-row dataset) fails.

    Args:
        threshold (`float`, *optional*, defaults to `0.0`): the distance a row must exceed (strict `>`),
            in `min_neighbor_distance`'s units (FAISS L2 on unit vectors, 2 - 2*cos). 0 is every table 5
            configuration's rule (paper appendix C). To keep one row per near-duplicate group instead,
            use `dedup` / `is_unique`.
        column (`str`, *optional*, defaults to `"min_neighbor_distance"`): the distance column read, as
            the `min_neighbor_distance` stage writes it (the published column of that name).
    """
    return _greater(column, threshold)


is_unique = RowFilter(
    "unique (min_similar_uuid is null or own uuid)",
    lambda row: row["min_similar_uuid"] is None or row["min_similar_uuid"] == row["uuid"],
    ("min_similar_uuid", "uuid"),
)
