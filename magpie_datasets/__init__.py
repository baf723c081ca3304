"""magpie-datasets: Magpie alignment-data synthesis as Hugging Face `datasets` stages.

    import magpie_datasets as magpie
    ds = magpie.empty(100).map(magpie.add_magpie_instructions, batched=True)
    ds = ds.map(magpie.generate_responses, batched=True)
    ds = ds.map(magpie.tag_with_llm, batched=True)
    ds = magpie.min_neighbor_distance(ds)
    ds = ds.filter(magpie.filters.PAPER["pro-300k"])
"""

from .engines import release_engines
from .engines.embedded import EMBEDDED_CHAT_MODEL
from .publish.hub import push_to_hub, save_for_hub
from .runners.checkpoint import run_resumable
from .stages import filters
from .stages.control import add_controlled_instructions, assign_system_prompts
from .stages.filters import dedup, longest
from .stages.formats import to_messages, to_preference, to_sharegpt
from .stages.generate import (
    add_magpie_instructions,
    add_responses,
    empty,
    generate_responses,
)
from .stages.language import tag_language
from .stages.multiturn import add_turns
from .stages.preference import add_response_samples, to_preference_pairs
from .stages.rewards import add_rewards, reward_diff
from .stages.safety import tag_safety
from .stages.similarity import min_neighbor_distance
from .stages.tags import tag_with_llm
from .templates import (
    ChatTemplate,
    TemplateError,
    chat_prompt,
    describe,
    magpie_template,
    next_user_prefix,
)
from .version import __version__

__all__ = [
    "__version__",
    "EMBEDDED_CHAT_MODEL",
    "ChatTemplate",
    "TemplateError",
    "add_controlled_instructions",
    "add_magpie_instructions",
    "add_response_samples",
    "add_responses",
    "add_rewards",
    "add_turns",
    "assign_system_prompts",
    "chat_prompt",
    "dedup",
    "describe",
    "empty",
    "filters",
    "generate_responses",
    "longest",
    "magpie_template",
    "min_neighbor_distance",
    "next_user_prefix",
    "push_to_hub",
    "release_engines",
    "reward_diff",
    "run_resumable",
    "save_for_hub",
    "tag_language",
    "tag_safety",
    "tag_with_llm",
    "to_messages",
    "to_preference",
    "to_preference_pairs",
    "to_sharegpt",
]
