"""Language tag: `tag_language`, a batched map adding `language` (ISO 639-1, upper case).

    {"instruction": ["Write a poem.", "Écris un poème.", "  "]}
    -> {"language": ["EN", "FR", None],
        "language_configs": [{"column": "instruction", "detector": "lingua", "low_accuracy": False}] * 3}

The authors tagged their releases with lingua; so do we. The detector is built once per
process (per accuracy mode) and reused by every batch, including in `num_proc` workers.
High-accuracy mode (the default, lingua's own default and the better one on short text) loads
large models on first use; low-accuracy mode (`low_accuracy=True`, trigrams only) starts fast
in little memory and is fine for sentence-length text.
"""

from __future__ import annotations

from datasets import Features, Value

from functools import lru_cache
from typing import Any

from ..schema import record, typed_batch
from ..version import versioned
from .columns import require_reads
from .entry import Chart, Stage


# the columns this stage writes
LANGUAGE_CONFIGS = {"column": Value("string"), "detector": Value("string"), "low_accuracy": Value("bool")}

LANGUAGE_FEATURES = Features({"language": Value("string"), "language_configs": LANGUAGE_CONFIGS})


@lru_cache(maxsize=2)
def language_detector(low_accuracy: bool = False):
    """The process-wide lingua detector over all languages (built lazily, cached)."""
    from lingua import (
        LanguageDetectorBuilder,  # heavy native module: import on first use
    )

    builder = LanguageDetectorBuilder.from_all_languages()
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    return builder.build()


def detect_languages(texts: list[str | None], low_accuracy: bool = False) -> list[str | None]:
    """ISO 639-1 codes, upper case, for `texts`; None for empty/whitespace text or no decision."""
    codes: list[str | None] = [None] * len(texts)
    todo = [i for i, text in enumerate(texts) if text is not None and text.strip()]
    if not todo:
        return codes
    detector = language_detector(low_accuracy)
    found = detector.detect_languages_in_parallel_of([texts[i] for i in todo])
    for i, language in zip(todo, found):
        if language is not None:
            codes[i] = language.iso_code_639_1.name  # enum names are upper case: "EN"
    return codes


@versioned
def tag_language(
    batch: dict[str, list[Any]], *, column: str = "instruction", low_accuracy: bool = False
) -> dict[str, list]:
    """Batched map: `column` -> `language` (e.g. "EN"), None where the text is empty.

    Use as `ds.map(tag_language, batched=True)`; `fn_kwargs={"column": "response"}` tags
    another text column, `fn_kwargs={"low_accuracy": True}` trades short-text accuracy for
    a fast start-up. See the module docstring for the output.

    Input: a batch with `column` (default `instruction`); Output: columns `language`, `language_configs`.

    Args:
        column (`str`, *optional*, defaults to `"instruction"`): the text column whose language is detected;
            the result always goes to `language`, the published column of the authors' releases (ISO 639-1,
            upper case, tagged with lingua over all its languages). Missing or blank text gives None, as does
            text lingua cannot decide. Recorded in `language_configs` (`column`).
        low_accuracy (`bool`, *optional*, defaults to `False`): use lingua's low-accuracy mode (trigram models
            only): a fast start in little memory, fine for sentence-length text, less accurate on short text.
            The default is lingua's own high-accuracy mode, which loads large models on first use. One detector
            per mode is built per process and reused. Recorded in `language_configs` (`low_accuracy`).
    """
    batch = require_reads(batch, "tag_language", (column,))
    config = record(LANGUAGE_CONFIGS, column=column, detector="lingua", low_accuracy=low_accuracy)
    languages = detect_languages(batch[column], low_accuracy)
    # typed: a batch with no text at all must still write a string column, not a null one
    return typed_batch({"language": languages, "language_configs": [config] * len(languages)}, LANGUAGE_FEATURES)


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("tag_language", tag_language, "map", "the instruction's language (ISO 639-1)",
          reads=("instruction",), writes=LANGUAGE_FEATURES,
          charts=(Chart("language", "Language", "bar"),)),
)
