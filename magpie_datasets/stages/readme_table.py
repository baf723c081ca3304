"""The README's stage table, written from the stage table:

    python -m magpie_datasets.stages.readme_table README.md

rewrites the text between the README's stage-table markers with `table.markdown_table()`;
tests/test_stage_table.py checks that the README is current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .table import markdown_table

START, END = "<!-- stage table", "<!-- end of stage table -->"


def readme_with_table(readme: str) -> str:
    """`readme` with the text between its stage-table markers replaced by `markdown_table()`."""
    start = readme.index("\n", readme.index(START)) + 1
    end = readme.index(END)
    return f"{readme[:start]}{markdown_table()}\n{readme[end:]}"


def main(paths: list[str]) -> None:
    for path in map(Path, paths or ["README.md"]):
        path.write_text(readme_with_table(path.read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
