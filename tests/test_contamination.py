"""contamination: real all-MiniLM-L6-v2 embeddings (embedded package), real FAISS, planted copies."""



import numpy as np
import pytest
from datasets import Dataset, Features, Value

import magpie_datasets as magpie
from magpie_datasets.engines.embedding import default_embedding_model, embedder
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.contamination import CONTAMINATION_FEATURES
from magpie_datasets.stages.contamination import (
    contamination,
    contamination_summary,
    nearest_reference,
)
from magpie_datasets.stages.table import stage

# A benchmark of our own (no benchmark set ships offline).
REFERENCE = [
    "What is the capital of Australia?",
    "Write a limerick about a cat who loves cheese.",
    "Explain the difference between TCP and UDP.",
    "How do I reverse a linked list in Python?",
    "What are the health benefits of green tea?",
    "Summarize the causes of World War I.",
    "Give me a recipe for vegan chocolate chip cookies.",
    "Prove that the square root of 2 is irrational.",
]
UNRELATED = [
    "Write a haiku about autumn leaves.",
    "Plan a three-day trip to Kyoto.",
    "How does a blockchain work?",
    "Solve for x: 2x + 3 = 11.",
    "Describe the water cycle.",
    "Recommend a science fiction novel for a teenager.",
    "What is a black hole?",
    "How do vaccines train the immune system?",
    "Write a SQL query that counts orders per customer.",
    "What causes the seasons on Earth?",
    "Suggest a name for a golden retriever puppy.",
    # same topic as a reference question, a different question: must stay below 0.9 (0.50-0.71)
    "What is the population of Australia?",
    "How do I reverse a string in Python?",
    "What are the health risks of coffee?",
]
# planted rows -> the reference question each copies (cosine 0.95-1.0 under MiniLM, 0.93-1.0 under mpnet)
PLANTED = {
    "Explain the difference between TCP and UDP.": 2,  # exact copies
    "Prove that the square root of 2 is irrational.": 7,
    "What's the capital city of Australia?": 0,  # paraphrases
    "Explain the differences between TCP and UDP.": 2,
    "How can I reverse a linked list using Python?": 3,
    "Summarise the causes of World War One.": 5,
    "Write a limerick about a cheese-loving cat.": 1,
}


def _rows():
    """Unrelated rows with the planted ones interleaved at fixed positions."""
    rows = list(UNRELATED)
    for offset, text in enumerate(PLANTED):
        rows.insert(2 * offset + 1, text)
    return rows


def _dataset():
    texts = _rows()
    return Dataset.from_dict({"uuid": [f"u{i:02d}" for i in range(len(texts))], "instruction": texts})


@pytest.fixture(scope="module")
def checked():
    return contamination(_dataset(), REFERENCE)


def test_exactly_the_planted_rows_are_flagged(checked):
    flagged = [i for i, s in enumerate(checked["contamination_similarity"]) if s >= 0.9]
    texts = checked["instruction"]
    assert flagged == [i for i, t in enumerate(texts) if t in PLANTED]
    assert len(flagged) == len(PLANTED) == 7
    for i in flagged:
        assert checked[i]["contamination_match"] == REFERENCE[PLANTED[texts[i]]]
    for i, text in enumerate(texts):
        if text in REFERENCE:  # exact copies: cosine 1 (clipped, never above)
            assert checked[i]["contamination_similarity"] == pytest.approx(1.0, abs=1e-5)
        if text not in PLANTED:
            assert checked[i]["contamination_similarity"] < 0.8  # far from the threshold, not near it
    assert max(checked["contamination_similarity"]) <= 1.0


def test_columns_match_brute_force_cosine(checked):
    encode = embedder().encode
    similarity = encode(_rows()) @ encode(REFERENCE).T
    np.testing.assert_allclose(checked["contamination_similarity"], np.clip(similarity.max(axis=1), -1, 1), atol=1e-5)
    assert checked["contamination_match"] == [REFERENCE[j] for j in similarity.argmax(axis=1)]


def test_schema_and_configs(checked):
    assert checked.column_names == ["uuid", "instruction", *CONTAMINATION_FEATURES]
    assert checked.features["contamination_similarity"] == Value("float64")
    assert checked[0]["contamination_configs"] == {
        "column": "instruction", "embedding_model": default_embedding_model(),
        "model_source": checked[0]["contamination_configs"]["model_source"], "threshold": 0.9, "reference_size": 8,
    }
    assert checked[0]["contamination_configs"]["model_source"].startswith("PyPI ")  # the embedded MiniLM or mpnet


