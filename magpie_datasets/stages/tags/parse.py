"""Reading a judge's answer: `parse_tag_answer(tag, answer)` -> the tag's columns.

An answer is read as leniently as it can be without guessing: the first JSON object holding
the label (one cut off by `max_tokens` is closed first), else `label: value` in plain text,
else the one label named in prose. Label columns get an allowed label or None, never a guess
between two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .labels import LOOKUPS, norm, normalize_label
from .prompts import TAG_SPECS, TAGS

# Keys judges put the label under, per tag (compared by their normalised spelling).
_LABEL_KEYS = {
    "task_category": ("category", "primary_category", "task_category", "primary_tag", "label"),
    "quality": ("quality", "input_quality", "rating", "label"),
    "difficulty": ("difficulty", "level", "label"),
}


def _json_objects(text: str) -> Iterator[dict]:
    """Every JSON object that starts at a '{' of `text`, first first; truncated ones closed."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        start = match.start()
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            value = None
            for closing in ('"}', '"]}', "]}", "}"):  # an answer cut off by max_tokens
                try:
                    value, _ = decoder.raw_decode(text[start:] + closing)
                    break
                except (ValueError, RecursionError):
                    continue
        if isinstance(value, dict):
            yield value


def _field(obj: Mapping[str, Any], names: Sequence[str]) -> Any:
    """obj's value under any of `names`, matching keys by their normalised spelling."""
    keys = {norm(str(k)).replace(" ", "_"): v for k, v in obj.items()}
    for name in names:
        if name in keys:
            return keys[name]
    return None


def _loose_field(text: str, names: Sequence[str]) -> str | None:
    """`"name": "value"` or `name: value` anywhere in text, for answers that are not valid JSON."""
    for name in names:
        pattern = rf'"?{re.escape(name)}"?\s*[:=]\s*"?([^"\n,}}\]]+)'
        match = re.search(pattern, text, flags=re.IGNORECASE)
        if match:
            return match.group(1).strip()
    return None


def _mentioned_label(text: str, lookup: Mapping[str, str]) -> str | None:
    """The one label named anywhere in free text (exact label names only); None when 0 or several."""
    normalized = f" {norm(text)} "
    found = set()
    for label in sorted(set(lookup.values()), key=len, reverse=True):  # "very poor" before "poor"
        key = f" {norm(label)} "
        if key in normalized:
            found.add(label)
            normalized = normalized.replace(key, " | ")
    return found.pop() if len(found) == 1 else None


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def parse_tag_answer(tag: str, answer: str) -> dict[str, Any]:
    """The judge's answer for `tag` as output columns (label columns: an allowed label or None).

    Args:
        tag: "task_category", "quality" or "difficulty".
        answer: the judge's reply, prefill included.

    Returns:
        The tag's parsed columns (`TAG_COLUMNS[tag]` without the generator and raw-answer ones).

    >>> parse_tag_answer("difficulty", 'Sure! {"intent": "The user wants x", "difficulty": "Very_Hard"}')
    {'intent': 'The user wants x', 'knowledge': None, 'difficulty': 'very hard'}
    >>> parse_tag_answer("task_category", '{"category": "coding", "other_categories": ["Math", "nope"]}')
    {'task_category': 'Coding & Debugging', 'other_task_category': ['Math']}
    >>> parse_tag_answer("quality", "Quality: poor")
    {'input_quality': 'poor', 'quality_explanation': None}
    """
    if tag not in TAG_SPECS:
        raise ValueError(f"Unknown tag {tag!r}: choose from {', '.join(TAGS)}")
    answer = answer if isinstance(answer, str) else ""
    lookup = LOOKUPS[tag]
    obj = next((o for o in _json_objects(answer) if _field(o, _LABEL_KEYS[tag]) is not None), None)
    if obj is None:
        obj = next(_json_objects(answer), {})
    raw_label = _field(obj, _LABEL_KEYS[tag])
    if isinstance(raw_label, list) and raw_label:
        raw_label = raw_label[0]
    label = normalize_label(raw_label, lookup)
    if label is None and raw_label is None:  # not JSON: `quality: good`
        label = normalize_label(_loose_field(answer, _LABEL_KEYS[tag]), lookup)
    if label is None and not obj:  # no JSON at all: the one label named in prose, if only one is
        label = _mentioned_label(answer, lookup)

    if tag == "task_category":
        others = _field(obj, ("other_categories", "other_task_category", "other_tags", "others", "secondary"))
        others = others if isinstance(others, list) else [others] if isinstance(others, str) else []
        others = [normalize_label(o, lookup) for o in others]
        other_labels = list(dict.fromkeys(o for o in others if o is not None and o != label))
        return {"task_category": label, "other_task_category": other_labels}
    if tag == "quality":
        return {"input_quality": label, "quality_explanation": _text(_field(obj, ("explanation", "reason")))}
    return {
        "intent": _text(_field(obj, ("intent", "goal"))),
        "knowledge": _text(_field(obj, ("knowledge", "required_knowledge"))),
        "difficulty": label,
    }
