"""Every published Magpie schema under the current column names.

The authors' datasets were published over several releases, and their column names moved:

    ds = load_dataset("Magpie-Align/Llama-3-Magpie-Air-3M-v0.1", split="train")
    ds = ds.map(magpie.normalize, batched=True)    # + instruction, response, gen_input_configs, ...
    ds = ds.map(magpie.tag_language, batched=True)  # reads `instruction`

Each known variant is a row of `columns.VARIANTS`: the columns it publishes under an older name, and
the fields of its `gen_input_configs` struct that moved. `normalize` adds the current columns
as copies and keeps every published column (drop them with `remove_columns` if wanted).

Stages need not be told: a stage that misses a column it reads sees the batch through these
renames (`columns.require_reads`), and a whole-dataset stage renames the columns it reads with
`Dataset.rename_column` (metadata only, no copy of the rows). Run `normalize` yourself to keep
the originals beside the current names, or to concatenate a variant with newer data.
"""

from __future__ import annotations

from typing import Any, Mapping

from datasets import Features, Value

from ..schema import GEN_INPUT_CONFIGS, NORMALIZED_FEATURES, typed_batch
from ..version import versioned
from .columns import CONFIGS, VARIANTS, renames
from .entry import Stage

@versioned
def normalize(batch: Mapping[str, list]) -> dict[str, list]:
    """Batched map: the current columns of a published variant, as copies; published columns stay.

    Input: a batch of any published Magpie schema (`VARIANTS`: Air-3M v0.1's `input` / `output`,
    the Phi-3 and Qwen2 sets' `extract_input`, Reasoning-V2's `conversation_id`, the DPO sets'
    `input_length`); Output: only the current columns it adds or completes (`uuid`, `instruction`,
    `response`, `gen_input_configs`, `instruction_length`, `response_length`, `min_similar_uuid`),
    which `Dataset.map` adds beside the published ones. No options: which renames apply is read
    from the batch's own columns.

    ```
    {"input": ["Hi?"], "output": ["Hello!"], "gen_input_config": [{"temperature": 1.0, "top_p": 1.0}],
     "input_length": [3], "output_length": [6]}                                 # Air-3M v0.1
    -> {"instruction": ["Hi?"], "response": ["Hello!"], "instruction_length": [3], "response_length": [6],
        "gen_input_configs": [{"temperature": 1.0, "top_p": 1.0, "input_generator": None, "seed": None,
                               "pre_query_template": None}]}
    {"gen_input_configs": [{..., "extract_input": "<|user|>\\n"}]}               # Phi-3, Qwen2
    -> {"gen_input_configs": [{..., "extract_input": "<|user|>\\n", "pre_query_template": "<|user|>\\n"}]}
    {"conversation_id": ["c0"], ...}                                            # Reasoning-V2
    -> {"uuid": ["c0"]}
    {"input_length": [344], "gen_input_configs": [{"temperature": 1.1, "top_p": 1.0}], ...}   # data_po/
    -> {"instruction_length": [344], "gen_input_configs": [{"temperature": 1.1, "top_p": 1.0,
                                     "input_generator": None, "seed": None, "pre_query_template": None}]}
    ```

    A batch already in the current schema gives `{}` (nothing to add). `gen_input_configs`
    gets every current field (None where the release had none), so a normalized variant
    concatenates with newer rows; its published fields (e.g. `extract_input`) stay in it.

    >>> normalize({"conversation_id": ["c0"], "instruction": ["Hi?"]})
    {'uuid': ['c0']}
    """
    found = renames(batch.keys())
    out = {new: list(batch[old]) for new, old in found.items()}
    configs = out.pop(CONFIGS, batch.get(CONFIGS))
    out = typed_batch(out, NORMALIZED_FEATURES)
    if configs is not None:
        filled = [_current_configs(value) for value in configs]
        if CONFIGS in found or any(new is not old for new, old in zip(filled, configs)):
            out[CONFIGS] = _typed_configs(filled)
    return out


_MOVED_FIELDS = {old: new for v in VARIANTS for old, new in v.config_fields}


def _current_configs(value: Any) -> Any:
    """One row's gen_input_configs with the current fields (the same object if it has them all)."""
    if not isinstance(value, Mapping) or set(GEN_INPUT_CONFIGS) <= set(value):
        return value
    moved = {new: value[old] for old, new in _MOVED_FIELDS.items() if old in value and new not in value}
    return {**{name: None for name in GEN_INPUT_CONFIGS}, **value, **moved}


def _typed_configs(values: list) -> list:
    # typed as the current struct plus the published extras, so a batch of all-None fields
    # (no seed anywhere) keeps its type in `Dataset.map`
    extras = sorted({k for v in values if isinstance(v, Mapping) for k in v} - set(GEN_INPUT_CONFIGS))
    if set(extras) <= set(_MOVED_FIELDS):
        features = Features({CONFIGS: {**GEN_INPUT_CONFIGS, **{k: Value("string") for k in extras}}})
        return typed_batch({CONFIGS: values}, features)[CONFIGS]
    return values


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("normalize", normalize, "map",
          "a published variant's columns under the current names (Air-3M v0.1, Phi-3, Reasoning-V2, DPO)",
          writes=NORMALIZED_FEATURES),
)
