"""LLM-judged tags of an instruction: task category, input quality, input difficulty (DESIGN §5).

    ds = ds.map(magpie.tag_with_llm, batched=True)     # embedded judge, all three tags
    ds = ds.map(magpie.tag_with_llm, batched=True,
                fn_kwargs={"tags": ["quality"], "model": "meta-llama/Meta-Llama-3-8B-Instruct", "engine": "vllm"})

Each tag is one greedy chat turn to the judge asking for a JSON object. vLLM constrains the
answer to a JSON schema with the allowed labels; other engines get the opening of the JSON
object as the start of the judge's reply and the answer is parsed leniently
(`parse_tag_answer`). Columns hold only the allowed labels or None; an answer whose label
cannot be read is kept verbatim in `<tag>_raw_answer`, so a bad answer never fails a batch.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from datasets import Features, List, Value

from ..engines import load_engine
from ..engines.base import Sampling
from ..schema import require_columns, typed_batch
from ..templates import chat_prompt, magpie_template
from ..version import versioned

TASK_CATEGORIES = (
    "Information seeking",
    "Reasoning",
    "Planning",
    "Editing",
    "Coding & Debugging",
    "Math",
    "Role playing",
    "Data analysis",
    "Creative writing",
    "Advice seeking",
    "Brainstorming",
    "Others",
)
QUALITY_LABELS = ("very poor", "poor", "average", "good", "excellent")  # worst to best
DIFFICULTY_LABELS = ("very easy", "easy", "medium", "hard", "very hard")  # easiest to hardest
TAGS = ("task_category", "quality", "difficulty")

_s = Value("string")
TAG_FEATURES = Features(
    {
        "task_category": _s,
        "other_task_category": List(_s),
        "task_category_generator": _s,
        "task_category_raw_answer": _s,
        "input_quality": _s,
        "quality_explanation": _s,
        "quality_generator": _s,
        "quality_raw_answer": _s,
        "intent": _s,
        "knowledge": _s,
        "difficulty": _s,
        "difficulty_generator": _s,
        "difficulty_raw_answer": _s,
    }
)

# Words judges use for our labels. Keys are normalised (see `_norm`); exact label names are
# added below, so only the near-synonyms are listed.
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


def _norm(text: str) -> str:
    """Lower case words, no punctuation, '&' and 'and' dropped: "Coding and Debugging" -> "coding debugging"."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("&", " and ")).split()
    return " ".join(w for w in words if w != "and")


def _lookup(labels: Sequence[str], synonyms: Mapping[str, str]) -> dict[str, str]:
    table = {_norm(k): v for k, v in synonyms.items()}
    table.update({_norm(label): label for label in labels})
    return table


_CATEGORY_LOOKUP = _lookup(TASK_CATEGORIES, _CATEGORY_SYNONYMS)
_QUALITY_LOOKUP = _lookup(QUALITY_LABELS, _QUALITY_SYNONYMS)
_DIFFICULTY_LOOKUP = _lookup(DIFFICULTY_LABELS, _DIFFICULTY_SYNONYMS)


def normalize_label(value: Any, lookup: Mapping[str, str]) -> str | None:
    """The allowed label `value` names (case, spacing, '_'/'-', '&'/'and', near-synonyms), else None.

    >>> normalize_label("coding", _CATEGORY_LOOKUP), normalize_label("Very_Hard", _DIFFICULTY_LOOKUP)
    ('Coding & Debugging', 'very hard')
    """
    if not isinstance(value, str):
        return None
    return lookup.get(_norm(value))


# --- prompts (our wording) -------------------------------------------------------------------

_CATEGORY_PROMPT = """\
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

_QUALITY_PROMPT = """\
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

