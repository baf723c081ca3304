"""How `probe` and `compare-responders` hand back their report: a table or JSON on stdout, and the
JSON in `--output` when given."""

from __future__ import annotations

import json
from typing import Any, Mapping


def print_report(report: Mapping[str, Any], table: str, as_json: bool, output: str | None) -> None:
    """Print `table` (or the JSON report with `as_json`); write the JSON report to `output` too."""
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text if as_json else table)
