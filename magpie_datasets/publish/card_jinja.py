"""The Jinja environment over the card templates shipped in the package (`card_templates/`).

The dataset card, its per-config sections and the analysis section are all rendered from it;
`card.py` and `analysis_section.py` both read it here, so neither imports the other.
"""

from __future__ import annotations

import functools
from importlib import resources

import jinja2

TEMPLATE_FOLDER = "card_templates"  # package data of magpie_datasets.publish
CARD_TEMPLATE = "dataset_card.md.jinja"
SECTION_TEMPLATE = "config_section.md.jinja"
ANALYSIS_TEMPLATE = "analysis_section.md.jinja"


@functools.lru_cache(maxsize=1)
def card_templates() -> jinja2.Environment:
    """The environment that loads `card_templates/<name>` from the installed package."""
    # importlib.resources, not a path next to __file__: it finds package data in any install (wheel, zip, editable)
    folder = resources.files(__package__) / TEMPLATE_FOLDER
    missing = [name for name in (CARD_TEMPLATE, SECTION_TEMPLATE) if not folder.joinpath(name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Card templates {missing} are missing from the installed {__package__} package ({folder}); "
            "reinstall it (pip install --force-reinstall --no-deps magpie-datasets) so its package data is there."
        )
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text(encoding="utf-8")),
        keep_trailing_newline=True, autoescape=False,
    )
