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

from .paper import (
    apply_recipe,
    dedup,
    FilterSetup,
    longest,
    PAPER,
    PAPER_LONGEST,
    STAGES,
    TABLE5,
    table5,
    TAU1,
    TAU2,
)
from .row_filters import (
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

__all__ = [
    "all_of",
    "apply_recipe",
    "CODING_TASK",
    "dedup",
    "FilterSetup",
    "is_unique",
    "language_is",
    "longest",
    "max_newlines",
    "min_difficulty",
    "min_distance",
    "min_quality",
    "min_reward",
    "not_ending_with",
    "PAPER",
    "PAPER_LONGEST",
    "positive_reward_difference",
    "RowFilter",
    "STAGES",
    "TABLE5",
    "table5",
    "TAU1",
    "TAU2",
]
