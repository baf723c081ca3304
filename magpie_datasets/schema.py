"""Column names, `datasets.Features` and row helpers shared by every stage.

The names and types follow the authors' published Magpie datasets (DESIGN §5),
so our output and theirs concatenate and load back with the same features.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

import pyarrow as pa
from datasets import Features, Sequence, Value
from datasets.features.features import get_nested_type

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
    "engine": Value("string"),
    "dtype": Value("string"),
}

CONVERSATIONS = [{"from": Value("string"), "value": Value("string")}]

# Options of step 1 that the published `gen_input_configs` struct has no field for.
INSTRUCTION_OPTIONS = {
    "max_tokens": Value("int64"),
    "early_stop": Value("bool"),
    "sanitize": Value("bool"),
    "system_prompt": Value("string"),
    "engine": Value("string"),
    "dtype": Value("string"),
}

INSTRUCTION_FEATURES = Features(
    {
        "uuid": Value("string"),
        "model": Value("string"),
        "gen_input_configs": GEN_INPUT_CONFIGS,
        "instruction_options": INSTRUCTION_OPTIONS,
        "instruction": Value("string"),
        "instruction_issue": Value("string"),
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