def test_summary_counts_questions_and_rows(checked):
    summary = contamination_summary(checked)
    assert summary == {
        "threshold": 0.9, "rows": len(UNRELATED) + len(PLANTED), "rows_flagged": 7, "reference_size": 8,
        "questions_matched": 6,
        "matched_questions": {REFERENCE[2]: 2, **{REFERENCE[j]: 1 for j in (0, 1, 3, 5, 7)}},
        "embedding_model": default_embedding_model(),
    }
    assert list(summary["matched_questions"])[0] == REFERENCE[2]  # most rows first
    # a stricter threshold keeps the exact copies only
    strict = contamination_summary(checked, threshold=0.999)
    assert (strict["rows_flagged"], strict["questions_matched"]) == (2, 2)
    assert set(strict["matched_questions"]) == {REFERENCE[2], REFERENCE[7]}
    # the threshold recorded by the check is the summary's default
    recorded = contamination_summary(contamination(_dataset(), REFERENCE, threshold=0.97))
    assert recorded["threshold"] == 0.97 and recorded["rows_flagged"] == 5  # the two looser paraphrases drop out


def test_summary_questions_matched_equals_distinct_reference_hits(checked):
    # 6 distinct questions: reference 2 is matched twice (one exact copy, one paraphrase)
    summary = contamination_summary(checked)
    assert summary["questions_matched"] == len(summary["matched_questions"]) == 6
    assert sum(summary["matched_questions"].values()) == summary["rows_flagged"]


def test_reference_dataset_chunks_and_selection_give_the_same_columns(checked):
    reference = Dataset.from_dict({"id": list(range(len(REFERENCE))), "prompt": REFERENCE})
    by_only_string_column = contamination(_dataset(), reference, chunk_rows=3)
    named = contamination(_dataset(), Dataset.from_dict({"turns": REFERENCE, "category": ["x"] * 8}),
                          reference_column="turns")
    for out in (by_only_string_column, named):
        np.testing.assert_allclose(out["contamination_similarity"], checked["contamination_similarity"], atol=1e-6)
        assert out["contamination_match"] == checked["contamination_match"]
    # through an indices mapping, replacing columns of a previous check in place
    subset = checked.select([13, 5])  # the limerick and the capital paraphrases
    again = contamination(subset, REFERENCE[:2])
    assert again.column_names == checked.column_names
    assert again["uuid"] == ["u13", "u05"]
    assert again["contamination_match"] == [REFERENCE[1], REFERENCE[0]]
    assert again[0]["contamination_configs"]["reference_size"] == 2


def test_empty_dataset():
    empty = Dataset.from_dict({"instruction": []}, features=Features({"instruction": Value("string")}))
    out = contamination(empty, REFERENCE)
    assert len(out) == 0 and out.column_names == ["instruction", *CONTAMINATION_FEATURES]
    assert contamination_summary(out)["rows_flagged"] == 0


def test_bad_input_is_one_clear_error():
    ds = _dataset()
    with pytest.raises(ValueError, match="reference set is empty"):
        contamination(ds, [])
    with pytest.raises(ValueError, match="reference set is empty"):
        contamination(ds, Dataset.from_dict({"instruction": []}, features=Features({"instruction": Value("string")})))
    with pytest.raises(MissingColumnError, match="contamination needs column 'instruction'"):
        contamination(Dataset.from_dict({"prompt": ["a"]}), REFERENCE)
    with pytest.raises(MissingColumnError, match="'prompt'"):
        contamination(ds, REFERENCE, column="prompt")
    with pytest.raises(ValueError, match="no column 'question'.*reference_column"):
        contamination(ds, Dataset.from_dict({"turns": REFERENCE}), reference_column="question")
    with pytest.raises(ValueError, match="which column.*reference_column"):
        contamination(ds, Dataset.from_dict({"a": REFERENCE, "b": REFERENCE}))
    with pytest.raises(ValueError, match="list of strings or a Dataset; got str"):
        contamination(ds, "What is the capital of Australia?")
    with pytest.raises(ValueError, match="reference question 1 is None"):
        contamination(ds, ["What?", None])
    with pytest.raises(ValueError, match="threshold 1.5.*\\[-1, 1\\]"):
        contamination(ds, REFERENCE, threshold=1.5)
    with pytest.raises(ValueError, match="contamination: unknown engine_options key 'tp'; .* device, batch_size"):
        contamination(ds, REFERENCE, engine_options={"tp": 2})
    with pytest.raises(MissingColumnError, match="contamination_summary needs column 'contamination_similarity'"):
        contamination_summary(ds)


def test_exact_search_matches_numpy_on_vectors():
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((300, 64)).astype(np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    rows = rng.standard_normal((1_000, 64)).astype(np.float32)
    rows[::10] = reference[rng.integers(0, 300, 100)]  # planted copies
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    similarity, match = nearest_reference(len(rows), lambda r: rows[r], reference, chunk_rows=97)
    full = rows @ reference.T
    np.testing.assert_allclose(similarity, full.max(axis=1), atol=1e-5)
    assert (match == full.argmax(axis=1)).all()
    assert (similarity[::10] > 0.9999).all() and (np.delete(similarity, np.s_[::10]) < 0.6).all()


def test_the_stage_is_in_the_table_and_exported():
    entry = stage("contamination")
    assert entry.kind == "dataset" and entry.function is contamination is magpie.contamination
    assert list(entry.writes) == list(CONTAMINATION_FEATURES)
