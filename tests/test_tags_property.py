"""Property-based tests of tag-answer parsing: any judge answer parses, to an allowed label or None."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from magpie_datasets.stages.tags import (
    DIFFICULTY_LABELS,
    LABEL_COLUMN,
    QUALITY_LABELS,
    TAG_COLUMNS,
    TAGS,
    TASK_CATEGORIES,
    parse_tag_answer,
)

ALLOWED = {"task_category": TASK_CATEGORIES, "quality": QUALITY_LABELS, "difficulty": DIFFICULTY_LABELS}
KEY = {"task_category": "category", "quality": "quality", "difficulty": "difficulty"}
SETTINGS = settings(max_examples=150, deadline=None)

# Prose around an answer: no braces (they would open other JSON objects) and no letters, so it
# cannot name a label by itself.
prose = st.text(alphabet=st.sampled_from(list(" .,;:!?()0123456789\n\t-*#")), max_size=40)


def expected_columns(tag: str) -> set[str]:
    return set(TAG_COLUMNS[tag][:-2]) if tag != "difficulty" else {"intent", "knowledge", "difficulty"}


@st.composite
def spelled(draw, label: str) -> str:
    """`label` as a judge might spell it: any case, words joined by ' ', '_' or '-'."""
    joiner = draw(st.sampled_from([" ", "_", "-"]))
    words = label.replace("&", "and").split() if draw(st.booleans()) else label.split()
    text = joiner.join(w for w in words)
    return draw(st.sampled_from([text, text.lower(), text.upper(), text.title()]))


@SETTINGS
@given(tag=st.sampled_from(TAGS), answer=st.text(max_size=300))
def test_any_text_parses_to_an_allowed_label_or_none(tag, answer):
    parsed = parse_tag_answer(tag, answer)
    assert set(parsed) == expected_columns(tag)
    assert parsed[LABEL_COLUMN[tag]] in (*ALLOWED[tag], None)
    if tag == "task_category":
        others = parsed["other_task_category"]
        assert isinstance(others, list) and set(others) <= set(TASK_CATEGORIES)
        assert parsed["task_category"] not in others and len(others) == len(set(others))
    for name, value in parsed.items():
        if name not in (LABEL_COLUMN[tag], "other_task_category"):
            assert value is None or isinstance(value, str)


@SETTINGS
@given(tag=st.sampled_from(TAGS), value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
))
def test_any_json_value_under_the_label_key_parses_safely(tag, value):
    parsed = parse_tag_answer(tag, json.dumps({KEY[tag]: value}))
    assert parsed[LABEL_COLUMN[tag]] in (*ALLOWED[tag], None)


@SETTINGS
@given(data=st.data(), tag=st.sampled_from(TAGS), before=prose, after=prose)
def test_a_label_in_a_json_answer_is_found_however_it_is_spelled(data, tag, before, after):
    label = data.draw(st.sampled_from(ALLOWED[tag]))
    obj = {data.draw(st.sampled_from([KEY[tag], KEY[tag].upper(), KEY[tag].title()])): data.draw(spelled(label))}
    if tag == "quality":
        obj = {"explanation": "Clear enough.", **obj}
    answer = before + json.dumps(obj) + after
    assert parse_tag_answer(tag, answer)[LABEL_COLUMN[tag]] == label


@SETTINGS
@given(tag=st.sampled_from(TAGS), answer=prose)
def test_an_answer_naming_no_label_gives_none(tag, answer):
    assert parse_tag_answer(tag, answer)[LABEL_COLUMN[tag]] is None


@SETTINGS
@given(data=st.data(), tag=st.sampled_from(TAGS))
def test_a_json_answer_cut_off_by_max_tokens_still_gives_its_label(data, tag):
    label = data.draw(st.sampled_from(ALLOWED[tag]))
    full = json.dumps({KEY[tag]: label, "explanation": "It is fine."})
    cut = data.draw(st.integers(min_value=full.index(label) + len(label) + 1, max_value=len(full)))
    assert parse_tag_answer(tag, full[:cut])[LABEL_COLUMN[tag]] == label
