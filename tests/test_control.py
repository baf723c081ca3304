"""Domain / language control: presets, the weighted mix (pure draw), and step 1 under it."""



from collections import Counter

import pytest

import magpie_datasets as magpie
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.control import (
    PRESETS,
    add_controlled_instructions,
    assign_system_prompts,
    language_prompt,
    system_prompt_of,
)
from magpie_datasets.stages.generate import add_magpie_instructions

ROW_IDS = [f"row-{i}" for i in range(1000)]


def test_presets_and_language_prompts():
    assert set(PRESETS) >= {"math", "code", "translation"}
    assert "math" in system_prompt_of("math").lower()
    assert "Japanese" in system_prompt_of("language:ja") == language_prompt("JA")
    assert "Portuguese" in language_prompt("pt")
    assert system_prompt_of("You only discuss birds.") == "You only discuss birds."
    assert system_prompt_of(None) is None
    with pytest.raises(ValueError, match="ISO 639-1"):
        language_prompt("xx")
    with pytest.raises(ValueError, match="non-empty string"):
        system_prompt_of("  ")


def test_mix_is_reproducible_and_follows_the_weights():
    mix = {"math": 0.5, "code": 0.3, "language:ja": 0.2}
    drawn = assign_system_prompts(ROW_IDS, mix, seed=1)
    assert drawn == assign_system_prompts(ROW_IDS, mix, seed=1)
    assert drawn != assign_system_prompts(ROW_IDS, mix, seed=2)
    counts = Counter(drawn)
    # Binomial sd at n=1000 is <= 16 rows; allow ~3.5 sd.
    for key, weight in mix.items():
        assert abs(counts[key] - 1000 * weight) < 55, counts
    # A row's draw depends on its id only, not on the rows around it (batch boundaries).
    assert assign_system_prompts(ROW_IDS[500:510], mix, seed=1) == drawn[500:510]
    # Unnormalised weights, zero weights, None (no system prompt) and one plain string.
    assert set(assign_system_prompts(ROW_IDS, {"math": 3, "code": 0, None: 1})) == {"math", None}
    assert assign_system_prompts(ROW_IDS[:3], "translation") == ["translation"] * 3


@pytest.mark.parametrize(
    "mix, message",
    [({}, "non-empty"), ({"math": -1}, ">= 0"), ({"math": 0}, "all be zero"), ({"language:zz": 1}, "ISO 639-1"), (3, "non-empty")],
)
def test_bad_mixes_fail_before_generating(mix, message):
    with pytest.raises(ValueError, match=message):
        assign_system_prompts(["a"], mix)


def test_bad_stage_arguments():
    with pytest.raises(MissingColumnError, match="empty"):
        add_controlled_instructions({"instruction": ["x"]}, mix="math")
    with pytest.raises(ValueError, match="mix= or language="):
        add_controlled_instructions({"uuid": ["a"]}, mix="math", language="ja")
    with pytest.raises(ValueError, match="not system_prompt="):
        add_controlled_instructions({"uuid": ["a"]}, system_prompt="x")


STEP1 = {"max_tokens": 24}


@pytest.fixture(scope="module")
def controlled():
    mix = {None: 1, "math": 1, "language:fr": 1}
    return magpie.empty(8).map(
        add_controlled_instructions, batched=True, batch_size=4, fn_kwargs={"mix": mix, "seed": 4, **STEP1}
    ), mix


def test_controlled_step1_records_the_prompt_per_row(controlled):
    ds, mix = controlled
    placeholders = magpie.empty(8)["uuid"]
    assert ds["control"] == assign_system_prompts(placeholders, mix, seed=4)
    assert len(set(ds["control"])) >= 2
    for row in ds:
        assert row["instruction_options"]["system_prompt"] == system_prompt_of(row["control"])
        assert row["instruction_options"]["max_tokens"] == 24
        if row["control"] is not None:
            assert row["gen_input_configs"]["pre_query_template"].startswith(
                "<|im_start|>system\n" + system_prompt_of(row["control"]) + "<|im_end|>\n<|im_start|>user\n"
            )


def test_controlled_rows_match_plain_step1_with_that_prompt(controlled):
    """Grouping rows by prompt gives each row what plain step 1 gives it with that prompt."""
    ds, _ = controlled
    placeholders = magpie.empty(8)["uuid"]
    math_rows = [i for i, key in enumerate(ds["control"][:4]) if key == "math"]  # batch 1
    assert math_rows == [0, 2]  # the draw is fixed by the seed
    plain = add_magpie_instructions(
        {"uuid": [placeholders[i] for i in math_rows]}, seed=4, system_prompt=PRESETS["math"], **STEP1
    )
    assert plain["instruction"] == [ds["instruction"][i] for i in math_rows]
    assert plain["uuid"] == [ds["uuid"][i] for i in math_rows]


def test_language_shortcut(controlled):
    out = add_controlled_instructions({"uuid": magpie.empty(2)["uuid"]}, language="ja", seed=4, **STEP1)
    assert out["control"] == ["language:ja", "language:ja"]
    assert {o["system_prompt"] for o in out["instruction_options"]} == {language_prompt("ja")}


def test_first_batch_without_a_system_prompt_keeps_the_column_typed():
    # Row 1 draws None (no system prompt) and row 0 "math" under seed 4: batch 1 is all None.
    ds = magpie.empty(8).select([1, 0])
    out = ds.map(add_controlled_instructions, batched=True, batch_size=1, fn_kwargs={"mix": {None: 1, "math": 1}, "seed": 4, **STEP1})
    assert out["control"] == [None, "math"]
    assert [o["system_prompt"] for o in out["instruction_options"]] == [None, PRESETS["math"]]
