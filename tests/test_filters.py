"""Filters: each preset keeps exactly the rows its rules select, single-row and batched."""

import pytest
from datasets import Dataset, Features, List, Value

from magpie_datasets import filters
from magpie_datasets.schema import MissingColumnError

FEATURES = Features(
    {
        "uuid": Value("string"),
        "instruction": Value("string"),
        "response": Value("string"),
        "conversations": List({"from": Value("string"), "value": Value("string")}),
        "task_category": Value("string"),
        "other_task_category": List(Value("string")),
        "difficulty": Value("string"),
        "input_quality": Value("string"),
        "instruct_reward": Value("float64"),
        "reward_difference": Value("float64"),
        "min_neighbor_distance": Value("float64"),
        "repeat_count": Value("int64"),
        "min_similar_uuid": Value("string"),
        "instruction_length": Value("int64"),
        "response_length": Value("int64"),
        "language": Value("string"),
    }
)

FIVE_LINES = "Fix this:\na\nb\nc\nd\ne"  # 5 newlines
SIX_LINES = "def f():\n  a\n  b\n  c\n  d\n  e\n  return"  # 6 newlines

# uuid, instruction, quality, difficulty, task, reward, reward_difference, min_similar_uuid, response_length
ROWS = [
    ("r01", "Explain recursion.", "good", "medium", "Coding & Debugging", 2.0, 1.5, None, 900),
    ("r02", "What is 7 * 8?", "excellent", "easy", "Math", -9.5, 0.5, "r02", 800),  # first of its group
    ("r03", "Tell me about Rome.", "average", "easy", "Information seeking", 1.0, 1.0, None, 700),
    ("r04", "asdf", "poor", "medium", "Others", 5.0, 2.0, None, 1000),
    ("r05", "Say hi.", "good", "very easy", "Others", 0.0, 1.0, None, 600),
    ("r06", "Prove Fermat's last theorem.", "good", "hard", "Math", -10.0, 1.0, None, 650),  # reward == -10
    ("r07", "Plan a wedding.", "good", "medium", "Planning", -11.0, 0.5, None, 500),
    ("r08", "Write a poem.", "good", "medium", "Creative writing", 3.0, 0.0, None, 400),  # difference == 0
    ("r09", "Here is a list:", "good", "medium", "Editing", 3.0, 1.0, None, 450),
    ("r10", "What is 7 times 8?", "good", "medium", "Math", 3.0, 1.0, "r02", 850),  # duplicate of r02
    ("r11", FIVE_LINES, "good", "medium", "Creative writing", 3.0, 1.0, None, 300),
    ("r12", SIX_LINES, "good", "medium", "Coding & Debugging", 3.0, 1.0, None, 550),  # coding: exempt
    ("r13", "Untagged row.", None, None, None, 3.0, 1.0, None, 999),
    ("r14", "No reward yet.", "Excellent", "Very Hard", "Math", None, None, None, 998),
    ("r15", "Ends with a colon: ", "good", "medium", "Editing", 3.0, 1.0, None, 997),
]

EXPECTED = {
    "air-300k": {"r01", "r02", "r05", "r08", "r11", "r12"},
    "pro-300k": {"r01", "r02", "r05", "r08", "r11", "r12"},
    "llama3.1-pro-300k": {"r01", "r02", "r08", "r12"},
    "paper-300k": {"r01", "r02", "r03", "r06", "r07", "r11", "r12"},
}

# The paper's table 5 (appendix C) at tau1 = -12, tau2 = 0; every row here has min_neighbor_distance 0.5.
EXPECTED.update({
    "air-filter": {"r01", "r06", "r07", "r09", "r10", "r11", "r12", "r15"},  # >= good, >= medium, diff > 0
    "pro-filter1": {r[0] for r in ROWS} - {"r04", "r13", "r14"},  # >= average, reward > -12
    "pro-filter2": {"r01", "r02", "r06", "r07", "r08", "r09", "r10", "r11", "r12", "r15"},
    "pro-filter3": {r[0] for r in ROWS} - {"r14"},  # reward > -12 only
    "pro-filter4": {"r01", "r02", "r06", "r07", "r09", "r10", "r11", "r12", "r15"},
    "pro-filter5": {"r01", "r02", "r06", "r07", "r08", "r09", "r10", "r11", "r12", "r15"},
    "pro-filter6": {r[0] for r in ROWS} - {"r05", "r13", "r14"},  # >= easy (then half easy), reward > -12
})


