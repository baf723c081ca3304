"""The stages: batched `Dataset.map` functions, `Dataset.filter` predicates and whole-dataset steps.

Each stage module declares its own `STAGES` entries; importing the package collects them into
`table.STAGES`, which `columns.require_reads` reads.
"""

from . import table  # noqa: F401  (collects every module's entries)