_DIFFICULTY_PROMPT = """\
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
_TAG_SPECS = {
    "task_category": {
        "prompt": _CATEGORY_PROMPT,
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
        "prompt": _QUALITY_PROMPT,
        "prefill": '{"quality": "',
        "schema": _schema({"quality": {"enum": list(QUALITY_LABELS)}, "explanation": _TEXT}, ["quality", "explanation"]),
    },
    "difficulty": {
        "prompt": _DIFFICULTY_PROMPT,
        "prefill": '{"difficulty": "',
        "schema": _schema(
            {"difficulty": {"enum": list(DIFFICULTY_LABELS)}, "intent": _TEXT, "knowledge": _TEXT},
            ["difficulty", "intent", "knowledge"],
        ),
    },
}

# Output columns of each tag; the label column is the one that decides "parsed or not".
TAG_COLUMNS = {
    "task_category": ("task_category", "other_task_category", "task_category_generator", "task_category_raw_answer"),
    "quality": ("input_quality", "quality_explanation", "quality_generator", "quality_raw_answer"),
    "difficulty": ("intent", "knowledge", "difficulty", "difficulty_generator", "difficulty_raw_answer"),
}
LABEL_COLUMN = {"task_category": "task_category", "quality": "input_quality", "difficulty": "difficulty"}


# --- parsing ---------------------------------------------------------------------------------


def _json_objects(text: str):
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
    keys = {_norm(str(k)).replace(" ", "_"): v for k, v in obj.items()}
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
    norm = f" {_norm(text)} "
    found = set()
    for label in sorted(set(lookup.values()), key=len, reverse=True):  # "very poor" before "poor"
        key = f" {_norm(label)} "
        if key in norm:
            found.add(label)
            norm = norm.replace(key, " | ")
    return found.pop() if len(found) == 1 else None


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


_LABEL_KEYS = {
    "task_category": ("category", "primary_category", "task_category", "primary_tag", "label"),
    "quality": ("quality", "input_quality", "rating", "label"),
    "difficulty": ("difficulty", "level", "label"),
}
_LOOKUPS = {"task_category": _CATEGORY_LOOKUP, "quality": _QUALITY_LOOKUP, "difficulty": _DIFFICULTY_LOOKUP}


def parse_tag_answer(tag: str, answer: str) -> dict[str, Any]:
    """The judge's answer for `tag` as output columns (label columns: an allowed label or None).

    >>> parse_tag_answer("difficulty", 'Sure! {"intent": "The user wants x", "difficulty": "Very_Hard"}')
    {'intent': 'The user wants x', 'knowledge': None, 'difficulty': 'very hard'}
    >>> parse_tag_answer("task_category", '{"category": "coding", "other_categories": ["Math", "nope"]}')
    {'task_category': 'Coding & Debugging', 'other_task_category': ['Math']}
    """
    if tag not in _TAG_SPECS:
        raise ValueError(f"Unknown tag {tag!r}: choose from {', '.join(TAGS)}")
    answer = answer if isinstance(answer, str) else ""
    lookup = _LOOKUPS[tag]
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


# --- the stage -------------------------------------------------------------------------------


def _tags_of(tags: str | Sequence[str] | None) -> tuple[str, ...]:
    if tags is None:
        return TAGS
    chosen = (tags,) if isinstance(tags, str) else tuple(tags)
    unknown = [t for t in chosen if t not in TAGS]
    if unknown or not chosen:
        raise ValueError(f"tag_with_llm: unknown tags {unknown or chosen!r}; choose any of {', '.join(TAGS)}")
    return tuple(dict.fromkeys(chosen))


@versioned
def tag_with_llm(
    batch: Mapping[str, list],
    tags: str | Sequence[str] | None = TAGS,
    model: str | None = None,
    engine: str = "transformers",
    max_tokens: int = 512,
    column: str = "instruction",
    engine_options: Mapping[str, Any] | None = None,
    constrained: bool = True,
) -> dict[str, list]:
    """Tag each instruction with an LLM judge (greedy, JSON answer).

    ```
    {"instruction": ["Fix my Python loop ..."]}
    -> {"task_category": ["Coding & Debugging"], "other_task_category": [["Information seeking"]],
        "task_category_generator": [<judge>], "task_category_raw_answer": [None],
        "input_quality": ["good"], "quality_explanation": ["..."], "quality_generator": [<judge>],
        "quality_raw_answer": [None],
        "intent": ["The user wants to ..."], "knowledge": ["To answer, ..."], "difficulty": ["easy"],
        "difficulty_generator": [<judge>], "difficulty_raw_answer": [None]}
    ```
    Only the columns of the requested `tags` are written. With `constrained` (default) the
    engine decodes under the answer's JSON schema (vLLM structured outputs, llguidance masks in
    the transformers engine), so even a weak judge names an allowed label; `constrained=False`
    lets the judge answer freely after a `{"<label>": "` prefill. Either way the answer is parsed:
    a label it does not give (a truncated or free answer) is None and the answer goes to
    `<tag>_raw_answer`. Empty instructions are not sent (all their columns None,
    `other_task_category` []).
    """
    tags = _tags_of(tags)
    require_columns(batch, {column: "add_magpie_instructions"}, "tag_with_llm")
    instructions = [text if isinstance(text, str) else "" for text in batch[column]]
    rows = len(instructions)
    out: dict[str, list] = {}
    for tag in tags:
        for name in TAG_COLUMNS[tag]:
            out[name] = [[] if name == "other_task_category" else None for _ in range(rows)]
    todo = [i for i in range(rows) if instructions[i].strip()]
    if not todo:
        return typed_batch(out, TAG_FEATURES)

    llm = load_engine(model, engine, **dict(engine_options or {}))
    constrained = constrained and getattr(llm, "supports_json_schema", False)
    stop = magpie_template(llm.tokenizer, system_prompt="template").stop
    for tag in tags:
        spec = _TAG_SPECS[tag]
        prefill = "" if constrained else spec["prefill"]
        prompts = [
            chat_prompt(llm.tokenizer, [{"role": "user", "content": spec["prompt"].format(instruction=instructions[i])}])
            + prefill
            for i in todo
        ]
        sampling = Sampling(
            temperature=0.0,
            max_tokens=max_tokens,
            # the answer is one flat object: its first "}" ends it (saves a weak judge's rambling)
            stop=(*stop, "}"),
            seed=0,
            json_schema=spec["schema"] if constrained else None,
        )
        label_column = LABEL_COLUMN[tag]
        generator, raw_column = TAG_COLUMNS[tag][-2], TAG_COLUMNS[tag][-1]
        for i, (completion,) in zip(todo, llm.generate(prompts, sampling)):
            answer = prefill + completion.text
            if completion.finish_reason == "stop" and answer.lstrip().startswith("{") and not answer.rstrip().endswith("}"):
                answer += "}"  # the stop string is cut off; put the object's end back
            parsed = parse_tag_answer(tag, answer)
            for name, value in parsed.items():
                out[name][i] = value
            out[generator][i] = llm.model_id
            out[raw_column][i] = answer if parsed[label_column] is None else None
    return typed_batch(out, TAG_FEATURES)
