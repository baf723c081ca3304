"""The paper's analyses (magpie_datasets.analysis): each function, and the same numbers from its
`evaluate` measurement loaded from the package's own files (offline), on data built here."""

from __future__ import annotations

import doctest
import importlib
import io
import itertools

import evaluate
import numpy as np
import pytest
from datasets import Dataset, Features, Value
from matplotlib.figure import Figure

from magpie_datasets import analysis
from magpie_datasets.analysis.coverage import covered_shares
from magpie_datasets.analysis.texts import embed
from magpie_datasets.engines.embedded import EMBEDDED_EMBEDDING_MODEL as MINILM
from magpie_datasets.publish.statistics import summarize
from magpie_datasets.schema import GEN_INPUT_CONFIGS

COOKING_WORDS = (("bake", "roast", "boil", "grill", "fry"), ("chicken", "potatoes", "salmon", "rice", "carrots", "eggs"))
CODE_WORDS = (("sort", "reverse", "copy", "filter", "merge"), ("list", "array", "dictionary", "string"),
              ("Python", "Rust"))


def texts(pattern: str, words: tuple, parity: int | None = None) -> list[str]:
    """Every combination of `words` in `pattern`; with `parity`, a checkerboard half of them
    (each text's neighbours, one word changed, are in the other half)."""
    combos = itertools.product(*(list(enumerate(choices)) for choices in words))
    return [pattern.format(*(w for _, w in combo)) for combo in combos
            if parity is None or sum(i for i, _ in combo) % 2 == parity]


COOKING_PATTERN, CODE_PATTERN = "How long should I {} {} for dinner?", "How do I {} a {} in {}?"
COOKING = texts(COOKING_PATTERN, COOKING_WORDS)
CODE = texts(CODE_PATTERN, CODE_WORDS)


def load(name: str, tmp_path):
    return evaluate.load(analysis.measurement_path(name), cache_dir=str(tmp_path / "evaluate"))


