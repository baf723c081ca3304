"""The examples in the docstrings of the pure modules run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "magpie_datasets.extras",
    "magpie_datasets.engines",
    "magpie_datasets.engines.base",
    "magpie_datasets.engines.models",
    "magpie_datasets.engines.vllm",
    "magpie_datasets.engines.embedding",
    "magpie_datasets.schema.features",
    "magpie_datasets.schema.batches",
    "magpie_datasets.schema.conversations",
    "magpie_datasets.templates.render",
    "magpie_datasets.templates.magpie",
    "magpie_datasets.version",
    "magpie_datasets.stages.table",
    "magpie_datasets.stages.rows",
    "magpie_datasets.stages.texts",
    "magpie_datasets.stages.sanitize",
    "magpie_datasets.stages.generate",
    "magpie_datasets.stages.control",
    "magpie_datasets.stages.filters",
    "magpie_datasets.stages.formats",
    "magpie_datasets.stages.preference",
    "magpie_datasets.stages.safety",
    "magpie_datasets.stages.normalize",
    "magpie_datasets.stages.reasoning",
    "magpie_datasets.runners.ledger",
    "magpie_datasets.analysis",
    "magpie_datasets.publish.analysis_section",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
