"""The stage table: every stage, collected from the stage modules' own `STAGES` entries.

    >>> stage("tag_language").reads, list(stage("tag_language").writes)
    (('instruction',), ['language', 'language_configs'])
    >>> writer_of("input_quality"), writer_of("instruction_3"), writer_of("rewards_armorm")
    ('tag_with_llm', 'add_turns', 'add_rewards')

A stage module declares its entry (`stages.entry.Stage`: name, function, kind, the columns it
reads and writes, its models, its card charts); this module lists the modules, in pipeline order,
and answers questions about them. Recipes, the package's exports, the filters' missing-column
messages, the cards' statistics and plots, the Ray runner and the README's stage table all read it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from datasets import Dataset

from . import (
    contamination,
    control,
    filters,
    formats,
    generate,
    language,
    multiturn,
    normalize,
    preference,
    reasoning,
    safety,
    similarity,
)
from .columns import know, require_reads, stage, writer_of
from .entry import KINDS, Chart, Model, Stage
from .rewards import stage as rewards
from .tags import stage as tags
from ..schema import MissingColumnError

# in pipeline order: where two stages write a column, the first names it in missing-column messages
MODULES = (generate, control, reasoning, multiturn, preference, tags, language, safety, rewards, similarity,
           contamination, formats, normalize, filters)
STAGES: tuple[Stage, ...] = tuple(entry for module in MODULES for entry in module.STAGES)
know(STAGES)


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
