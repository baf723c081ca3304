"""min_neighbor_distance: real all-MiniLM-L6-v2 embeddings (embedded package), real FAISS."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from datasets import Dataset, Features, Value

from magpie_datasets.engines import ModelNotAvailableError
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.similarity import min_neighbor_distance, neighbor_stats

DISTINCT = [
    "How do I bake sourdough bread at home?",
    "What is the capital of Australia?",
    "Write a haiku about autumn leaves.",
    "Explain how photosynthesis works.",
    "Give me three tips for improving my sleep.",
    "Translate 'good morning' into Spanish.",
    "What are the main causes of inflation?",
    "Write a Python function that reverses a string.",
    "How many moons does Jupiter have?",
    "Suggest a name for a golden retriever puppy.",
    "What is the difference between a virus and a bacterium?",
    "Plan a three-day trip to Kyoto.",
    "Solve for x: 2x + 3 = 11.",
    "Summarize the plot of Romeo and Juliet.",
    "How can I improve my public speaking skills?",
    "What is a black hole?",
    "Write a limerick about a cat who loves cheese.",
    "Explain the rules of chess to a beginner.",
    "What are some healthy breakfast ideas?",
    "How does a blockchain work?",
    "Recommend a science fiction novel for a teenager.",
    "Describe the water cycle.",
    "How do vaccines train the immune system?",
    "Write a SQL query that counts orders per customer.",
    "What causes the seasons on Earth?",
    "How do I change a flat tire on a bicycle?",
    "What is the Pythagorean theorem?",
    "Compose a short poem about the ocean at night.",
    "Can you bake sourdough bread without a starter?",  # related to row 0, but not a duplicate
]
# Planted near-duplicates (rows appended after DISTINCT) -> the row they copy.
NEAR = {
    "How do I bake sourdough bread at home": 0,
    "Explain how photosynthesis works?": 3,
    "Write a python function that reverses a string": 7,
    "Summarise the plot of Romeo and Juliet.": 13,
}
EXACT_COPIES = 2  # two more exact copies of DISTINCT[15]: three identical rows in all


def _texts():
    return DISTINCT + list(NEAR) + [DISTINCT[15]] * EXACT_COPIES


def _dataset():
    texts = _texts()
    return Dataset.from_dict({"uuid": [f"u{i:02d}" for i in range(len(texts))], "instruction": texts})


def _groups():
    """Expected duplicate groups as sets of row indices (planted by construction)."""
    n = len(DISTINCT)
    groups = [{row, n + j} for j, row in enumerate(NEAR.values())]
    groups.append({15, n + len(NEAR), n + len(NEAR) + 1})
    return groups


@pytest.fixture(scope="module")
def tagged():
    return min_neighbor_distance(_dataset())


@pytest.fixture(scope="module")
def brute_force_distances():
    from sentence_transformers import SentenceTransformer

    from magpie_datasets.engines.embedded import minilm_dir

    vectors = SentenceTransformer(minilm_dir(), device="cpu").encode(_texts(), normalize_embeddings=True)
    diff = vectors[:, None, :] - vectors[None, :, :]
    squared = (diff**2).sum(-1)
    np.fill_diagonal(squared, np.inf)
    return squared


def test_planted_duplicates_are_found_and_only_they(tagged):
    rows = tagged.to_list()
    expected = {}
    for group in _groups():
        first = min(group)
        for i in group:
            expected[i] = (len(group) - 1, f"u{first:02d}")
    for i, row in enumerate(rows):
        if i in expected:
            assert (row["repeat_count"], row["min_similar_uuid"]) == expected[i], row
            assert row["min_neighbor_distance"] < 0.05
        else:
            assert row["repeat_count"] == 0, row
            assert row["min_similar_uuid"] is None, row
            assert row["min_neighbor_distance"] >= 0.05


def test_distances_match_brute_force_squared_l2(tagged, brute_force_distances):
    got = np.array(tagged["min_neighbor_distance"])
    np.testing.assert_allclose(got, brute_force_distances.min(axis=1), atol=1e-4)
    # the related-but-different paraphrase of row 0 stays outside the threshold
    assert got[len(DISTINCT) - 1] > 0.05


def test_exact_duplicates_are_never_their_own_neighbour(tagged):
    copies = [15, len(DISTINCT) + len(NEAR), len(DISTINCT) + len(NEAR) + 1]
    for i in copies:
        row = tagged[i]
        assert row["min_neighbor_distance"] == pytest.approx(0.0, abs=1e-5)
        assert row["repeat_count"] == 2  # the two OTHER copies, never itself
        assert row["min_similar_uuid"] == "u15"  # the first copy points to itself


def test_dedup_semantics_keep_one_row_per_group(tagged):
    kept = [r["uuid"] for r in tagged if r["min_similar_uuid"] in (None, r["uuid"])]
    assert len(kept) == len(DISTINCT)
    assert kept == [f"u{i:02d}" for i in range(len(DISTINCT))]


def test_approximate_index_on_text_agrees_on_duplicates(tagged):
    # Force the IVF path on the same rows: the duplicate columns must come out identical.
    approx = min_neighbor_distance(_dataset(), exact_max_rows=10)
    assert approx["repeat_count"] == tagged["repeat_count"]
    assert approx["min_similar_uuid"] == tagged["min_similar_uuid"]


def test_approximate_index_recall_on_planted_duplicates():
    # Random unit vectors (hard for IVF: no cluster structure) with near-duplicate pairs at
    # squared distance 0.02-0.04 (close to the threshold) and one group of 40 exact copies
    # (more than the k asked first, so the search must widen).
    rng = np.random.default_rng(7)
    n, dim, pairs = 12_000, 256, 400
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = rng.permutation(n)
    originals, copies, group = rows[:pairs], rows[pairs : 2 * pairs], rows[2 * pairs : 2 * pairs + 40]
    noisy = vectors[originals] + rng.normal(0, 0.011, (pairs, dim)).astype(np.float32)
    vectors[copies] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    assert (((vectors[copies] - vectors[originals]) ** 2).sum(axis=1) < 0.05).all()
    vectors[group] = vectors[group[0]]

    stats = neighbor_stats(vectors, threshold=0.05, exact_max_rows=1_000)  # IVF: 256 lists, 16 probed
    found = np.mean(stats.first_similar[np.maximum(originals, copies)] == np.minimum(originals, copies))
    assert found >= 0.99
    assert set(np.flatnonzero(stats.repeat_count)) <= set(originals) | set(copies) | set(group)
    assert (stats.repeat_count[group] == 39).all()
    assert (stats.first_similar[group] == group.min()).all()
    assert (stats.distance[group] == 0).all()

    exact = neighbor_stats(vectors, threshold=0.05, exact_max_rows=n)
    assert np.mean(exact.first_similar == stats.first_similar) >= 0.99
    assert (stats.distance >= exact.distance - 1e-5).all()  # IVF can only miss, never invent, neighbours


def test_published_schema_input_replaces_existing_columns_and_honours_select():
    texts = _texts()
    features = Features(
        {
            "uuid": Value("string"),
            "instruction": Value("string"),
            "min_neighbor_distance": Value("float64"),
            "repeat_count": Value("int64"),
            "min_similar_uuid": Value("string"),
            "language": Value("string"),
        }
    )
    ds = Dataset.from_dict(
        {
            "uuid": [f"u{i:02d}" for i in range(len(texts))],
            "instruction": texts,
            "min_neighbor_distance": [9.0] * len(texts),
            "repeat_count": [7] * len(texts),
            "min_similar_uuid": ["stale"] * len(texts),
            "language": ["EN"] * len(texts),
        },
        features=features,
    )
    # rows 15 and the last copy of it, selected through an indices mapping
    subset = ds.select([len(texts) - 1, 2, 15])
    out = min_neighbor_distance(subset)
    assert out.column_names == [*features, "neighbor_configs"]
    assert out["uuid"] == [f"u{len(texts) - 1:02d}", "u02", "u15"]
    assert out["repeat_count"] == [1, 0, 1]
    assert out["min_similar_uuid"] == [f"u{len(texts) - 1:02d}", None, f"u{len(texts) - 1:02d}"]
    assert out.features["min_neighbor_distance"] == Value("float64")


def test_single_and_empty_datasets():
    one = min_neighbor_distance(Dataset.from_dict({"uuid": ["a"], "instruction": ["Hello there"]}))
    row = one[0]
    config = row.pop("neighbor_configs")
    assert row == {"uuid": "a", "instruction": "Hello there", "min_neighbor_distance": None,
                      "repeat_count": 0, "min_similar_uuid": None}
    assert config["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2" and config["threshold"] == 0.05
    assert (config["index"], config["nprobe"], config["column"]) == ("exact", None, "instruction")
    empty = Dataset.from_dict({"uuid": [], "instruction": []}, features=Features(
        {"uuid": Value("string"), "instruction": Value("string")}))
    out = min_neighbor_distance(empty)
    assert len(out) == 0 and "min_similar_uuid" in out.column_names


def test_missing_uuid_names_the_stage():
    with pytest.raises(MissingColumnError, match="uuid.*empty"):
        min_neighbor_distance(Dataset.from_dict({"instruction": ["a", "b"]}))
    with pytest.raises(MissingColumnError, match="'instruction'.*add_magpie_instructions"):
        min_neighbor_distance(Dataset.from_dict({"uuid": ["a"], "prompt": ["b"]}))


def test_unavailable_named_model_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="all-mpnet-base-v2"):
        min_neighbor_distance(_dataset(), model="all-mpnet-base-v2")


def test_published_rows_keep_their_schema():
    from datasets import concatenate_datasets

    from tests.published_sample import PUBLISHED_FEATURES, published_dataset

    ds = published_dataset()
    copy = ds.select([4]).map(lambda row: {"uuid": "copy-of-row-4"})
    out = min_neighbor_distance(concatenate_datasets([ds, copy]))
    assert Features({k: v for k, v in out.features.items() if k != "neighbor_configs"}) == PUBLISHED_FEATURES
    first = ds[4]["uuid"]
    assert [i for i, c in enumerate(out["repeat_count"]) if c] == [4, len(ds)]
    assert out[4]["min_similar_uuid"] == out[len(ds)]["min_similar_uuid"] == first
    # the fixture's hand-written "near-duplicate" pair is 0.13 apart under MiniLM: not within 0.05
    assert out[5]["min_similar_uuid"] is None and out[5]["min_neighbor_distance"] > 0.05
