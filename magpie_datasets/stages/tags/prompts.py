"""What the judge is asked for each tag: the prompt (our wording), the answer's JSON schema,
the prefill of a free answer, and the columns each tag writes.

    >>> TAGS
    ('task_category', 'quality', 'difficulty')
    >>> TAG_SPECS["quality"]["prefill"], LABEL_COLUMN["quality"]
    ('{"quality": "', 'input_quality')
"""

from __future__ import annotations

import json

from ...schema import DIFFICULTY_LABELS, QUALITY_LABELS, TASK_CATEGORIES

TAGS = ("task_category", "quality", "difficulty")

CATEGORY_PROMPT = """\
Which kind of task does the user request below ask for?

Pick from these categories:
- Information seeking: wants facts or an explanation about a topic.
- Reasoning: logic, deduction, or working a puzzle out step by step.
- Planning: organising steps, a schedule or a strategy toward a goal.
- Editing: rewriting, proofreading, shortening or otherwise changing a given text.
- Coding & Debugging: writing, explaining or fixing program code.
- Math: calculations, equations, proofs and other mathematical problems.
- Role playing: asks the assistant to act as a character or persona.
- Data analysis: reading, transforming or summarising data and tables.
- Creative writing: stories, poems, lyrics or other original writing.
- Advice seeking: wants a recommendation or guidance for their own situation.
- Brainstorming: wants many ideas or options.
- Others: fits none of the above.

User request:
<<<
{instruction}
>>>

Answer with one JSON object and nothing else:
{{"category": "<the single best category>", "other_categories": [<other categories that also apply, maybe none>]}}"""

QUALITY_PROMPT = """\
How well is the user request below written? Judge only whether it is clear, specific and \
complete enough for an assistant to give a good answer, not how hard it is.

Scale:
- very poor: unclear or incoherent, or essential information is missing.
- poor: vague, important details missing; it needs several clarifications.
- average: understandable, but more detail or context would help.
- good: clear and specific, only minor gaps.
- excellent: very clear and specific, with all the context an answer needs.

User request:
<<<
{instruction}
>>>

Answer with one JSON object and nothing else:
{{"quality": "<one level of the scale>", "explanation": "<one or two sentences on what is clear and what is missing>"}}"""

DIFFICULTY_PROMPT = """\
Read the user request below. Say what the user is trying to get done, what someone needs to \
know to answer it, and how hard it is to answer well.

Scale:
- very easy: anyone can answer it at once.
- easy: needs common knowledge or a short, simple answer.
- medium: needs some specialised knowledge or several steps.
- hard: needs expert knowledge or careful multi-step work.
- very hard: challenging even for experts.

User request:
<<<
{instruction}
>>>

Answer with one JSON object and nothing else:
{{"difficulty": "<one level of the scale>", "intent": "The user wants to ...", "knowledge": "To answer, one needs to know ..."}}"""


def _schema(properties: dict, required: list[str]) -> str:
    return json.dumps({"type": "object", "properties": properties, "required": required, "additionalProperties": False})


_TEXT = {"type": "string", "maxLength": 400}

# Per tag: the prompt (formatted with `instruction`), the opening of a free answer, and the JSON
# schema a constrained answer is decoded under (its label fields are enums of the allowed labels).
TAG_SPECS = {
    "task_category": {
        "prompt": CATEGORY_PROMPT,
        "prefill": '{"category": "',
        "schema": _schema(
            {
                "category": {"enum": list(TASK_CATEGORIES)},
                "other_categories": {"type": "array", "items": {"enum": list(TASK_CATEGORIES)}, "maxItems": 3},
            },
            ["category", "other_categories"],
        ),
    },
    "quality": {
        "prompt": QUALITY_PROMPT,
        "prefill": '{"quality": "',
        "schema": _schema({"quality": {"enum": list(QUALITY_LABELS)}, "explanation": _TEXT}, ["quality", "explanation"]),
    },
    "difficulty": {
        "prompt": DIFFICULTY_PROMPT,
        "prefill": '{"difficulty": "',
        "schema": _schema(
            {"difficulty": {"enum": list(DIFFICULTY_LABELS)}, "intent": _TEXT, "knowledge": _TEXT},
            ["difficulty", "intent", "knowledge"],
        ),
    },
}

# Output columns of each tag, the judge's name and its unreadable answer last; the label column
# is the one that decides "parsed or not".
TAG_COLUMNS = {
    "task_category": ("task_category", "other_task_category", "task_category_generator", "task_category_raw_answer"),
    "quality": ("input_quality", "quality_explanation", "quality_generator", "quality_raw_answer"),
    "difficulty": ("intent", "knowledge", "difficulty", "difficulty_generator", "difficulty_raw_answer"),
}
LABEL_COLUMN = {"task_category": "task_category", "quality": "input_quality", "difficulty": "difficulty"}
