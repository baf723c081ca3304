"""The words LLM judges use for the tag labels, and `normalize_label`, which maps them to a label.

The label vocabularies are `schema.TASK_CATEGORIES`, `schema.QUALITY_LABELS` and
`schema.DIFFICULTY_LABELS` (docs/design.md, Columns); this module only reads them.

    >>> normalize_label("coding", CATEGORY_LOOKUP), normalize_label("Very_Hard", DIFFICULTY_LOOKUP)
    ('Coding & Debugging', 'very hard')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...schema import DIFFICULTY_LABELS, QUALITY_LABELS, TASK_CATEGORIES

# Near-synonyms judges use for our labels. Keys are normalised (see `norm`); the exact label
# names are added by `_lookup`.
_CATEGORY_SYNONYMS = {
    "information": "Information seeking",
    "info seeking": "Information seeking",
    "information retrieval": "Information seeking",
    "question answering": "Information seeking",
    "qa": "Information seeking",
    "factual": "Information seeking",
    "reason": "Reasoning",
    "logic": "Reasoning",
    "logical reasoning": "Reasoning",
    "plan": "Planning",
    "edit": "Editing",
    "rewriting": "Editing",
    "proofreading": "Editing",
    "coding": "Coding & Debugging",
    "code": "Coding & Debugging",
    "programming": "Coding & Debugging",
    "debugging": "Coding & Debugging",
    "coding debugging": "Coding & Debugging",
    "coding and debugging": "Coding & Debugging",
    "mathematics": "Math",
    "maths": "Math",
    "mathematical": "Math",
    "arithmetic": "Math",
    "roleplay": "Role playing",
    "role play": "Role playing",
    "roleplaying": "Role playing",
    "data": "Data analysis",
    "data analytics": "Data analysis",
    "creative": "Creative writing",
    "writing": "Creative writing",
    "creative writting": "Creative writing",
    "advice": "Advice seeking",
    "advice giving": "Advice seeking",
    "brainstorm": "Brainstorming",
    "ideation": "Brainstorming",
    "other": "Others",
    "misc": "Others",
    "miscellaneous": "Others",
}
_QUALITY_SYNONYMS = {
    "very bad": "very poor",
    "terrible": "very poor",
    "bad": "poor",
    "fair": "average",
    "ok": "average",
    "okay": "average",
    "moderate": "average",
    "medium": "average",
    "acceptable": "average",
    "great": "excellent",
    "very good": "excellent",
    "outstanding": "excellent",
}
_DIFFICULTY_SYNONYMS = {
    "trivial": "very easy",
    "simple": "easy",
    "moderate": "medium",
    "intermediate": "medium",
    "average": "medium",
    "difficult": "hard",
    "challenging": "hard",
    "very difficult": "very hard",
    "extremely hard": "very hard",
    "expert": "very hard",
}


def norm(text: str) -> str:
    """Lower-case words without punctuation, '&' and 'and' dropped.

    >>> norm("Coding and Debugging"), norm("coding_&_debugging")
    ('coding debugging', 'coding debugging')
    """
    words = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("&", " and ")).split()
    return " ".join(w for w in words if w != "and")


def _lookup(labels: Sequence[str], synonyms: Mapping[str, str]) -> dict[str, str]:
    table = {norm(k): v for k, v in synonyms.items()}
    table.update({norm(label): label for label in labels})
    return table


CATEGORY_LOOKUP = _lookup(TASK_CATEGORIES, _CATEGORY_SYNONYMS)
QUALITY_LOOKUP = _lookup(QUALITY_LABELS, _QUALITY_SYNONYMS)
DIFFICULTY_LOOKUP = _lookup(DIFFICULTY_LABELS, _DIFFICULTY_SYNONYMS)
LOOKUPS = {"task_category": CATEGORY_LOOKUP, "quality": QUALITY_LOOKUP, "difficulty": DIFFICULTY_LOOKUP}


def normalize_label(value: Any, lookup: Mapping[str, str]) -> str | None:
    """The allowed label `value` names (case, spacing, '_'/'-', '&'/'and', near-synonyms), else None.

    >>> normalize_label("Fair", QUALITY_LOOKUP), normalize_label("superb", QUALITY_LOOKUP)
    ('average', None)
    """
    if not isinstance(value, str):
        return None
    return lookup.get(norm(value))