def _dataset(rows=ROWS):
    columns = {name: [] for name in FEATURES}
    for uuid, instruction, quality, difficulty, task, reward, difference, similar, length in rows:
        values = {
            "uuid": uuid,
            "instruction": instruction,
            "response": "x" * length,
            "conversations": [{"from": "human", "value": instruction}, {"from": "gpt", "value": "x" * length}],
            "task_category": task,
            "other_task_category": [],
            "difficulty": difficulty,
            "input_quality": quality,
            "instruct_reward": reward,
            "reward_difference": difference,
            "min_neighbor_distance": 0.5,
            "repeat_count": 0 if similar is None else 1,
            "min_similar_uuid": similar,
            "instruction_length": len(instruction),
            "response_length": length,
            "language": "EN",
        }
        for name in FEATURES:
            columns[name].append(values[name])
    return Dataset.from_dict(columns, features=FEATURES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_preset_keeps_exactly_its_rows(name):
    ds = _dataset()
    assert set(ds.filter(filters.PAPER[name])["uuid"]) == EXPECTED[name]
    assert set(ds.filter(filters.PAPER[name], batched=True, batch_size=4)["uuid"]) == EXPECTED[name]


def test_presets_cover_every_recipe():
    assert set(filters.PAPER) == set(EXPECTED)
    assert set(filters.PAPER_LONGEST) == set(EXPECTED)


def test_ordinal_labels_compare_by_rank_ignoring_case():
    ds = _dataset()
    assert set(ds.filter(filters.min_quality("Average"))["uuid"]) == {
        r[0] for r in ROWS if r[2] is not None and r[2].lower() in {"average", "good", "excellent"}
    }
    assert set(ds.filter(filters.min_difficulty("hard"))["uuid"]) == {"r06", "r14"}
    assert set(ds.filter(filters.min_quality("excellent"))["uuid"]) == {"r02", "r14"}
    with pytest.raises(ValueError, match="very poor, poor, average, good, excellent"):
        filters.min_quality("great")


def test_single_rules():
    ds = _dataset()
    kept = lambda f: set(ds.filter(f)["uuid"])  # noqa: E731
    assert kept(filters.min_reward(-10)) == {r[0] for r in ROWS if r[5] is not None and r[5] > -10}
    assert "r06" not in kept(filters.min_reward(-10))  # strictly above
    assert kept(filters.positive_reward_difference(0.9)) == {r[0] for r in ROWS if r[6] is not None and r[6] > 0.9}
    assert kept(filters.not_ending_with(":")) == {r[0] for r in ROWS} - {"r09", "r15"}
    assert kept(filters.max_newlines(5)) == {r[0] for r in ROWS} - {"r11"}
    assert kept(filters.max_newlines(5, except_task=None)) == {r[0] for r in ROWS} - {"r11", "r12"}
    assert kept(filters.is_unique) == {r[0] for r in ROWS} - {"r10"}
    assert kept(filters.language_is("en")) == {r[0] for r in ROWS}


def test_combinator_and_operator_agree():
    ds = _dataset()
    both = filters.min_quality("good") & filters.is_unique
    same = filters.all_of(filters.min_quality("good"), filters.is_unique)
    expected = {r[0] for r in ROWS if r[2] and r[2].lower() in {"good", "excellent"} and r[7] in (None, r[0])}
    assert set(ds.filter(both)["uuid"]) == set(ds.filter(same, batched=True)["uuid"]) == expected
    assert both.columns == ("input_quality", "min_similar_uuid", "uuid")


def test_predicate_on_plain_rows_and_batches():
    row = {"input_quality": "good", "uuid": "a", "min_similar_uuid": None}
    assert (filters.min_quality("good") & filters.is_unique)(row) is True
    batch = {"input_quality": ["good", "poor"], "uuid": ["a", "b"], "min_similar_uuid": ["a", None]}
    assert (filters.min_quality("good") & filters.is_unique)(batch) == [True, False]


def test_dedup_keeps_null_or_own_uuid():
    assert filters.dedup(_dataset())["uuid"] == [r[0] for r in ROWS if r[0] != "r10"]


def test_longest_takes_k_longest_then_shuffles_with_seed_42():
    ds = _dataset()
    top = filters.longest(ds, 4)
    by_length = ["r04", "r13", "r14", "r15"]  # 1000, 999, 998, 997
    assert sorted(top["uuid"]) == sorted(by_length)
    assert top["uuid"] == Dataset.from_dict({"uuid": by_length}).shuffle(seed=42)["uuid"]
    assert filters.longest(ds, 4)["uuid"] == top["uuid"]  # deterministic
    assert sorted(filters.longest(ds, 100)["uuid"]) == sorted(r[0] for r in ROWS)


def test_apply_recipe_filters_then_keeps_longest():
    out = filters.apply_recipe(_dataset(), "pro-300k", k=3)
    assert sorted(out["uuid"]) == ["r01", "r02", "r05"]  # 900, 800, 600 among the kept rows
    assert sorted(filters.apply_recipe(_dataset(), "pro-300k")["uuid"]) == sorted(EXPECTED["pro-300k"])
    with pytest.raises(ValueError, match="pro-300k"):
        filters.apply_recipe(_dataset(), "nope")


def test_missing_columns_name_the_stage():
    ds = _dataset().remove_columns(["instruct_reward"])
    with pytest.raises(MissingColumnError, match="instruct_reward.*add_rewards"):
        ds.filter(filters.PAPER["pro-300k"])
    with pytest.raises(MissingColumnError, match="reward_difference.*reward_diff"):
        _dataset().remove_columns(["reward_difference"]).filter(filters.PAPER["paper-300k"], batched=True)
    with pytest.raises(MissingColumnError, match="min_similar_uuid.*min_neighbor_distance"):
        filters.dedup(_dataset().remove_columns(["min_similar_uuid"]))
    with pytest.raises(MissingColumnError, match="response_length.*generate_responses"):
        filters.longest(_dataset().remove_columns(["response_length"]), 2)
    with pytest.raises(MissingColumnError, match="input_quality.*tag_with_llm"):
        filters.apply_recipe(_dataset().remove_columns(["input_quality"]), "air-300k")


def test_published_rows_filter_with_pro_300k():
    from tests.published_sample import published_dataset

    ds = published_dataset()
    kept = [u[:8] for u in ds.filter(filters.PAPER["pro-300k"])["uuid"]]
    # quality >= good, reward > -10, no trailing ":", not a later duplicate (checked by hand)
    assert kept == ["b08ecde1", "b8055816", "ac04a492", "3e5258e7", "96071fac", "6087537b", "cd713cbb",
                    "3961ddae", "32522d59", "6f86347c", "8edc67f3", "4642af12", "87faf5ce"]
    assert [u[:8] for u in filters.dedup(ds)["uuid"]] == [u[:8] for u in ds["uuid"] if not u.startswith("6427f85c")]
    with pytest.raises(MissingColumnError, match="reward_difference.*reward_diff"):
        ds.filter(filters.PAPER["paper-300k"])


# --- the paper's table 5 ----------------------------------------------------------------------


def test_table5_thresholds_are_parameters():
    ds = _dataset()
    kept = lambda f: set(ds.filter(f, batched=True)["uuid"])  # noqa: E731
    assert filters.TAU1 == -12 and filters.TAU2 == 0
    assert kept(filters.table5("pro-filter3", tau1=-10)) == {r[0] for r in ROWS} - {"r06", "r07", "r14"}
    assert kept(filters.table5("pro-filter3", tau1=-9.6)) == {r[0] for r in ROWS} - {"r06", "r07", "r14"}
    assert kept(filters.table5("pro-filter3", tau1=-9.4)) == {r[0] for r in ROWS} - {"r02", "r06", "r07", "r14"}
    assert kept(filters.table5("pro-filter4", tau2=0.6)) == EXPECTED["pro-filter4"] - {"r02", "r07"}
    assert kept(filters.table5("air-filter", tau1=100)) == EXPECTED["air-filter"]  # the Air filter has no reward rule
    with pytest.raises(ValueError, match="air-filter, pro-filter1"):
        filters.table5("pro-filter7")


def test_table5_needs_a_positive_neighbour_distance():
    ds = _dataset().map(lambda row: {"min_neighbor_distance": 0.0 if row["uuid"] in ("r01", "r02") else 0.5})
    assert set(ds.filter(filters.PAPER["pro-filter3"])["uuid"]) == EXPECTED["pro-filter3"] - {"r01", "r02"}
    assert set(ds.filter(filters.min_distance(0.4))["uuid"]) == {r[0] for r in ROWS} - {"r01", "r02"}
    with pytest.raises(MissingColumnError, match="Run min_neighbor_distance first"):
        _dataset().remove_columns(["min_neighbor_distance"]).filter(filters.PAPER["pro-filter1"])


def test_table5_whole_dataset_steps():
    ds = _dataset()
    longest = lambda name, **kw: filters.apply_recipe(ds, name, **kw)["uuid"]  # noqa: E731
    # Filter 5 keeps every row that passes, no longest-k step
    assert filters.PAPER_LONGEST["pro-filter5"] is None
    assert sorted(longest("pro-filter5")) == sorted(EXPECTED["pro-filter5"])
    # the others: the k longest responses of the rows that pass (r15 997, r01 900, r10 850, r02 800)
    assert set(longest("pro-filter2", k=4)) == {"r15", "r01", "r10", "r02"}
    assert set(longest("pro-filter2", k=4, tau1=-9)) == {"r15", "r01", "r10", "r12"}
    # Filter 6: half of k among "easy" rows (r02 800, r03 700), half among harder ones
    assert set(longest("pro-filter6", k=4)) == {"r02", "r03", "r04", "r15"}
    assert set(longest("pro-filter6", k=6)) == {"r02", "r03", "r04", "r15", "r01"}  # 2 easy + 3 harder
    assert len(longest("pro-filter6", k=10)) == 2 + 5  # only two easy rows: no backfill from the harder half
    shuffled = longest("pro-filter3", k=14)
    assert sorted(shuffled) == sorted(EXPECTED["pro-filter3"]) and shuffled == longest("pro-filter3", k=14)
