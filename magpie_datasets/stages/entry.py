"""What a stage declares about itself: its `Stage` entry (name, function, kind, the columns it
reads and writes, the models it loads, the card's charts), in the stage's own module.

    STAGES = (Stage("tag_language", tag_language, "map", "the instruction's language (ISO 639-1)",
                    reads=("instruction",), writes=LANGUAGE_FEATURES),)

`stages.table` collects every module's `STAGES`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from datasets import Features

from ..engines.embedded import EMBEDDED_CHAT_MODEL

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
    """One stage: `function` of `kind` ("source", "map", "filter" or "dataset"), what it reads and
    writes, the models it loads and the charts the card draws from its columns."""

    name: str
    function: Callable[..., Any]
    kind: str
    summary: str
    reads: tuple[str, ...] = ()
    writes: Features = field(default_factory=Features)
    writes_patterns: tuple[str, ...] = ()  # columns named by an argument, e.g. "instruction_*"
    models: tuple[Model, ...] = ()
    charts: tuple[Chart, ...] = ()
    aliases: tuple[str, ...] = ()
    passes_keywords_to: str | None = None  # the stage that takes this one's other keyword arguments

    def writes_column(self, column: str) -> bool:
        return column in self.writes or any(fnmatch.fnmatchcase(column, p) for p in self.writes_patterns)



# the chat models most stages load, by role
CHAT = Model("model", "generator", none_loads=EMBEDDED_CHAT_MODEL)
RESPONDER = Model("model", "responder", from_rows=True, none_loads=EMBEDDED_CHAT_MODEL)
FOLLOW_UP = Model("model", "generator", from_rows=True, none_loads=EMBEDDED_CHAT_MODEL)
TAGGER = Model("model", "tagger", none_loads=EMBEDDED_CHAT_MODEL)
GUARD = Model("model", "guard", none_loads=EMBEDDED_CHAT_MODEL)
