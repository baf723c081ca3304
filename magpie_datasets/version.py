"""The package version and code digest, and stage functions that carry them into `datasets` fingerprints.

`Dataset.map` caches its result under a fingerprint of the function and its `fn_kwargs`, and
`datasets` hashes a function imported from a package by its import path alone. After an
upgrade it would then load the rows the old code wrote. A stage decorated with `@versioned`
calls straight through to the function (same signature, name and docstring) and pickles as
(import path, `code_version()`): the package version plus a digest of the package's files.
The version alone stays the same from commit to commit of a source install (git or editable),
so the digest is what gives changed code its own cache entries there.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

try:
    __version__ = version("magpie-datasets")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"


PACKAGE_DIR = Path(__file__).resolve().parent


def is_source(relative: Path) -> bool:
    """Whether a file of the package (path relative to it) is code or package data: not a
    bytecode cache, not hidden (editor and OS droppings)."""
    parts = relative.parts
    return relative.suffix not in (".pyc", ".pyo") and not any(p == "__pycache__" or p.startswith(".") for p in parts)


def source_files(package_dir: Path) -> list[str]:
    """The package's modules and package data (card templates, ...), as sorted relative paths."""
    relative = (path.relative_to(package_dir) for path in package_dir.rglob("*") if path.is_file())
    return sorted(path.as_posix() for path in relative if is_source(path))


def files_digest(package_dir: Path) -> str:
    """sha256 over each source file's relative path and contents (length-prefixed, so no two
    different trees give the same byte stream).

    >>> files_digest(PACKAGE_DIR) == files_digest(PACKAGE_DIR)
    True
    """
    digest = hashlib.sha256()
    for name in source_files(package_dir):
        data = (package_dir / name).read_bytes()
        digest.update(b"%d:%s%d:" % (len(name.encode()), name.encode(), len(data)))
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def source_digest() -> str:
    """`files_digest` of this package, read once per process: the code it runs was loaded once."""
    return files_digest(PACKAGE_DIR)


def code_version() -> str:
    """The package version plus the first 12 hex digits of its source digest, e.g.
    "0.1.0+src.3f2a9c0b7d1e": changes with any edit to the package, released or not.

    >>> code_version() == __version__ + ("." if "+" in __version__ else "+") + "src." + source_digest()[:12]
    True
    """
    # a version that already has a local part ("0+unknown") gets the digest as one more segment
    return f"{__version__}{'.' if '+' in __version__ else '+'}src.{source_digest()[:12]}"


class versioned:
    """`fn` as a stage: callable like it, fingerprinted with the package version and code digest.

    >>> from magpie_datasets import add_magpie_instructions
    >>> add_magpie_instructions.__reduce__()[1] == ("magpie_datasets.stages.generate", "add_magpie_instructions", code_version())
    True
    """

    __qualname__: str  # fn's, set on the instance by functools.update_wrapper
    __wrapped__: Callable[..., Any]

    def __init__(self, fn):
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __reduce__(self):
        return _import_stage, (self.__module__, self.__qualname__, code_version())

    def __repr__(self) -> str:
        return f"<stage {self.__module__}.{self.__qualname__} (magpie-datasets {__version__})>"


def _import_stage(module: str, qualname: str, package_version: str):
    # unpickled in a worker of the same install: the code version only served the fingerprint
    return getattr(importlib.import_module(module), qualname)
