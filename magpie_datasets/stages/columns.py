"""What a stage reads: its columns under their current names or a published variant's, and the
one error, naming the stage that writes a column, when one is missing.

Every stage module calls `require_reads(batch, "<its name>")`. The stages' entries come from
`stages.table`, which hands them here (`know`) when it is imported, and the package imports it:
this module imports no stage, so the table can import every stage without a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from datasets import Dataset

from ..schema import MissingColumnError, require_columns
from .entry import Stage

_BY_NAME: dict[str, Stage] = {}  # every stage by name and alias, in pipeline order (`know`)


def know(stages: Sequence[Stage]) -> None:
    """Take the stage table's entries (`stages.table` calls it once, when imported)."""
    _BY_NAME.update({name: s for s in stages for name in (s.name, *s.aliases)})


def stage(name: str) -> Stage:
    """The table entry of `name` (or of an alias such as "add_responses")."""
    if name not in _BY_NAME:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(sorted({s.name for s in _BY_NAME.values()}))}")
    return _BY_NAME[name]


def writer_of(column: str) -> str:
    """The stage that writes `column` (the first in pipeline order), for missing-column messages."""
    if column == "uuid":
        return "magpie.empty(n) (or add_magpie_instructions)"
    for s in _BY_NAME.values():
        if s.writes_column(column):
            return s.name
    return "the stage that writes it"


def require_reads(batch: Any, name: str, columns: tuple[str, ...] | None = None) -> Any:
    """`batch` as stage `name` reads it: under the current column names where it is a published
    variant (see `normalize`), else itself. Raise one `MissingColumnError` naming the writer (and
    the variants' spellings) when a column it reads stays missing.

    `batch` is a batch or row (a published column is then also readable under its current
    name, the batch itself unchanged) or a whole `Dataset` (renamed with `rename_column`:
    metadata only). `columns` replaces the table's `reads` where the stage was told to read
    another column.

    >>> view = require_reads({"input": ["Hi?"], "output": ["Hello!"]}, "tag_safety")
    >>> view["instruction"], view["response"], sorted(view)
    (['Hi?'], ['Hello!'], ['input', 'instruction', 'output', 'response'])
    """
    needed = columns or stage(name).reads
    present = batch.column_names if isinstance(batch, Dataset) else batch.keys()
    missing = [c for c in needed if c not in present]
    if not missing:  # the common case stays one membership test per column: filters call this per row
        return batch
    found = renames(present)  # all of them: a stage may read more than its `reads`
    unknown = [c for c in missing if c not in found]
    if unknown:  # writers are looked up only for the message
        try:
            require_columns(dict.fromkeys(present), {c: writer_of(c) for c in unknown}, name)
        except MissingColumnError as err:
            spellings = spellings_of(unknown[0])
            note = f" Published variants spell it {' or '.join(spellings)}." if spellings else ""
            raise MissingColumnError(str(err) + note) from None
    if isinstance(batch, Dataset):
        return batch.rename_columns({old: new for new, old in found.items()})
    return _Renamed(batch, found)


class _Renamed(Mapping):
    """A batch whose published columns are also readable under their current names (no copy)."""

    def __init__(self, batch: Mapping[str, Any], aliases: Mapping[str, str]):
        self._batch, self._aliases = batch, dict(aliases)

    def __getitem__(self, column: str) -> Any:
        return self._batch[self._aliases.get(column, column)]

    def __iter__(self):
        yield from self._batch
        yield from self._aliases

    def __len__(self) -> int:
        return len(self._batch) + len(self._aliases)



# --- published variants ----------------------------------------------------------------------

CONFIGS = "gen_input_configs"


@dataclass(frozen=True)
class Variant:
    """One published schema: its older column names and moved `gen_input_configs` fields.

    `columns` and `config_fields` are (published name, current name) pairs; `releases` says
    which published datasets use it.
    """

    name: str
    releases: str
    columns: tuple[tuple[str, str], ...] = ()
    config_fields: tuple[tuple[str, str], ...] = ()


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "input-output", "the first releases, e.g. Llama-3-Magpie-Air-3M-v0.1",
        columns=(("input", "instruction"), ("output", "response"), ("gen_input_config", CONFIGS),
                 ("input_length", "instruction_length"), ("output_length", "response_length")),
    ),
    # gen_input_configs.extract_input holds the text step 1 was sampled from: the pre-query
    # template, under the release's first name for it (paper §2).
    Variant(
        "extract-input", "the Phi-3 and Qwen2 sets and Magpie-Reasoning-150K",
        config_fields=(("extract_input", "pre_query_template"),),
    ),
    # No `uuid`: the row's own id is its conversation id (and a near-duplicate's, the first
    # similar row's), as in the authors' filter notebook.
    Variant("conversation-id", "Magpie-Reasoning-V2 and the authors' raw 1M files",
            columns=(("conversation_id", "uuid"), ("min_similar_conversation_id", "min_similar_uuid"))),
    # `responses`, `rewards_armorm` ([{score}]) and `chosen` / `rejected` (whole conversations of
    # {role, content}) are already the names and shapes of the preference stages; the prompt
    # length and the two-field gen_input_configs {temperature, top_p} are what differs.
    Variant("dpo", "the *-DPO-* sets and the release's data_po/ examples",
            columns=(("input_length", "instruction_length"),)),
)

def renames(columns: Iterable[str]) -> dict[str, str]:
    """{current name: published name} for each variant column present whose current name is not.

    >>> renames(["input", "output", "instruct_reward"])
    {'instruction': 'input', 'response': 'output'}
    >>> renames(["instruction", "input"])  # the current column wins: nothing to rename
    {}
    """
    present = set(columns)
    found: dict[str, str] = {}
    for variant in VARIANTS:
        for old, new in variant.columns:
            if old in present and new not in present:
                found.setdefault(new, old)
    return found


def variants_of(columns: Iterable[str], config_fields: Iterable[str] = ()) -> list[str]:
    """Names of the variants whose published columns (or `gen_input_configs` fields) are present.

    >>> variants_of(["conversation_id", "instruction"]), variants_of(["uuid"], ["extract_input"])
    (['conversation-id'], ['extract-input'])
    """
    present, fields = set(columns), set(config_fields)
    return [
        v.name for v in VARIANTS
        if any(old in present for old, _ in v.columns) or any(old in fields for old, _ in v.config_fields)
    ]


def spellings_of(column: str) -> list[str]:
    """How the published variants spell the current `column`, e.g. for a missing-column message.

    >>> spellings_of("instruction"), spellings_of("language")
    (["'input' (the first releases, e.g. Llama-3-Magpie-Air-3M-v0.1)"], [])
    """
    return [f"{old!r} ({v.releases})" for v in VARIANTS for old, new in v.columns if new == column]
