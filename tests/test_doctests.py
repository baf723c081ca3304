"""The examples in the docstrings of the pure modules run as written."""

import doctest

import pytest

import magpie_datasets.engines.base as base
import magpie_datasets.engines.vllm as vllm_engine
import magpie_datasets.recipes as recipes
import magpie_datasets.stages.generate as generate
import magpie_datasets.version as version


@pytest.mark.parametrize("module", [base, vllm_engine, generate, recipes, version], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
