"""magpie-datasets: Magpie alignment-data synthesis as Hugging Face `datasets` stages.

    import magpie_datasets as magpie
    ds = magpie.empty(100).map(magpie.add_magpie_instructions, batched=True)
    ds = ds.map(magpie.generate_responses, batched=True)
    ds = ds.map(magpie.tag_with_llm, batched=True)
    ds = magpie.min_neighbor_distance(ds)
    ds = ds.filter(magpie.filters.PAPER["pro-300k"])

Every stage of the stage table (`magpie_datasets.stages.table.STAGES`) but the filter
factories, which live in `magpie.filters`, is an attribute of the package.
"""

from .engines import release_engines
from .engines.embedded import EMBEDDED_CHAT_MODEL
from .publish.hub import push_to_hub, save_for_hub
from .runners.checkpoint import run_resumable
from .runners.preflight import preflight
from .runners.responders import compare_responders
from .stages import filters
from .stages.contamination import contamination, contamination_summary
from .stages.control import add_controlled_instructions, assign_system_prompts
from .stages.filters import apply_recipe, dedup, longest
from .stages.formats import to_messages, to_preference, to_sharegpt
from .stages.generate import add_magpie_instructions, empty, generate_responses
from .stages.language import tag_language
from .stages.multiturn import add_turns
from .stages.normalize import normalize
from .stages.preference import add_response_samples, to_preference_pairs
from .stages.reasoning import split_reasoning
from .stages.rewards.stage import add_rewards, reward_diff
from .stages.safety import tag_safety
from .stages.sanitize import sanitize_instruction
from .stages.similarity import min_neighbor_distance
from .stages.tags.stage import tag_with_llm
from .templates import ChatTemplate, TemplateError, chat_prompt, describe, magpie_template, next_user_prefix
from .version import __version__

add_responses = generate_responses  # the release's name for step 2

# every stage of the stage table but the filter factories (in `filters`); tests/test_stage_table.py
# checks that the two agree
__all__ = [
    "ChatTemplate",
    "EMBEDDED_CHAT_MODEL",
    "TemplateError",
    "__version__",
    "add_controlled_instructions",
    "add_magpie_instructions",
    "add_response_samples",
    "add_responses",
    "add_rewards",
    "add_turns",
    "apply_recipe",
    "assign_system_prompts",
    "chat_prompt",
    "compare_responders",
    "contamination",
    "contamination_summary",
    "dedup",
    "describe",
    "empty",
    "filters",
    "generate_responses",
    "longest",
    "magpie_template",
    "min_neighbor_distance",
    "next_user_prefix",
    "normalize",
    "preflight",
    "push_to_hub",
    "release_engines",
    "reward_diff",
    "run_resumable",
    "sanitize_instruction",
    "save_for_hub",
    "split_reasoning",
    "tag_language",
    "tag_safety",
    "tag_with_llm",
    "to_messages",
    "to_preference",
    "to_preference_pairs",
    "to_sharegpt",
]
