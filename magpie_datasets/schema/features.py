"""The label vocabularies and the columns several stages share (steps 1 and 2, conversations), as in
the published data. A stage's own columns are declared in its module, beside its `STAGES` entry."""

from __future__ import annotations


from datasets import Features, Sequence, Value

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
    "instruction_prefix": Value("string"),  # Magpie-Prefill: the text the user turn was started with; ours
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

# --- shared by several stages' columns -----------------------------------------------------

MESSAGES = [{"role": _s, "content": _s}]
