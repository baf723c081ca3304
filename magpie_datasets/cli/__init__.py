"""`magpie-datasets` command line: the same stages the library exports, end to end."""

from __future__ import annotations

import argparse
import os

from .analyze import add_analyze_parser, cmd_analyze
from .build import add_build_parser, cmd_build, overrides_from_args
from .compare_responders import add_compare_responders_parser, cmd_compare_responders
from .generate import (
    EMBEDDED_DEFAULTS,
    PAPER_DEFAULTS,
    add_generate_parser,
    cmd_generate,
    fill_model_defaults,
    generate_steps,
)
from .probe import add_probe_parser, cmd_probe
from .template import add_template_parser, cmd_template

# One module a command: `template`, `generate`, `probe`, `build`, `analyze`, `compare-responders`, each with its
# `add_<command>_parser` and `cmd_<command>`; here the parser of them all and `main`.
__all__ = [
    "EMBEDDED_DEFAULTS",
    "PAPER_DEFAULTS",
    "add_build_parser",
    "build_parser",
    "cmd_analyze",
    "cmd_build",
    "cmd_compare_responders",
    "cmd_generate",
    "cmd_probe",
    "cmd_template",
    "fill_model_defaults",
    "generate_steps",
    "main",
    "overrides_from_args",
    "user_errors",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magpie-datasets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_template_parser(sub)
    add_generate_parser(sub)
    add_probe_parser(sub)
    add_build_parser(sub)
    add_analyze_parser(sub)
    add_compare_responders_parser(sub)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean bad input, not a bug: each is shown as one line, without a traceback."""
    from ..engines import ModelNotAvailableError
    from ..engines.embedded import EmbeddedModelMissing
    from ..runners.run_identity import CheckpointMismatchError
    from ..schema import MissingColumnError
    from ..stages.rewards.loading import RewardModelError

    # RecipeError, PreflightError and TemplateError are ValueErrors; a stage's bad option is one too
    return (ValueError, ModelNotAvailableError, EmbeddedModelMissing, CheckpointMismatchError, MissingColumnError,
            RewardModelError, FileNotFoundError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input ends in `SystemExit("magpie-datasets CMD: error: ...")`: Python
    prints that one line (a preflight that found several problems lists them a line each) and
    exits with status 1, without a traceback; `MAGPIE_TRACEBACK=1` shows where it was raised."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except user_errors() as err:
        if os.environ.get("MAGPIE_TRACEBACK"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise SystemExit(f"magpie-datasets {args.command}: error: {message}") from None

