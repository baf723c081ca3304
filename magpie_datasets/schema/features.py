"""The stages' output `Features` and `*_configs` structs, and the label vocabularies, as in the published data."""

from __future__ import annotations

from typing import Any

from datasets import Features, List, Sequence, Value

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
