"""The paper's and the releases' filter recipes (`PAPER`, table 5) and the whole-dataset steps: `dedup`,
`longest`, `apply_recipe`; and the filters' entries of the stage table."""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Dataset, concatenate_datasets

from ...schema import DIFFICULTY_LABELS as DIFFICULTY
from ..columns import require_reads
from ..entry import Stage
from .row_filters import (
    _rank,
    all_of,
    CODING_TASK,
    is_unique,
    language_is,
    max_newlines,
    min_difficulty,
    min_distance,
    min_quality,
    min_reward,
    not_ending_with,
    positive_reward_difference,
    RowFilter,
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
