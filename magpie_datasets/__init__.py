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
from .stages import filters
from .stages.contamination import contamination_summary
from .stages.control import assign_system_prompts
from .stages.sanitize import sanitize_instruction
from .stages.table import STAGES
from .templates import ChatTemplate, TemplateError, chat_prompt, describe, magpie_template, next_user_prefix
from .version import __version__

_STAGE_EXPORTS = {
    name: stage.function for stage in STAGES if stage.kind != "filter" for name in (stage.name, *stage.aliases)
}
globals().update(_STAGE_EXPORTS)

__all__ = sorted([
    "__version__",
    "EMBEDDED_CHAT_MODEL",
    "ChatTemplate",
    "TemplateError",
    "assign_system_prompts",
    "contamination_summary",
    "chat_prompt",
    "describe",
    "filters",
    "magpie_template",
    "next_user_prefix",
    "preflight",
    "push_to_hub",
    "release_engines",
    "run_resumable",
    "sanitize_instruction",
    "save_for_hub",
    *_STAGE_EXPORTS,
])
