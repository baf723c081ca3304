"""The examples in the package's docstrings run as written: every module that has one is found
by walking the package, so a new module's examples run without being listed anywhere."""

import doctest
import importlib
import pkgutil

import pytest

import magpie_datasets


def modules_with_examples() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(magpie_datasets.__path__, "magpie_datasets."):
        if ".measurements." in info.name:  # evaluate loads these as scripts, by path
            continue
        module = importlib.import_module(info.name)
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            found.append(info.name)
    return found


MODULES = modules_with_examples()


def test_discovery_finds_the_modules_with_examples():
    assert {"magpie_datasets.stages.generate", "magpie_datasets.schema.batches", "magpie_datasets.analysis.texts"} <= set(MODULES)
    assert "magpie_datasets.cli" not in MODULES  # a module without examples is not collected


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
