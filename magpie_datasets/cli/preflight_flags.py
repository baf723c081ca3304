"""The two preflight flags `generate` and `build` share: `--check` (the preflight alone) and
`--no-preflight` (start without it)."""

from __future__ import annotations

import argparse


def add_preflight_flags(parser: argparse.ArgumentParser, checks: str) -> None:
    """Add `--check` ("run the preflight alone: check <checks>, then stop") and `--no-preflight`."""
    parser.add_argument("--check", action="store_true", help=f"run the preflight alone: check {checks}, then stop")
    parser.add_argument("--no-preflight", dest="preflight", action="store_false",
                        help="start without the preflight (it runs by default and stops a run that would fail later)")
