"""The package version, and stage functions that carry it into `datasets` fingerprints.

`Dataset.map` caches its result under a fingerprint of the function and its `fn_kwargs`, and
`datasets` hashes a function imported from a package by its import path alone. After an
upgrade it would then load the rows the old code wrote. A stage decorated with `@versioned`
calls straight through to the function (same signature, name and docstring) and pickles as
(import path, package version), so each release gets its own cache entries.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("magpie-datasets")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"


class versioned:
    """`fn` as a stage: callable like it, fingerprinted with the package version.

    >>> from magpie_datasets import add_magpie_instructions
    >>> add_magpie_instructions.__reduce__()[1] == ("magpie_datasets.stages.generate", "add_magpie_instructions", __version__)
    True
    """

    def __init__(self, fn):
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __reduce__(self):
        return _import_stage, (self.__module__, self.__qualname__, __version__)

    def __repr__(self) -> str:
        return f"<stage {self.__module__}.{self.__qualname__} (magpie-datasets {__version__})>"


def _import_stage(module: str, qualname: str, package_version: str):
    # unpickled in a worker of the same install: the version only served the fingerprint
    return getattr(importlib.import_module(module), qualname)