def png(figure) -> bytes:
    assert isinstance(figure, Figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def without_figure(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "figure"}


@pytest.mark.parametrize("name", ["analysis", "analysis.texts", "analysis.distributions", "analysis.ablation",
                                  "analysis.diversity", "analysis.coverage"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(f"magpie_datasets.{name}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0


def test_every_measurement_ships_as_a_module_file_inside_the_package():
    for name in analysis.MEASUREMENTS:
        path = analysis.measurement_path(name)
        assert path.endswith(f"magpie_datasets/analysis/measurements/{name}")
        with open(f"{path}/{name}.py", encoding="utf-8") as module:
            assert "evaluate.Measurement" in module.read()
    with pytest.raises(ValueError, match="no measurement 'diversity'"):
        analysis.measurement_path("diversity")


# ----------------------------------------------------------------------------- coverage


def test_far_clusters_cover_each_other_less_than_a_mixed_set_and_the_measurement_agrees(tmp_path):
    cooking, code = texts(COOKING_PATTERN, COOKING_WORDS, 0), texts(CODE_PATTERN, CODE_WORDS, 0)  # measured
    other_cooking = texts(COOKING_PATTERN, COOKING_WORDS, 1)  # references: the same topics, other texts
    other_code = texts(CODE_PATTERN, CODE_WORDS, 1)
    ds = Dataset.from_dict({"instruction": cooking})
    result = analysis.coverage(ds, {"code": other_code, "cooking": other_cooking}, sample_size=None,
                               embedding_model=MINILM)
    assert result["coverage"]["code"] == 0.0
    assert result["coverage"]["cooking"] >= 0.3
    assert result["sample_sizes"] == {"dataset": 15, "code": 20, "cooking": 15}
    assert result["projection"] == "tsne" and result["embedding_model"] == MINILM
    assert png(result["figure"]).startswith(b"\x89PNG")

    mixed = cooking[:8] + code[:8]
    mixed_result = analysis.coverage(mixed, {"code": other_code}, sample_size=None, embedding_model=MINILM)
    assert mixed_result["coverage"]["code"] >= 0.25

    measured = load("coverage", tmp_path).compute(data=cooking, reference_sets={"code": other_code,
                                                                                "cooking": other_cooking},
                                                   sample_size=None, embedding_model=MINILM)
    assert without_figure(measured) == without_figure(result)
    assert isinstance(measured["figure"], Figure)


def test_coverage_radius_is_the_median_nearest_neighbour_distance_of_the_dataset():
    vectors, _ = embed(COOKING[:10], MINILM)
    radius, shares = covered_shares(vectors, {"same": vectors, "code": embed(CODE[:5], MINILM)[0]})
    squared = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(squared, np.inf)
    assert radius == pytest.approx(float(np.median(squared.min(axis=1))), abs=1e-5)
    assert shares == {"same": 1.0, "code": 0.0}  # every text is its own nearest dataset text


def test_coverage_samples_each_set_and_draws_a_umap_map():
    result = analysis.coverage(COOKING, {"code": CODE}, sample_size=12, projection="umap", seed=3,
                               embedding_model=MINILM)
    assert result["sample_sizes"] == {"dataset": 12, "code": 12}
    assert result["projection"] == "umap" and result["coverage"] == {"code": 0.0}
    assert png(result["figure"]).startswith(b"\x89PNG")


def test_coverage_rejects_bad_input_with_the_fix():
    with pytest.raises(ValueError, match="projection='pca'"):
        analysis.coverage(COOKING, {"code": CODE}, projection="pca")
    with pytest.raises(ValueError, match="at least one reference"):
        analysis.coverage(COOKING, {})
    with pytest.raises(ValueError, match="no column 'prompt'"):
        analysis.coverage(Dataset.from_dict({"instruction": COOKING}), {"code": CODE}, column="prompt")


# ----------------------------------------------------------------------------- topic diversity


def test_duplicated_instructions_lower_topic_diversity_and_the_measurement_agrees(tmp_path):
    distinct = [COOKING[0], CODE[0], "Translate this sentence into French.", "What causes the northern lights?",
                "Write a haiku about autumn.", "Explain how vaccines train the immune system."]
    duplicated = distinct[:3] + [distinct[0]] * 3
    high = analysis.topic_diversity(Dataset.from_dict({"instruction": distinct}), embedding_model=MINILM)
    low = analysis.topic_diversity(Dataset.from_dict({"instruction": duplicated}), embedding_model=MINILM)
    assert low["topic_diversity"] < high["topic_diversity"] - 0.1
    assert (high["sample_size"], high["embedding_model"]) == (6, MINILM)

    vectors, _ = embed(distinct, MINILM)  # the definition, computed the slow way
    distances = 1 - vectors.astype(np.float64) @ vectors.astype(np.float64).T
    off_diagonal = distances[~np.eye(len(distinct), dtype=bool)]
    assert high["topic_diversity"] == pytest.approx(off_diagonal.mean(), abs=1e-6)

    assert load("topic_diversity", tmp_path).compute(data=distinct, embedding_model=MINILM) == high


def test_topic_diversity_records_its_sample_size():
    result = analysis.topic_diversity(COOKING, sample_size=7, seed=1, embedding_model=MINILM)
    assert result["sample_size"] == 7
    assert result != analysis.topic_diversity(COOKING, sample_size=7, seed=2, embedding_model=MINILM)
    with pytest.raises(ValueError, match="at least 2 non-empty texts"):
        analysis.topic_diversity(["only one", "", None])


# ----------------------------------------------------------------------------- root verbs


def test_root_verbs_and_direct_objects_and_the_measurement_agrees(tmp_path):
    texts = ["Write a poem about the sea", "Write a story about a dragon.", "Write a poem for my mother.",
             "Explain recursion to a child.", "Is the sky blue?", "", "Create a list of fruits. Then sort it."]
    result = analysis.root_verbs(Dataset.from_dict({"instruction": texts}))
    assert result["root_verbs"] == [
        {"verb": "write", "count": 3, "objects": [{"noun": "poem", "count": 2}, {"noun": "story", "count": 1}]},
        {"verb": "create", "count": 1, "objects": [{"noun": "list", "count": 1}]},
        {"verb": "explain", "count": 1, "objects": [{"noun": "recursion", "count": 1}]},
    ]
    assert (result["parsed"], result["with_root_verb"]) == (6, 5)  # the empty text is not parsed; "Is" is no verb
    assert result["parser"].startswith("spacy 3.") and "en_core_web_sm" in result["parser"]
    assert png(result["figure"]).startswith(b"\x89PNG")

    measured = load("root_verbs", tmp_path).compute(data=texts, top_verbs=1, top_objects=1)
    assert measured["root_verbs"] == [{"verb": "write", "count": 3, "objects": [{"noun": "poem", "count": 2}]}]
    assert without_figure(measured) == without_figure(analysis.root_verbs(texts, top_verbs=1, top_objects=1))


def test_the_paper_example_write_a_poem():
    (row,) = analysis.root_verbs(["Write a poem about the sea"])["root_verbs"]
    assert (row["verb"], row["objects"][0]["noun"]) == ("write", "poem")


# ----------------------------------------------------------------------------- decoding ablation


def ablation_rows() -> Dataset:
    configs = [{"temperature": t, "top_p": p, "input_generator": "me/model", "seed": i, "pre_query_template": "x"}
               for i, (t, p) in enumerate([(1.0, 1.0), (1.25, 1.0), (1.0, 1.0), (1.0, 0.99), (1.0, 1.0)])]
    return Dataset.from_dict(
        {"gen_input_configs": configs,
         "input_quality": ["excellent", "poor", "good", None, "nonsense"],
         "difficulty": ["very easy", "very hard", "medium", "easy", "hard"],
         "min_neighbor_distance": [0.5, 0.25, None, 1.0, 0.25]},
        features=Features({"gen_input_configs": GEN_INPUT_CONFIGS, "input_quality": Value("string"),
                           "difficulty": Value("string"), "min_neighbor_distance": Value("float64")}),
    )


def test_decoding_ablation_groups_by_temperature_and_top_p_exactly(tmp_path):
    ds = ablation_rows()
    result = analysis.decoding_ablation(ds)
    assert result == {"configurations": [
        {"temperature": 1.0, "top_p": 0.99, "rows": 1, "mean_quality": None, "mean_difficulty": 2.0,
         "mean_min_neighbor_distance": 1.0},
        {"temperature": 1.0, "top_p": 1.0, "rows": 3, "mean_quality": 4.5, "mean_difficulty": 8 / 3,
         "mean_min_neighbor_distance": 0.375},
        {"temperature": 1.25, "top_p": 1.0, "rows": 1, "mean_quality": 2.0, "mean_difficulty": 5.0,
         "mean_min_neighbor_distance": 0.25},
    ]}
    configs = ds["gen_input_configs"]
    measured = load("decoding_ablation", tmp_path).compute(
        temperature=[c["temperature"] for c in configs], top_p=[c["top_p"] for c in configs],
        input_quality=ds["input_quality"], difficulty=ds["difficulty"],
        min_neighbor_distance=ds["min_neighbor_distance"])
    assert measured == result


def test_decoding_ablation_gives_none_for_missing_columns_and_reads_selected_rows(tmp_path):
    ds = ablation_rows().remove_columns(["input_quality", "min_neighbor_distance"]).select([1, 3])
    assert analysis.decoding_ablation(ds)["configurations"] == [
        {"temperature": 1.0, "top_p": 0.99, "rows": 1, "mean_quality": None, "mean_difficulty": 2.0,
         "mean_min_neighbor_distance": None},
        {"temperature": 1.25, "top_p": 1.0, "rows": 1, "mean_quality": None, "mean_difficulty": 5.0,
         "mean_min_neighbor_distance": None},
    ]
    measured = evaluate.load(analysis.measurement_path("decoding_ablation"), cache_dir=str(tmp_path)).compute(
        temperature=[c["temperature"] for c in ds["gen_input_configs"]],
        top_p=[c["top_p"] for c in ds["gen_input_configs"]], difficulty=ds["difficulty"])  # the others: absent
    assert measured == analysis.decoding_ablation(ds)
    with pytest.raises(ValueError, match="run add_magpie_instructions"):
        analysis.decoding_ablation(Dataset.from_dict({"instruction": ["hi"]}))


# ----------------------------------------------------------------------------- distributions


def test_label_and_length_distributions_are_what_the_card_says(tmp_path):
    ds = Dataset.from_dict({
        "input_quality": ["good", "poor", "good", None, "", "excellent", "good"],
        "response_length": [10, 20, None, 30, 40, 50, 60],
    })
    labels = analysis.label_distribution(ds, "input_quality", order=["poor", "excellent"])
    assert labels == {"column": "input_quality", "counts": {"poor": 1, "excellent": 1, "good": 3},
                      "shares": {"poor": 0.2, "excellent": 0.2, "good": 0.6}, "labelled": 5, "unlabelled": 2}
    lengths = analysis.length_distribution(ds, "response_length")
    assert {k: v for k, v in lengths.items() if k != "histogram"} == {
        "column": "response_length", "count": 6, "mean": 35.0, "median": 35.0, "min": 10.0, "max": 60.0}
    assert lengths["histogram"]["counts"] == [1, 1, 1, 1, 2] and lengths["histogram"]["bin_edges"][0] == 10.0

    card = {row["column"]: row["text"] for row in summarize(ds)}
    assert card["input_quality"] == "good 60%, poor 20%, excellent 20%"
    assert card["response_length"] == "mean 35, median 35, min 10, max 60 (6 values)"

    assert load("label_distribution", tmp_path).compute(
        data=ds["input_quality"], column="input_quality", order=["poor", "excellent"]) == labels
    assert load("length_distribution", tmp_path).compute(data=ds["response_length"], column="response_length") \
        == lengths
    assert analysis.length_distribution(["ab", "abcd", None], "instruction")["mean"] == 3.0  # characters
    with pytest.raises(ValueError, match="use length_distribution"):
        analysis.label_distribution(ds, "response_length")
