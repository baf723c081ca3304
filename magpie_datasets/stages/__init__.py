"""The stages: batched `Dataset.map` functions, `Dataset.filter` predicates and whole-dataset steps."""
