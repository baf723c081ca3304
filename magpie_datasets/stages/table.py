"""The stage table: every stage, what it reads and writes, the models it loads, its card charts.

    >>> stage("tag_language").reads, list(stage("tag_language").writes)
    (('instruction',), ['language', 'language_configs'])
    >>> writer_of("input_quality"), writer_of("instruction_3"), writer_of("rewards_armorm")
    ('tag_with_llm', 'add_turns', 'add_rewards')

Recipes, the package's exports, the filters' missing-column messages, the cards' statistics and
plots, the Ray runner and the README's stage table all read it. Adding a stage is one module
(its columns' `Features` in `schema/features.py`) and one entry here. `function` is an import path,
resolved on first use, so every layer, the stage modules included, can read the table.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from datasets import Dataset, Features

from .. import schema
from ..engines.embedded import EMBEDDED_CHAT_MODEL
from ..schema import MissingColumnError, require_columns

KINDS = ("source", "map", "filter", "dataset")


@dataclass(frozen=True)
class Model:
    """A model a stage loads: the keyword that names it and what it does.

    `engine` / `options` name the keywords with its engine and load options (`engine=None`: a
    transformers model class of its own, e.g. a reward model, with options only). With
    `from_rows`, `model=None` means "the model named in each row's `model` column".
    `none_loads`: the model an engine loads for `None` (`load_engine`'s embedded default); None
    where the stage picks its own default (reward_diff's embedded base model).
    """

    argument: str
    role: str
    engine: str | None = "engine"
    options: str = "engine_options"
    from_rows: bool = False
    none_loads: str | None = None


@dataclass(frozen=True)
class Chart:
    """A column the card summarises: "bar" (label shares, `order` first) or "histogram" (numbers)."""

    column: str
    title: str
    kind: str
    order: tuple[str, ...] | None = None
    plot: bool = True  # False: a line in the card's summary, no figure


@dataclass(frozen=True, eq=False)
class Stage:
    """One stage: `function` ("module:name") of `kind` ("source", "map", "filter" or "dataset")."""

    name: str
    function_path: str
    kind: str
    summary: str
    reads: tuple[str, ...] = ()
    writes: Features = field(default_factory=Features)
    writes_patterns: tuple[str, ...] = ()  # columns named by an argument, e.g. "instruction_*"
    models: tuple[Model, ...] = ()
    charts: tuple[Chart, ...] = ()
    aliases: tuple[str, ...] = ()
    passes_keywords_to: str | None = None  # the stage that takes this one's other keyword arguments

    @property
    def function(self) -> Callable[..., Any]:
        module, _, name = self.function_path.partition(":")
        return getattr(importlib.import_module(module), name)

    def writes_column(self, column: str) -> bool:
        return column in self.writes or any(fnmatch.fnmatchcase(column, p) for p in self.writes_patterns)


_P = "magpie_datasets.stages."
_CHAT = Model("model", "generator", none_loads=EMBEDDED_CHAT_MODEL)
_RESPONDER = Model("model", "responder", from_rows=True, none_loads=EMBEDDED_CHAT_MODEL)
_FOLLOW_UP = Model("model", "generator", from_rows=True, none_loads=EMBEDDED_CHAT_MODEL)
_TAGGER = Model("model", "tagger", none_loads=EMBEDDED_CHAT_MODEL)
_GUARD = Model("model", "guard", none_loads=EMBEDDED_CHAT_MODEL)

STAGES: tuple[Stage, ...] = (
    Stage("empty", _P + "generate:empty", "source", "n placeholder rows with a stable `uuid` each",
          writes=Features({"uuid": schema.Value("string")})),
    Stage("add_magpie_instructions", _P + "generate:add_magpie_instructions", "map",
          "step 1: a user instruction from the pre-query template alone",
          reads=("uuid",), writes=schema.INSTRUCTION_FEATURES, models=(_CHAT,)),
    Stage("add_controlled_instructions", _P + "control:add_controlled_instructions", "map",
          "step 1 under a system prompt drawn per row from a domain / language mix",
          reads=("uuid",), writes=schema.CONTROL_FEATURES, models=(_CHAT,),
          passes_keywords_to="add_magpie_instructions"),
    Stage("generate_responses", _P + "generate:generate_responses", "map",
          "step 2: the answer through the normal chat template",
          reads=("instruction",), writes=schema.RESPONSE_FEATURES, models=(_RESPONDER,),
          charts=(Chart("instruction_length", "Instruction length (characters)", "histogram"),
                  Chart("response_length", "Response length (characters)", "histogram")),
          aliases=("add_responses",)),
    Stage("split_reasoning", _P + "reasoning:split_reasoning", "map",
          "a reasoning model's thinking (`<think>` or the template's markers) apart from its answer",
          reads=("response",), writes=schema.REASONING_FEATURES),
    Stage("add_turns", _P + "multiturn:add_turns", "map",
          "turns 2..k: follow-up questions and their answers",
          reads=("instruction", "response"), writes=schema.turn_features(2),
          writes_patterns=("instruction_*", "response_*"), models=(_FOLLOW_UP,)),
    Stage("add_response_samples", _P + "preference:add_response_samples", "map",
          "k sampled answers per instruction, for preference pairs",
          reads=("instruction",), writes=schema.SAMPLE_FEATURES, models=(_RESPONDER,)),
    Stage("tag_with_llm", _P + "tags:tag_with_llm", "map",
          "task category, input quality and difficulty from an LLM judge",
          reads=("instruction",), writes=schema.TAG_FEATURES, models=(_TAGGER,),
          charts=(Chart("task_category", "Task category", "bar", schema.TASK_CATEGORIES),
                  Chart("input_quality", "Input quality", "bar", schema.QUALITY_LABELS),
                  Chart("difficulty", "Difficulty", "bar", schema.DIFFICULTY_LABELS))),
    Stage("tag_language", _P + "language:tag_language", "map", "the instruction's language (ISO 639-1)",
          reads=("instruction",), writes=schema.LANGUAGE_FEATURES,
          charts=(Chart("language", "Language", "bar"),)),
    Stage("tag_safety", _P + "safety:tag_safety", "map", "a Llama-Guard verdict on the conversation",
          reads=("instruction", "response"), writes=schema.SAFETY_FEATURES, models=(_GUARD,),
          charts=(Chart("llama_guard_2", "Safety", "bar", plot=False),)),
    Stage("add_rewards", _P + "rewards:add_rewards", "map", "a reward model's score of each response",
          reads=("instruction", "response"), writes=schema.REWARD_FEATURES, writes_patterns=("rewards_*",),
          models=(Model("model", "reward", engine=None),),
          charts=(Chart("instruct_reward", "Reward of the response", "histogram"),)),
    Stage("reward_diff", _P + "rewards:reward_diff", "map",
          "reward of the response minus reward of a base model's answer",
          reads=("instruction", "response"), writes=Features({**schema.REWARD_FEATURES, **schema.BASE_FEATURES}),
          models=(Model("model", "reward", engine=None),
                  Model("base_model", "base", engine="base_engine", options="base_engine_options")),
          charts=(Chart("base_reward", "Reward of the base model's answer", "histogram"),
                  Chart("reward_difference", "Reward difference (instruct - base)", "histogram"))),
    Stage("min_neighbor_distance", _P + "similarity:min_neighbor_distance", "dataset",
          "distance to the nearest other instruction (FAISS), duplicate groups",
          reads=("instruction", "uuid"), writes=schema.NEIGHBOR_FEATURES,
          models=(Model("model", "embedder", engine=None),),
          charts=(Chart("min_neighbor_distance", "Distance to the nearest other instruction", "histogram"),
                  Chart("repeat_count", "Rows closer than the threshold", "histogram", plot=False))),
    Stage("contamination", _P + "contamination:contamination", "dataset",
          "cosine similarity to the closest benchmark question (FAISS), for a contamination check",
          reads=("instruction",), writes=schema.CONTAMINATION_FEATURES,
          models=(Model("model", "embedder", engine=None),),
          charts=(Chart("contamination_similarity", "Similarity to the closest benchmark question", "histogram"),)),
    Stage("to_preference_pairs", _P + "preference:to_preference_pairs", "map",
          "chosen = best-scored response, rejected = worst", reads=("instruction", "responses", "rewards_*"),
          writes=schema.PAIR_FEATURES),
    Stage("to_messages", _P + "formats:to_messages", "map",
          "TRL's conversational SFT format (from `conversations` where a row has them)",
          reads=("instruction", "response"), writes=schema.SFT_FEATURES),
    Stage("to_sharegpt", _P + "formats:to_sharegpt", "map", "the published ShareGPT `conversations`",
          reads=("instruction", "response"), writes=schema.SHAREGPT_FEATURES),
    Stage("to_preference", _P + "formats:to_preference", "map", "TRL's DPO format (prompt / chosen / rejected)",
          reads=("chosen", "rejected"), writes=schema.DPO_FEATURES),
    Stage("normalize", _P + "normalize:normalize", "map",
          "a published variant's columns under the current names (Air-3M v0.1, Phi-3, Reasoning-V2, DPO)",
          writes=schema.NORMALIZED_FEATURES),
    Stage("min_quality", _P + "filters:min_quality", "filter", "keep input quality >= a label",
          reads=("input_quality",)),
    Stage("min_difficulty", _P + "filters:min_difficulty", "filter", "keep difficulty >= a label",
          reads=("difficulty",)),
    Stage("min_reward", _P + "filters:min_reward", "filter", "keep reward > a threshold", reads=("instruct_reward",)),
    Stage("positive_reward_difference", _P + "filters:positive_reward_difference", "filter",
          "keep reward difference > a threshold", reads=("reward_difference",)),
    Stage("not_ending_with", _P + "filters:not_ending_with", "filter", "drop text ending with a suffix",
          reads=("instruction",)),
    Stage("max_newlines", _P + "filters:max_newlines", "filter", "drop text with many newlines (unless coding)",
          reads=("instruction", "task_category")),
    Stage("min_distance", _P + "filters:min_distance", "filter",
          "keep rows farther than a threshold from their nearest neighbour", reads=("min_neighbor_distance",)),
    Stage("language_is", _P + "filters:language_is", "filter", "keep rows in the given languages",
          reads=("language",)),
    Stage("dedup", _P + "filters:dedup", "dataset", "one row per duplicate group",
          reads=("min_similar_uuid", "uuid")),
    Stage("longest", _P + "filters:longest", "dataset", "the k rows with the longest responses, shuffled",
          reads=("response_length",)),
    Stage("apply_recipe", _P + "filters:apply_recipe", "dataset", "a published release's row rules, then longest-k",
          reads=("input_quality", "instruct_reward", "instruction", "min_similar_uuid", "uuid", "response_length")),
)

_BY_NAME = {name: s for s in STAGES for name in (s.name, *s.aliases)}


def stage(name: str) -> Stage:
    """The table entry of `name` (or of an alias such as "add_responses")."""
    if name not in _BY_NAME:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(sorted(s.name for s in STAGES))}")
    return _BY_NAME[name]


def keywords(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters stage `name` takes after its batch / dataset, including those it
    passes on (`add_controlled_instructions` hands its step-1 keywords to `add_magpie_instructions`)."""
    entry = stage(name)
    params = dict(list(inspect.signature(entry.function).parameters.items())[1:])
    if entry.passes_keywords_to:
        params = {**keywords(entry.passes_keywords_to), **params}
    return params


def defaults(name: str) -> dict[str, Any]:
    """The default of each keyword stage `name` takes (see `keywords`), by name.

    >>> defaults("tag_safety")["model"]
    'meta-llama/Meta-Llama-Guard-2-8B'
    """
    return {p.name: p.default for p in keywords(name).values() if p.default is not inspect.Parameter.empty}


def stage_of(function: Callable[..., Any]) -> Stage | None:
    """The table entry whose function is `function`, or None for a function of the user's."""
    return next((s for s in STAGES if s.function is function), None)


def writer_of(column: str) -> str:
    """The stage that writes `column` (the first in pipeline order), for missing-column messages."""
    if column == "uuid":
        return "magpie.empty(n) (or add_magpie_instructions)"
    for s in STAGES:
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
    variants = importlib.import_module(_P + "normalize")
    found = variants.renames(present)  # all of them: a stage may read more than its `reads`
    unknown = [c for c in missing if c not in found]
    if unknown:  # writers are looked up only for the message
        try:
            require_columns(dict.fromkeys(present), {c: writer_of(c) for c in unknown}, name)
        except MissingColumnError as err:
            spellings = variants.spellings_of(unknown[0])
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


def models_of(name: str, kwargs: Mapping[str, Any]) -> tuple[tuple, ...]:
    """The models stage `name` loads with `kwargs`: one (loader, model, engine, options) per model,
    defaults filled from its signature; () for a stage that loads none. The loader is "chat" for
    every model run by an engine (generator, tagger, guard, base model share one cache), else the
    role ("reward", "embedder"): two stages with equal tuples use the same loaded models.

    >>> models_of("tag_safety", {"engine": "vllm"})
    (('chat', 'meta-llama/Meta-Llama-Guard-2-8B', 'vllm', None),)
    """
    entry = stage(name)
    if not entry.models:
        return ()
    given = {**defaults(name), **kwargs}
    return tuple(
        (m.role if m.engine is None else "chat", given.get(m.argument),
         given.get(m.engine) if m.engine else None, given.get(m.options) or None)
        for m in entry.models
    )


def stage_models(name: str, kwargs: Mapping[str, Any], ds: Dataset | None = None) -> tuple[tuple, ...]:
    """The models stage `name` will load with `kwargs` over the rows `ds`, as concrete
    (loader, model, engine, options) tuples: like `models_of`, with a chat model `None` named as
    the engine loads it (the embedded SmolLM2's id), a model taken from the rows (`from_rows`,
    `None`) one tuple per distinct model of `ds`'s `model` column (none for zero rows, the embedded
    default where `ds` has no such column), and options `{}` where none. Two stages load the same
    model where they give equal tuples. Without `ds`, a rows' model is `None` (not known).

    >>> rows = Dataset.from_dict({"model": ["org/a", "org/b", "org/a"]})
    >>> stage_models("generate_responses", {"engine": "vllm"}, rows)
    (('chat', 'org/a', 'vllm', {}), ('chat', 'org/b', 'vllm', {}))
    >>> unnamed = Dataset.from_dict({"uuid": ["u1", "u2"]})  # no `model` column: the embedded default
    >>> stage_models("add_magpie_instructions", {}) == stage_models("generate_responses", {}, unnamed)
    True
    >>> stage_models("generate_responses", {})
    (('chat', None, 'transformers', {}),)
    """
    out: list[tuple] = []
    for m, (loader, model, engine, options) in zip(stage(name).models, models_of(name, kwargs)):
        names: list[Any] = [model]
        if m.from_rows and model is None and ds is not None:
            names = _row_models(ds)
        elif m.from_rows and model is None:
            out.append((loader, None, engine, dict(options or {})))
            continue
        out.extend((loader, m.none_loads if n is None else n, engine, dict(options or {})) for n in names)
    return tuple(t for i, t in enumerate(out) if t not in out[:i])


def _row_models(ds: Dataset) -> list[Any]:
    """The distinct values of `ds`'s `model` column in row order ([None] without one): one column read."""
    import pyarrow.compute as pc

    if "model" not in ds.column_names:
        return [None] if len(ds) else []
    return pc.unique(ds.with_format("arrow")["model"]).to_pylist()


def markdown_table() -> str:
    """The README's stage table: one row per stage, from this table.

    >>> markdown_table().splitlines()[2]
    '| `empty` | source | — | `uuid` | — | n placeholder rows with a stable `uuid` each |'
    """

    def code(names) -> str:
        return ", ".join(f"`{n}`" for n in names) or "—"

    lines = ["| stage | kind | reads | writes | models | what it does |", "|---|---|---|---|---|---|"]
    for s in STAGES:
        name = " / ".join(f"`{n}`" for n in (s.name, *s.aliases))
        writes = code([*s.writes, *s.writes_patterns])
        models = ", ".join(f"{m.role} (`{m.argument}`)" for m in s.models) or "—"
        lines.append(f"| {name} | {s.kind} | {code(s.reads)} | {writes} | {models} | {s.summary} |")
    return "\n".join(lines)


__all__ = ["Chart", "KINDS", "MissingColumnError", "Model", "STAGES", "Stage", "defaults", "keywords", "markdown_table",
           "models_of", "require_reads", "stage", "stage_models", "stage_of", "writer_of"]
