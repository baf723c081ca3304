"""Step 1's decoding-configuration mix (paper appendix E.1): the draw per row, its checks, and a
small real run that records each row's configuration."""

from __future__ import annotations

from collections import Counter

import pytest

from magpie_datasets import add_controlled_instructions, add_magpie_instructions, empty
from magpie_datasets.stages.control import assign_system_prompts
from magpie_datasets.stages.rows import assign_decoding, decoding_configs, weighted_draw
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model

PUBLISHED = [{"temperature": t, "top_p": p, "weight": 1} for t in (1.0, 1.1, 1.2) for p in (1.0, 0.995, 0.99)]
ROW_IDS = empty(10_000)["uuid"]


def test_shares_match_the_weights_over_10000_rows():
    mix = [
        {"temperature": 1.0, "top_p": 1.0, "weight": 5},
        {"temperature": 1.1, "top_p": 0.995, "weight": 3},
        {"temperature": 1.2, "top_p": 0.99, "weight": 2},
    ]
    counts = Counter(assign_decoding(ROW_IDS, mix, seed=0))
    assert set(counts) == {(1.0, 1.0), (1.1, 0.995), (1.2, 0.99)}
    for entry in mix:  # binomial sd at 10,000 rows is at most 0.005: 0.02 is 4 sd
        assert abs(counts[(entry["temperature"], entry["top_p"])] / 10_000 - entry["weight"] / 10) < 0.02
    equal = Counter(assign_decoding(ROW_IDS, PUBLISHED, seed=0))
    assert len(equal) == 9 and all(abs(c / 10_000 - 1 / 9) < 0.015 for c in equal.values())


def test_the_draw_is_a_function_of_seed_and_row_id():
    mix = PUBLISHED
    whole = assign_decoding(ROW_IDS[:500], mix, seed=3)
    parts = assign_decoding(ROW_IDS[:250], mix, seed=3) + assign_decoding(ROW_IDS[250:500], mix, seed=3)
    assert whole == parts  # batch boundaries do not matter
    assert assign_decoding(list(reversed(ROW_IDS[:500])), mix, seed=3) == list(reversed(whole))
    assert assign_decoding(ROW_IDS[:500], mix, seed=4) != whole


def test_the_decoding_draw_is_independent_of_the_system_prompt_draw():
    # same seed, same rows: without its own salt the two draws would pair up config and prompt
    prompts = assign_system_prompts(ROW_IDS, {"math": 1, "code": 1}, seed=0)
    decodings = assign_decoding(ROW_IDS, [{"temperature": 1.0}, {"temperature": 1.2}], seed=0)
    pairs = Counter(zip(prompts, decodings))
    assert len(pairs) == 4 and all(abs(c / 10_000 - 0.25) < 0.02 for c in pairs.values())
    # system prompts draw exactly as before the draw was shared
    assert weighted_draw(["a", "b"], [1, 1], seed=0) == [0 if k == "math" else 1 for k in
                                                          assign_system_prompts(["a", "b"], {"math": 1, "code": 1})]


def test_missing_keys_come_from_the_stage_and_zero_weights_never_draw():
    assert decoding_configs([{"weight": 2}, {"top_p": 0.9}], temperature=0.7, top_p=0.95) == [
        ((0.7, 0.95), 2.0), ((0.7, 0.9), 1.0)]
    drawn = set(assign_decoding(ROW_IDS[:2000], [{"temperature": 1.0, "weight": 0}, {"temperature": 1.2}]))
    assert drawn == {(1.2, 1.0)}


@pytest.mark.parametrize(
    "mix, message",
    [
        ([], "non-empty list"),
        ({"temperature": 1.0}, "non-empty list"),
        ([{"temperature": 1.0, "top_k": 5}], r"decoding_mix\[0\] must be a dict with keys"),
        ([{"temperature": -1}], r"decoding_mix\[0\] temperature must be a number >= 0"),
        ([{"top_p": 1.5}], r"top_p must be a number in \[0.0, 1.0\]"),
        ([{"top_p": 0}], "top_p must be > 0"),
        ([{"temperature": 1.0, "weight": -1}], "weight must be a number >= 0"),
        ([{"temperature": 1.0, "weight": "1"}], "weight must be a number"),
        ([{"temperature": 1.0, "weight": 0}], "must not all be zero"),
        ([{"temperature": 1.0}, {"temperature": 1.0, "top_p": 1.0}], "pair twice"),
    ],
)
def test_bad_mixes_fail_with_one_clear_error(mix, message):
    with pytest.raises(ValueError, match=message):
        decoding_configs(mix)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("mix"), byte_tokenizer(CHATML, specials=CHATML_SPECIALS), seed=1)


def test_a_real_run_records_each_rows_configuration(tiny):
    mix = [{"temperature": 1.0, "top_p": 1.0, "weight": 1}, {"temperature": 1.2, "top_p": 0.99, "weight": 1},
           {"temperature": 0.0, "weight": 1}]
    ds = empty(12)
    out = ds.map(add_magpie_instructions, batched=True, batch_size=5,
                 fn_kwargs={"model": tiny, "max_tokens": 6, "decoding_mix": mix, "seed": 2})
    expected = assign_decoding(ds["uuid"], mix, seed=2)
    recorded = [(c["temperature"], c["top_p"]) for c in out["gen_input_configs"]]
    assert recorded == expected and len(set(expected)) == 3
    # a row's text is its own: the same as when its configuration is the whole run's
    for (t, p) in set(expected):
        rows = [i for i, c in enumerate(expected) if c == (t, p)]
        alone = add_magpie_instructions({"uuid": [ds["uuid"][i] for i in rows]}, model=tiny, max_tokens=6,
                                        temperature=t, top_p=p, seed=2)
        assert alone["instruction"] == [out["instruction"][i] for i in rows]
        assert [c["temperature"] for c in alone["gen_input_configs"]] == [t] * len(rows)


def test_controlled_instructions_pass_the_mix_through(tiny):
    out = add_controlled_instructions({"uuid": ROW_IDS[:6]}, mix={None: 1}, model=tiny, max_tokens=4,
                                      decoding_mix=[{"temperature": 1.1}, {"temperature": 1.2}])
    assert [c["temperature"] for c in out["gen_input_configs"]] == [
        t for t, _ in assign_decoding(ROW_IDS[:6], [{"temperature": 1.1}, {"temperature": 1.2}])]
