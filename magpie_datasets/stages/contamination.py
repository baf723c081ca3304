"""Benchmark contamination (paper appendix D.5): `contamination(ds, reference) -> Dataset`.

    Dataset{instruction, ...}, reference questions (e.g. AlpacaEval 2, Arena-Hard prompts)
    -> Dataset{..., contamination_similarity, contamination_match, contamination_configs}

Instructions and reference questions are embedded with the model of `min_neighbor_distance`
(the paper's all-mpnet-base-v2 when installed, else the embedded all-MiniLM-L6-v2) as unit
vectors, and each row is searched exactly (FAISS `IndexFlatIP`, inner product = cosine on unit
vectors) against all reference questions:

- `contamination_similarity` (float64): cosine similarity to the closest reference question,
  in [-1, 1] (1 = same direction, e.g. an exact copy);
- `contamination_match` (string): that question;
- `contamination_configs` (struct): column, embedding model and its source, threshold,
  reference size.

A row is flagged when its similarity is at or above `threshold` (0.9, the paper's cut-off);
`contamination_summary(ds)` counts flagged rows and the reference questions they match.

Memory: the index holds the reference vectors (questions x dim float32: 10k x 768 is 30 MiB);
rows are read, embedded and searched `chunk_rows` at a time, and the results are two length-N
arrays, so the peak does not grow with N beyond the output columns
(`bench/bench_contamination.py` measures 1M rows x 10k questions).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
from datasets import Dataset, Features, Value
from datasets.features.features import get_nested_type

from ..engines.embedding import embedder
from ..schema import record
from .columns import require_reads
from .entry import Chart, Model, Stage


# the columns this stage writes
CONTAMINATION_CONFIGS = {
    "column": Value("string"),
    "embedding_model": Value("string"),
    "model_source": Value("string"),
    "threshold": Value("float64"),  # cosine similarity at or above which a row is flagged
    "reference_size": Value("int64"),  # number of reference (benchmark) questions searched
}

CONTAMINATION_FEATURES = Features(
    {
        "contamination_similarity": Value("float64"),  # cosine to the closest reference question
        "contamination_match": Value("string"),  # that question
        "contamination_configs": CONTAMINATION_CONFIGS,
    }
)

CONTAMINATION_COLUMNS = tuple(CONTAMINATION_FEATURES)
DEFAULT_THRESHOLD = 0.9  # paper appendix D.5: cosine similarity above 0.9 counts as contaminated
CHUNK_ROWS = 8_192  # rows read, embedded and searched per step


def contamination(
    ds: Dataset,
    reference: Dataset | Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    column: str = "instruction",
    reference_column: str | None = None,
    model: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Dataset:
    """Add `contamination_similarity`, `contamination_match`, `contamination_configs`.

    Input: a `Dataset` with `column` and the benchmark's questions; Output: the same rows with
    the three columns added (columns of the same names are replaced in place). A whole-dataset
    stage (paper appendix D.5).

    ```
    Dataset{"instruction": ["What is the capital of France?", "Write a haiku about rain."]},
    reference=["What's the capital of France?", "Prove that sqrt(2) is irrational."]
    -> + {"contamination_similarity": [0.98, 0.05],
          "contamination_match": ["What's the capital of France?", "Prove that sqrt(2) is irrational."],
          "contamination_configs": [{"column": "instruction", "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
                                     "model_source": ..., "threshold": 0.9, "reference_size": 2}] * 2}
    ```

    Args:
        reference (`Dataset` or `Sequence[str]`): the benchmark's questions each row is compared with
            (paper appendix D.5: the 805 AlpacaEval 2 questions, the Arena-Hard prompts): a list of
            non-empty strings, or a `Dataset` whose `reference_column` holds them. An empty set, an
            empty text or a non-string is a `ValueError`. Their number is recorded in
            `contamination_configs.reference_size`; the closest one goes to `contamination_match`.
        threshold (`float`, *optional*, defaults to `0.9`): the cosine similarity at or above which
            (`>=`) a row counts as contaminated: the paper's cut-off (appendix D.5, similarity above
            0.9 flagged). Must be in [-1, 1] (else `ValueError`). The columns do not depend on it: it
            is recorded in `contamination_configs.threshold`, which `contamination_summary` applies
            when not given another.
        column (`str`, *optional*, defaults to `"instruction"`): the text column that is checked (a
            None text is embedded as ""). Recorded in `contamination_configs.column`.
        reference_column (`str`, *optional*, defaults to `None`): when `reference` is a `Dataset`, its
            column holding the questions. None = the column named like `column` if it has one, else its
            only string column (several or none is a `ValueError`). Ignored for a list.
        model (`str`, *optional*, defaults to `None`): the sentence-transformers embedding model, as in
            `min_neighbor_distance`: None = the paper's all-mpnet-base-v2 when installed, else the
            embedded all-MiniLM-L6-v2; or a local folder or a cached Hub id. Rows and questions are
            embedded with it as unit vectors. Recorded in `contamination_configs.embedding_model` and
            `contamination_configs.model_source`.
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): the encoder's `device`
            (None = sentence-transformers' choice) and `batch_size` (texts per forward pass, 128); any
            other key is a `ValueError`. Not recorded.
        chunk_rows (`int`, *optional*, defaults to `8192`): rows read, embedded and searched per step;
            bounds memory (with the reference vectors) whatever the dataset size, and does not change
            the results. Must be >= 1 (else `ValueError`). Not recorded.
    """
    ds = require_reads(ds, "contamination", (column,))
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"contamination: threshold {threshold!r} is a cosine similarity; pass a value in [-1, 1] (the paper uses 0.9)")
    if chunk_rows < 1:
        raise ValueError(f"contamination: chunk_rows must be a positive integer, got {chunk_rows!r}")
    questions = reference_questions(reference, reference_column, column)
    embed = embedder(model, engine_options, stage="contamination")
    texts = ds.select_columns([column])
    similarity, match = nearest_reference(
        len(ds), lambda rows: embed.encode(_texts(texts, rows)), embed.encode(questions), chunk_rows
    )
    config = record(
        CONTAMINATION_CONFIGS, column=column, embedding_model=embed.model, model_source=embed.source,
        threshold=threshold, reference_size=len(questions),
    )
    columns = {
        "contamination_similarity": pa.array(similarity.astype(np.float64)),
        "contamination_match": pa.array(questions, pa.string()).take(pa.array(match)),
        "contamination_configs": pa.array([config] * len(ds), get_nested_type(CONTAMINATION_CONFIGS)),
    }
    order = ds.column_names + [name for name in CONTAMINATION_COLUMNS if name not in ds.column_names]
    ds = ds.remove_columns([name for name in CONTAMINATION_COLUMNS if name in ds.column_names])
    for name, values in columns.items():
        ds = ds.add_column(name, values)
    return ds.select_columns(order)


def nearest_reference(
    n: int, vectors_of: Callable[[np.ndarray], np.ndarray], reference_vectors: np.ndarray, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarity float32, reference index int64) of the closest reference vector per row.

    `vectors_of(row_indices)` gives the rows' unit vectors, `chunk_rows` rows at a time;
    `reference_vectors` are unit rows. Exact search: FAISS `IndexFlatIP`.
    """
    import faiss

    reference_vectors = np.ascontiguousarray(reference_vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(reference_vectors.shape[1])
    index.add(reference_vectors)
    similarity = np.empty(n, dtype=np.float32)
    match = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk_rows):
        rows = np.arange(start, min(n, start + chunk_rows))
        found_s, found_i = index.search(np.ascontiguousarray(vectors_of(rows), dtype=np.float32), 1)
        similarity[rows], match[rows] = found_s[:, 0], found_i[:, 0]
    np.clip(similarity, -1.0, 1.0, out=similarity)  # float rounding can give 1.0000001 for a copy
    return similarity, match


def contamination_summary(ds: Dataset, threshold: float | None = None) -> dict[str, Any]:
    """How contaminated `ds` is, from the columns `contamination` wrote.

    Input: a `Dataset` with `contamination_similarity`, `contamination_match` and
    `contamination_configs`; Output: a dict of counts (nothing is written to the dataset).

    ```
    {"threshold": 0.9, "rows": 1000, "rows_flagged": 3, "reference_size": 805,
     "questions_matched": 2, "matched_questions": {"What's the capital of France?": 2, "...": 1},
     "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}
    ```
    `matched_questions`: each reference question that is the closest question of a flagged
    row, with its number of flagged rows, most first; `questions_matched` is their count.
    `reference_size` and `embedding_model` come from the first row's `contamination_configs`.

    Args:
        threshold (`float`, *optional*, defaults to `None`): the cosine similarity at or above which
            (`>=`) a row is flagged. None = the threshold `contamination` recorded in the first row's
            `contamination_configs.threshold` (0.9, the paper's cut-off of appendix D.5, by default;
            0.9 too when nothing is recorded). Returned under "threshold".
    """
    ds = require_reads(ds, "contamination_summary", CONTAMINATION_COLUMNS)
    configs = ds.select_columns(["contamination_configs"])[:1]["contamination_configs"]
    config = configs[0] if configs else {}
    if threshold is None:
        threshold = config.get("threshold", DEFAULT_THRESHOLD)
    table = ds.select_columns(["contamination_similarity", "contamination_match"]).with_format("arrow")[:]
    similarity = table["contamination_similarity"].to_numpy(zero_copy_only=False)
    flagged = np.flatnonzero(similarity >= threshold)
    matched = Counter(table["contamination_match"].take(pa.array(flagged)).to_pylist())
    return {
        "threshold": float(threshold),
        "rows": len(ds),
        "rows_flagged": len(flagged),
        "reference_size": config.get("reference_size"),
        "questions_matched": len(matched),
        "matched_questions": dict(sorted(matched.items(), key=lambda item: (-item[1], item[0]))),
        "embedding_model": config.get("embedding_model"),
    }


def reference_questions(reference: Dataset | Sequence[str], reference_column: str | None, column: str) -> list[str]:
    """The reference questions as a list of non-empty strings; one `ValueError` otherwise."""
    if isinstance(reference, Dataset):
        if reference_column is None:
            strings = [name for name, f in reference.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
            if column in reference.column_names:
                reference_column = column
            elif len(strings) == 1:
                reference_column = strings[0]
            else:
                raise ValueError(
                    f"contamination: which column of the reference dataset holds the questions? It has "
                    f"{reference.column_names}; pass reference_column=<name>"
                )
        if reference_column not in reference.column_names:
            raise ValueError(
                f"contamination: the reference dataset has no column {reference_column!r} (it has "
                f"{reference.column_names}); pass reference_column=<the column with the questions>"
            )
        questions = reference[reference_column]
    elif isinstance(reference, (str, bytes)) or not isinstance(reference, Sequence):
        raise ValueError(
            f"contamination: reference is the benchmark's questions, a list of strings or a Dataset; got "
            f"{type(reference).__name__}"
        )
    else:
        questions = list(reference)
    bad = [i for i, q in enumerate(questions) if not isinstance(q, str) or not q.strip()]
    if bad:
        raise ValueError(
            f"contamination: reference question {bad[0]} is {questions[bad[0]]!r} ({len(bad)} empty or not "
            "strings); drop them before the check"
        )
    if not questions:
        raise ValueError(
            "contamination: the reference set is empty; pass the benchmark's questions (a list of strings or a "
            "Dataset with reference_column)"
        )
    return questions


def _texts(ds: Dataset, rows: np.ndarray) -> list[str]:
    values = ds[int(rows[0]) : int(rows[-1]) + 1]  # rows are contiguous chunks
    return ["" if text is None else text for text in next(iter(values.values()))]


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("contamination", contamination, "dataset",
          "cosine similarity to the closest benchmark question (FAISS), for a contamination check",
          reads=("instruction",), writes=CONTAMINATION_FEATURES,
          models=(Model("model", "embedder", engine=None),),
          charts=(Chart("contamination_similarity", "Similarity to the closest benchmark question", "histogram"),)),
)
