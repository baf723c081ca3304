"""The columns: every stage's output `Features`, the label vocabularies, and row helpers.

Names and types follow the authors' published Magpie datasets (see docs/design.md, Columns),
so our output and theirs concatenate and load back with the same features. Columns the
published sets do not have are ours: `*_issue` (why a row may be unusable) and `*_configs`
(the settings that decided a stage's output, recorded per row with `record`).
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

import pyarrow as pa
from datasets import Features, List, Sequence, Value
from datasets.features.features import get_nested_type

_s = Value("string")

# --- label vocabularies, worst to best where ordered ----------------------------------------

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
QUALITY_LABELS = ("very poor", "poor", "average", "good", "excellent")
DIFFICULTY_LABELS = ("very easy", "easy", "medium", "hard", "very hard")

# --- steps 1 and 2 ---------------------------------------------------------------------------

GEN_INPUT_CONFIGS = {
    "temperature": Value("float64"),
    "top_p": Value("float64"),
    "input_generator": Value("string"),
    "seed": Value("int64"),
    "pre_query_template": Value("string"),
}

GEN_RESPONSE_CONFIGS = {
    "prompt": Value("string"),
    "temperature": Value("float64"),
    "top_p": Value("float64"),
    "repetition_penalty": Value("float64"),
    "max_tokens": Value("int64"),
    "stop_tokens": Sequence(Value("string")),
    "output_generator": Value("string"),
    "model_source": Value("string"),
    "engine": Value("string"),
    "dtype": Value("string"),
    "seed": Value("int64"),
    "chat_template_kwargs": Value("string"),  # JSON object, sorted keys; null without any
    "reasoning_markers": Sequence(Value("string")),  # [start, end] the template names; null if none
}

CONVERSATIONS = [{"from": Value("string"), "value": Value("string")}]

# Options of step 1 that the published `gen_input_configs` struct has no field for.
INSTRUCTION_OPTIONS = {
    "max_tokens": Value("int64"),
    "early_stop": Value("bool"),
    "sanitize": Value("bool"),
    "system_prompt": Value("string"),
    "model_source": Value("string"),
    "engine": Value("string"),
    "dtype": Value("string"),
    "chat_template_kwargs": Value("string"),  # JSON object, sorted keys; null without any
    # the logit bias on the first generated token ([] without one) and its own temperature (null: none)
    "first_token_bias": [{"token": Value("string"), "token_id": Value("int64"), "bias": Value("float64")}],
    "first_token_temperature": Value("float64"),
}

INSTRUCTION_FEATURES = Features(
    {
        "uuid": Value("string"),
        "model": Value("string"),
        "gen_input_configs": GEN_INPUT_CONFIGS,
        "instruction_options": INSTRUCTION_OPTIONS,
        "instruction": Value("string"),
        "instruction_issue": Value("string"),
        "instruction_sanitize_class": Value("string"),  # rule of sanitize_instruction; null: none fired
    }
)

RESPONSE_FEATURES = Features(
    {
        "response": Value("string"),
        "response_issue": Value("string"),
        "gen_response_configs": GEN_RESPONSE_CONFIGS,
        "conversations": CONVERSATIONS,
        "instruction_length": Value("int64"),
        "response_length": Value("int64"),
    }
)


CONTROL_FEATURES = Features({**INSTRUCTION_FEATURES, "control": _s})

# What `normalize` may add to a published variant: the current names of its moved columns.
NORMALIZED_FEATURES = Features(
    {
        "uuid": _s,
        "instruction": _s,
        "response": _s,
        "gen_input_configs": GEN_INPUT_CONFIGS,
        "instruction_length": Value("int64"),
        "response_length": Value("int64"),
        "min_similar_uuid": _s,
    }
)

# --- multi-turn (MAGPIE-MT) ------------------------------------------------------------------

GEN_MT_CONFIGS = {
    "temperature": Value("float64"),
    "top_p": Value("float64"),
    "max_tokens": Value("int64"),
    "response_temperature": Value("float64"),
    "response_max_tokens": Value("int64"),
    "response_repetition_penalty": Value("float64"),
    "response_penalize_prompt": Value("bool"),
    "early_stop": Value("bool"),
    "sanitize": Value("bool"),
    "system_prompt": _s,  # the MT prompt as used; null where the template has no system role
    "input_generator": _s,
    "model_source": _s,
    "seed": Value("int64"),
    "engine": _s,
    "dtype": _s,
    "chat_template_kwargs": _s,  # JSON object, sorted keys; null without any
}


def turn_features(num_turns: int) -> Features:
    """Features of the columns `add_turns(..., num_turns=num_turns)` writes.

    >>> list(turn_features(3))[:4]
    ['instruction_2', 'response_2', 'instruction_3', 'response_3']
    """
    columns: dict[str, Any] = {}
    for k in range(2, num_turns + 1):
        columns[f"instruction_{k}"] = _s
        columns[f"response_{k}"] = _s
    columns["conversations"] = CONVERSATIONS
    columns["turns_issue"] = _s
    columns["gen_mt_configs"] = GEN_MT_CONFIGS
    return Features(columns)


# --- reasoning (split_reasoning) ------------------------------------------------------------

REASONING_CONFIGS = {
    "column": _s,  # the column split (its raw text is kept in `response_raw`)
    "start": _s,
    "end": _s,
    "markers_from": _s,  # "given", "template" (recorded at step 2) or "default" (<think>/</think>)
    "prompt_opens": Value("bool"),  # the generation prompt already opened the reasoning block
}
REASONING_FEATURES = Features(
    {"reasoning": _s, "response": _s, "response_raw": _s, "reasoning_issue": _s, "reasoning_configs": REASONING_CONFIGS}
)

# --- preference pairs (MAGPIE-DPO) ------------------------------------------------------------

MESSAGES = [{"role": _s, "content": _s}]

SAMPLE_FEATURES = Features(
    {"responses": Sequence(_s), "response_issues": Sequence(_s), "gen_response_configs": GEN_RESPONSE_CONFIGS}
)

PAIR_FEATURES = Features(
    {
        "prompt": MESSAGES,
        "chosen": MESSAGES,
        "rejected": MESSAGES,
        "chosen_score": Value("float64"),
        "rejected_score": Value("float64"),
        "pair_issue": _s,
    }
)

# --- tags -------------------------------------------------------------------------------------

TAG_CONFIGS = {
    "tags": Sequence(_s),
    "column": _s,
    "model": _s,
    "model_source": _s,
    "engine": _s,
    "dtype": _s,
    "constrained": Value("bool"),  # as decoded: False where the engine cannot constrain
    "max_tokens": Value("int64"),
}

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
        "tag_configs": TAG_CONFIGS,
    }
)

SAFETY_CONFIGS = {
    "column": _s,
    "model": _s,
    "model_source": _s,
    "engine": _s,
    "dtype": _s,
    "max_tokens": Value("int64"),
}
SAFETY_FEATURES = Features(
    {"llama_guard_2": _s, "safety_model": _s, "safety_raw_answer": _s, "safety_configs": SAFETY_CONFIGS}
)

LANGUAGE_CONFIGS = {"column": _s, "detector": _s, "low_accuracy": Value("bool")}
LANGUAGE_FEATURES = Features({"language": _s, "language_configs": LANGUAGE_CONFIGS})

# --- rewards ----------------------------------------------------------------------------------

REWARD_CONFIGS = {
    "column": _s,
    "model": _s,
    "model_source": _s,
    "dtype": _s,
    "max_length": Value("int64"),
}
REWARD_FEATURES = Features(
    {"instruct_reward": Value("float64"), "reward_model": _s, "reward_configs": REWARD_CONFIGS}
)
SCORES = List({"score": Value("float64")})  # one {score} per response, e.g. `rewards_armorm`

BASE_CONFIGS = {
    "base_model": _s,
    "model_source": _s,
    "engine": _s,
    "dtype": _s,
    "prompt": _s,  # the few-shot prompt around {instruction}
    "max_tokens": Value("int64"),
}
BASE_FEATURES = Features(
    {
        "base_output": _s,
        "base_reward": Value("float64"),
        "reward_difference": Value("float64"),
        "base_model": _s,
        "base_configs": BASE_CONFIGS,
    }
)

# --- nearest neighbours -----------------------------------------------------------------------

NEIGHBOR_CONFIGS = {
    "column": _s,
    "embedding_model": _s,
    "model_source": _s,
    "threshold": Value("float64"),
    "index": _s,  # "exact" (IndexFlatL2) or "ivf"
    "nprobe": Value("int64"),
}
NEIGHBOR_FEATURES = Features(
    {
        "min_neighbor_distance": Value("float64"),
        "repeat_count": Value("int64"),
        "min_similar_uuid": _s,
        "neighbor_configs": NEIGHBOR_CONFIGS,
    }
)
CONTAMINATION_CONFIGS = {
    "column": _s,
    "embedding_model": _s,
    "model_source": _s,
    "threshold": Value("float64"),  # cosine similarity at or above which a row is flagged
    "reference_size": Value("int64"),  # number of reference (benchmark) questions searched
}
CONTAMINATION_FEATURES = Features(
    {
        "contamination_similarity": Value("float64"),  # cosine to the closest reference question
        "contamination_match": _s,  # that question
        "contamination_configs": CONTAMINATION_CONFIGS,
    }
)

# --- training formats -------------------------------------------------------------------------

SFT_FEATURES = Features({"messages": MESSAGES})
SHAREGPT_FEATURES = Features({"conversations": CONVERSATIONS})
DPO_FEATURES = Features({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES})


def record(struct: Mapping[str, Any], **values: Any) -> dict[str, Any]:
    """A stage's settings as one row's `*_configs` value, each cast to its field's type.

    Every field of `struct` must be given (None allowed) and nothing else, so a setting added
    to a stage cannot go unrecorded or be recorded under a name the Features lack.

    >>> record({"seed": Value("int64"), "top_p": Value("float64")}, seed=3, top_p=1)
    {'seed': 3, 'top_p': 1.0}
    >>> record({"seed": Value("int64")}, seed=3, temperature=1.0)
    Traceback (most recent call last):
    ...
    ValueError: record(): temperature not in this config's fields (seed); missing: none
    """
    extra, missing = sorted(set(values) - set(struct)), sorted(set(struct) - set(values))
    if extra or missing:
        raise ValueError(
            f"record(): {', '.join(extra) or 'nothing'} not in this config's fields ({', '.join(struct)}); "
            f"missing: {', '.join(missing) or 'none'}"
        )
    return {name: _cast(feature, values[name]) for name, feature in struct.items()}


def _cast(feature: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(feature, (List, Sequence)):
        return [_cast(feature.feature, v) for v in value]
    dtype = getattr(feature, "dtype", None)
    if dtype in ("float64", "float32"):
        return float(value)
    if dtype in ("int64", "int32"):
        return int(value)
    if dtype == "bool":
        return bool(value)
    if dtype == "string":
        return str(value)
    return value


class TypedList(list):
    """A plain list that also tells Arrow its type.

    `Dataset.map` infers a column's type from the first batch it writes; a column
    that is all None there (no issue, no tag yet) would be typed null and the
    next batch with a value would fail. Arrow asks `__arrow_array__` instead.
    """

    def __init__(self, values, pa_type: pa.DataType):
        super().__init__(values)
        self.pa_type = pa_type

    def __arrow_array__(self, type=None):
        return pa.array(list(self), type=self.pa_type)


def typed_batch(columns: Mapping[str, list], features: Mapping[str, Any]) -> dict[str, list]:
    """Give each output column whose name is in `features` its declared Arrow type.

    >>> out = typed_batch({"response_issue": [None, None]}, RESPONSE_FEATURES)
    >>> out["response_issue"], out["response_issue"].pa_type
    ([None, None], DataType(string))
    """
    return {
        name: TypedList(values, get_nested_type(features[name])) if name in features else values
        for name, values in columns.items()
    }


class MissingColumnError(KeyError):
    """A stage was given a batch without a column it reads."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def require_columns(batch: Mapping[str, Any], needed: Mapping[str, str], stage: str) -> None:
    """Raise one clear error when `batch` lacks a column; `needed` maps column -> producing stage.

    >>> require_columns({"instruction": ["hi"]}, {"response": "generate_responses"}, "tag_safety")
    Traceback (most recent call last):
    ...
    magpie_datasets.schema.MissingColumnError: tag_safety needs column 'response', ... Run generate_responses first, ...
    """
    present = set(batch.keys())
    for column, producer in needed.items():
        if column not in present:
            raise MissingColumnError(
                f"{stage} needs column {column!r}, which this dataset does not have "
                f"(columns: {sorted(present)}). Run {producer} first, or rename your column "
                f"with ds.rename_column(..., {column!r})."
            )


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """Number of rows in a batch (a dict of equal-length lists)."""
    for values in batch.values():
        return len(values)
    return 0


def conversation_uuid(*parts: Any) -> str:
    """uuid5 (DNS namespace) of a conversation id built from `parts`, as in the published data."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "/".join(str(p) for p in parts)))


def to_conversations(*turns: str) -> list[dict[str, str]]:
    """ShareGPT turns from alternating user/assistant texts.

    >>> to_conversations("Hi?", "Hello!")
    [{'from': 'human', 'value': 'Hi?'}, {'from': 'gpt', 'value': 'Hello!'}]
    """
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)]
