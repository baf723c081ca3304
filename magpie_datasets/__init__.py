"""magpie-datasets: Magpie alignment-data synthesis as Hugging Face `datasets` stages.

    import magpie_datasets as magpie
    ds = magpie.empty(100).map(magpie.add_magpie_instructions, batched=True)
    ds = ds.map(magpie.generate_responses, batched=True)
"""

from .embedded import EMBEDDED_CHAT_MODEL
from .generate import add_magpie_instructions, add_responses, empty, generate_responses

__all__ = [
    "EMBEDDED_CHAT_MODEL",
    "add_magpie_instructions",
    "add_responses",
    "empty",
    "generate_responses",
]
