"""Filters on the Magpie tags: predicates for `Dataset.filter`, paper presets, dedup, longest-k.

    ds = ds.filter(filters.min_quality("good") & filters.min_reward(-10) & filters.is_unique)
    ds = ds.filter(filters.PAPER["pro-300k"])      # the row rules of a published recipe ...
    ds = filters.longest(ds, 300_000)               # ... then its whole-dataset step
    ds = filters.apply_recipe(ds, "pro-300k")       # both at once
    ds = filters.apply_recipe(ds, "pro-filter2", tau1=-12)   # a configuration of the paper's table 5

A predicate is a `RowFilter`: called on one row (a dict of values, what `ds.filter(f)` passes
by default) it returns a bool; called on a batch (a dict of lists, `ds.filter(f, batched=True)`,
faster) it returns a list of bools. It tells the two apart by the type of the first column it
reads: every column a filter reads holds scalars (str, float, None), so a list means a batch.
A missing column raises one error naming the stage that writes it; a published variant's
column (e.g. Air-3M v0.1's `input`) is read under its current name (see `normalize`).

`PAPER` holds the row rules of the published releases (their dataset cards and notebook) and
the seven configurations of the paper's table 5 (appendix C: "air-filter", "pro-filter1" ...
"pro-filter6", built by `table5` with thresholds tau1 = -12 on the reward and tau2 = 0 on the
reward difference as parameters); `apply_recipe` adds each one's whole-dataset step.

Labels compare by their order in `schema` (worst to best), case and surrounding spaces ignored;
a missing or unknown label fails every threshold. A missing (None/NaN) reward fails too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from datasets import Dataset, concatenate_datasets

from ..schema import DIFFICULTY_LABELS as DIFFICULTY
from ..schema import QUALITY_LABELS as QUALITY
from ..version import code_version
from .columns import require_reads
from .entry import Stage

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


def _recipe(name: str, *filters: RowFilter) -> RowFilter:
    return all_of(*filters, name=name)


# Row rules of the authors' filtered releases (paper table 5 and the dataset
# cards). Each recipe then keeps the PAPER_LONGEST[name] rows with the longest responses,
# shuffled with seed 42: a whole-dataset step, see `longest` and `apply_recipe`.
PAPER: dict[str, RowFilter] = {
    # Magpie-Air-300K-Filtered (Llama-3-8B) and Magpie-Pro-300K-Filtered (Llama-3-70B); the
    # authors' notebook: quality in {good, excellent}, instruct_reward > -10, no trailing ":",
    # min_similar id null or own id.
    "air-300k": _recipe("air-300k", min_quality("good"), min_reward(-10), not_ending_with(":"), is_unique),
    "pro-300k": _recipe("pro-300k", min_quality("good"), min_reward(-10), not_ending_with(":"), is_unique),
    # The fuller rule set of later Pro releases: adds a difficulty floor and drops
    # prompts with 5 or more newlines unless they are coding tasks.
    "llama3.1-pro-300k": _recipe(
        "llama3.1-pro-300k", min_quality("good"), min_difficulty("easy"), min_reward(-10),
        not_ending_with(":"), is_unique, max_newlines(5, except_task=CODING_TASK),
    ),
    # The paper's reward-difference recipe: quality >= average, difficulty >= easy,
    # reward > tau1 = -12, reward - base-model reward > tau2 = 0.
    "paper-300k": _recipe(
        "paper-300k", min_quality("average"), min_difficulty("easy"), min_reward(-12),
        positive_reward_difference(0), not_ending_with(":"), is_unique,
    ),
}
PAPER_LONGEST: dict[str, int | None] = {name: 300_000 for name in PAPER}  # None: every row that passes


# --- the paper's table 5 (appendix C): its filter configurations ------------------------------

TAU1 = -12.0  # reward threshold of table 5 (paper appendix C: "we empirically set tau1 = -12")
TAU2 = 0.0  # reward-difference threshold of table 5 ("tau2 = 0")


@dataclass(frozen=True)
class FilterSetup:
    """One row of the paper's table 5: which thresholds apply, then how many longest responses.

    Every setup also needs `min_neighbor_distance > 0`. `reward`: keep reward > tau1;
    `reward_difference`: keep reward - base reward > tau2; `k`: the k longest responses
    (None: every row that passes); `half_easy`: k/2 of them "easy", k/2 harder.
    """

    source: str
    convs: str
    quality: str | None = None
    difficulty: str | None = None
    reward: bool = False
    reward_difference: bool = False
    k: int | None = 300_000
    half_easy: bool = False


TABLE5: dict[str, FilterSetup] = {
    "air-filter": FilterSetup("Magpie-Air", "300K", quality="good", difficulty="medium", reward_difference=True),
    "pro-filter1": FilterSetup("Magpie-Pro", "300K", quality="average", reward=True),
    "pro-filter2": FilterSetup("Magpie-Pro", "300K", quality="good", difficulty="easy", reward=True),
    "pro-filter3": FilterSetup("Magpie-Pro", "300K", reward=True),
    "pro-filter4": FilterSetup("Magpie-Pro", "300K", quality="good", difficulty="easy", reward_difference=True),
    # no longest-k step: the 338K rows that pass
    "pro-filter5": FilterSetup("Magpie-Pro", "338K", quality="good", difficulty="easy", reward=True, k=None),
    # "50% easy + 50% > easy": the 100K longest easy rows and the 100K longest harder ones
    "pro-filter6": FilterSetup("Magpie-Pro", "200K", difficulty="easy", reward=True, k=200_000, half_easy=True),
}


def table5(name: str, tau1: float = TAU1, tau2: float = TAU2) -> RowFilter:
    """The row rules of table 5's configuration `name` (see `TABLE5`), thresholds as parameters.

    >>> keep = table5("pro-filter2")
    >>> keep.name
    'pro-filter2'
    >>> keep({"input_quality": "good", "difficulty": "easy", "min_neighbor_distance": 0.3, "instruct_reward": -11.0})
    True
    >>> table5("pro-filter2", tau1=-10)({"input_quality": "good", "difficulty": "easy",
    ...                                  "min_neighbor_distance": 0.3, "instruct_reward": -11.0})
    False
    """
    if name not in TABLE5:
        raise ValueError(f"Unknown table 5 configuration {name!r}: choose one of {', '.join(TABLE5)}")
    setup = TABLE5[name]
    rules = [min_quality(setup.quality)] if setup.quality else []
    rules += [min_difficulty(setup.difficulty)] if setup.difficulty else []
    rules.append(min_distance(0.0))
    rules += [min_reward(tau1)] if setup.reward else []
    rules += [positive_reward_difference(tau2)] if setup.reward_difference else []
    return _recipe(name, *rules)


# Table 5 beside the dataset-card recipes, at the paper's thresholds (`apply_recipe` takes others).
PAPER.update({name: table5(name) for name in TABLE5})
PAPER_LONGEST.update({name: setup.k for name, setup in TABLE5.items()})


def dedup(ds: Dataset) -> Dataset:
    """Keep rows whose `min_similar_uuid` is null or their own uuid (one row per duplicate group).

    Input: a `Dataset` with `min_similar_uuid` and `uuid` (from `min_neighbor_distance`, or the
    published columns); Output: the kept rows, in order. No options: the duplicate groups are the
    ones `min_neighbor_distance`'s `threshold` made (the release's "unique" rule, `is_unique`).
    """
    ds = require_reads(ds, "dedup")
    return ds.filter(is_unique, batched=True)


def longest(ds: Dataset, k: int, seed: int = 42, column: str = "response_length") -> Dataset:
    """The `k` rows with the largest `column` (ties in dataset order), shuffled with `seed`.

    Input: a `Dataset` with `column`; Output: at most `k` of its rows, shuffled. The last step of
    every `PAPER` recipe but "pro-filter5" (see `apply_recipe`).

    Args:
        k (`int`): how many rows to keep (all of them when the dataset has fewer); must be >= 0 (else
            `ValueError`). The release's filtered sets keep 300,000 (`PAPER_LONGEST`).
        seed (`int`, *optional*, defaults to `42`): the seed of the final `Dataset.shuffle`; 42 is the
            release's. It changes the order of the kept rows, not which rows are kept.
        column (`str`, *optional*, defaults to `"response_length"`): the column ranked, largest first:
            the response length in characters that `generate_responses` writes (published column of
            that name).
    """
    ds = require_reads(ds, "longest", (column,))
    if k < 0:
        raise ValueError(f"longest needs k >= 0, got {k}")
    top = ds.sort(column, reverse=True).select(range(min(k, len(ds))))
    return top.shuffle(seed=seed)


def apply_recipe(
    ds: Dataset, name: str, k: int | None = None, seed: int = 42, tau1: float = TAU1, tau2: float = TAU2
) -> Dataset:
    """`PAPER[name]` row rules, then the `k` (default: the recipe's size) longest responses, shuffled.

    Input: a `Dataset` with the columns the recipe reads (tags, rewards, `min_neighbor_distance`
    columns, `response_length`); Output: the kept rows, shuffled (in dataset order when no longest-k
    step runs). "pro-filter6" takes k/2 of the longest among "easy" rows and k/2 among harder ones
    (fewer where a half has fewer rows).

    Args:
        name (`str`): the recipe, a key of `PAPER`: the release's filtered sets ("air-300k",
            "pro-300k", "llama3.1-pro-300k", "paper-300k") or a configuration of the paper's table 5
            (appendix C: "air-filter", "pro-filter1" ... "pro-filter6"). Another is a `ValueError`.
        k (`int`, *optional*, defaults to `None`): how many rows with the longest `response_length` to
            keep after the row rules. None = the recipe's size in `PAPER_LONGEST` (300,000; 200,000 for
            "pro-filter6"; for "pro-filter5" every row that passes, as the paper's 338K).
        seed (`int`, *optional*, defaults to `42`): the seed of the final shuffle (the release's 42); it
            orders the kept rows and does not change which are kept. Unused when no longest-k step runs
            ("pro-filter5" without `k`).
        tau1 (`float`, *optional*, defaults to `-12.0`): the reward threshold (keep `instruct_reward` >
            tau1) of a table 5 configuration; -12 is the paper's tau1 (appendix C). Ignored by the
            dataset-card recipes, whose thresholds are fixed (-10; -12 in "paper-300k"), and by
            configurations without a reward rule ("air-filter", "pro-filter4").
        tau2 (`float`, *optional*, defaults to `0.0`): the reward-difference threshold (keep
            `reward_difference` > tau2) of a table 5 configuration; 0 is the paper's tau2. Ignored by
            the dataset-card recipes (fixed 0 in "paper-300k") and by configurations without a
            reward-difference rule (all but "air-filter" and "pro-filter4").
    """
    if name not in PAPER:
        raise ValueError(f"Unknown recipe {name!r}: choose one of {', '.join(PAPER)}")
    rules = table5(name, tau1, tau2) if name in TABLE5 else PAPER[name]
    ds = require_reads(ds, f"recipe {name}", rules.columns)
    kept = ds.filter(rules, batched=True)
    size = PAPER_LONGEST[name] if k is None else k
    if name in TABLE5 and TABLE5[name].half_easy:
        if size is None:  # the half-easy setups all have a size
            raise ValueError(f"recipe {name!r} takes k/2 easy and k/2 harder rows: it needs a size k")
        return _half_easy(kept, size, seed)
    return kept if size is None else longest(kept, size, seed=seed)


_EASY = DIFFICULTY.index("easy")
_is_easy = RowFilter("difficulty == easy", lambda row: _rank(DIFFICULTY, row["difficulty"]) == _EASY, ("difficulty",))
_is_harder = RowFilter("difficulty > easy", lambda row: _rank(DIFFICULTY, row["difficulty"]) > _EASY, ("difficulty",))


def _half_easy(ds: Dataset, k: int, seed: int) -> Dataset:
    easy = longest(ds.filter(_is_easy, batched=True), k // 2, seed=seed)
    harder = longest(ds.filter(_is_harder, batched=True), k - k // 2, seed=seed)
    return concatenate_datasets([easy, harder]).shuffle(seed=seed)


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("min_quality", min_quality, "filter", "keep input quality >= a label",
          reads=("input_quality",)),
    Stage("min_difficulty", min_difficulty, "filter", "keep difficulty >= a label",
          reads=("difficulty",)),
    Stage("min_reward", min_reward, "filter", "keep reward > a threshold", reads=("instruct_reward",)),
    Stage("positive_reward_difference", positive_reward_difference, "filter",
          "keep reward difference > a threshold", reads=("reward_difference",)),
    Stage("not_ending_with", not_ending_with, "filter", "drop text ending with a suffix",
          reads=("instruction",)),
    Stage("max_newlines", max_newlines, "filter", "drop text with many newlines (unless coding)",
          reads=("instruction", "task_category")),
    Stage("min_distance", min_distance, "filter",
          "keep rows farther than a threshold from their nearest neighbour", reads=("min_neighbor_distance",)),
    Stage("language_is", language_is, "filter", "keep rows in the given languages",
          reads=("language",)),
    Stage("dedup", dedup, "dataset", "one row per duplicate group",
          reads=("min_similar_uuid", "uuid")),
    Stage("longest", longest, "dataset", "the k rows with the longest responses, shuffled",
          reads=("response_length",)),
    Stage("apply_recipe", apply_recipe, "dataset", "a published release's row rules, then longest-k",
          reads=("input_quality", "instruct_reward", "instruction", "min_similar_uuid", "uuid", "response_length")),
)
