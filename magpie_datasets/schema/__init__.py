"""The columns: every stage's output `Features`, the label vocabularies, and row helpers.

Names and types follow the authors' published Magpie datasets (see docs/design.md, Columns),
so our output and theirs concatenate and load back with the same features. Columns the
published sets do not have are ours: `*_issue` (why a row may be unusable) and `*_configs`
(the settings that decided a stage's output, recorded per row with `record`).

Modules: `features` (vocabularies, configs, `Features`), `batches` (`record`, `typed_batch`,
`require_columns`), `conversations` (`conversation_uuid`, ShareGPT turns).
"""

from datasets import Value

from .batches import (
    MissingColumnError,
    TypedList,
    batch_size_of,
    record,
    require_columns,
    typed_batch,
)
from .conversations import conversation_uuid, to_conversations
from .features import (
    CONVERSATIONS,
    DIFFICULTY_LABELS,
    GEN_INPUT_CONFIGS,
    GEN_RESPONSE_CONFIGS,
    INSTRUCTION_FEATURES,
    INSTRUCTION_OPTIONS,
    MESSAGES,
    NORMALIZED_FEATURES,
    QUALITY_LABELS,
    RESPONSE_FEATURES,
    TASK_CATEGORIES,
)

__all__ = [
    "CONVERSATIONS",
    "DIFFICULTY_LABELS",
    "GEN_INPUT_CONFIGS",
    "GEN_RESPONSE_CONFIGS",
    "INSTRUCTION_FEATURES",
    "INSTRUCTION_OPTIONS",
    "MESSAGES",
    "MissingColumnError",
    "NORMALIZED_FEATURES",
    "QUALITY_LABELS",
    "RESPONSE_FEATURES",
    "TASK_CATEGORIES",
    "TypedList",
    "Value",
    "batch_size_of",
    "conversation_uuid",
    "record",
    "require_columns",
    "to_conversations",
    "typed_batch",
]
