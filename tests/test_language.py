"""tag_language: real lingua detector over all languages."""

import pytest
from datasets import Dataset, Features, Value

from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.language import (
    detect_languages,
    language_detector,
    tag_language,
)

SENTENCES = {
    "Write a short story about a lighthouse keeper who finds a message in a bottle.": "EN",
    "Écris une courte histoire sur un gardien de phare qui trouve un message dans une bouteille.": "FR",
    "Schreibe eine kurze Geschichte über einen Leuchtturmwärter, der eine Flaschenpost findet.": "DE",
    "Escribe un cuento corto sobre un farero que encuentra un mensaje en una botella.": "ES",
    "Напиши короткий рассказ о смотрителе маяка, который находит послание в бутылке.": "RU",
    "请写一个关于灯塔看守人在瓶子里发现一封信的短篇故事。": "ZH",
    "瓶の中に手紙を見つけた灯台守についての短い物語を書いてください。": "JA",
}


@pytest.mark.parametrize("low_accuracy", [False, True])
def test_sentences_get_upper_case_iso_639_1(low_accuracy):
    texts = list(SENTENCES) + ["", "   \n", None]
    assert detect_languages(texts, low_accuracy=low_accuracy) == list(SENTENCES.values()) + [None] * 3


def test_detector_is_built_once_per_process():
    assert language_detector(True) is language_detector(True)


def test_as_batched_map_on_published_schema_rows():
    features = Features({"uuid": Value("string"), "instruction": Value("string"), "response": Value("string"),
                         "language": Value("string")})
    texts = ["  ", None] + list(SENTENCES)  # the first batch has no text at all
    ds = Dataset.from_dict(
        {"uuid": [str(i) for i in range(len(texts))], "instruction": texts, "response": ["ok"] * len(texts),
         "language": ["XX"] * len(texts)},
        features=features,
    )
    out = ds.map(tag_language, batched=True, batch_size=2, fn_kwargs={"low_accuracy": True})
    assert out["language"] == [None, None] + list(SENTENCES.values())
    assert out.features["language"] == Value("string")
    assert out.column_names == [*features, "language_configs"]
    assert set(map(str, out["language_configs"])) == {str({"column": "instruction", "detector": "lingua", "low_accuracy": True})}


def test_other_column_and_missing_column():
    batch = {"response": ["Bonjour tout le monde, comment allez-vous aujourd'hui ?"]}
    assert tag_language(batch, column="response", low_accuracy=True)["language"] == ["FR"]
    with pytest.raises(MissingColumnError, match="'instruction'.*add_magpie_instructions"):
        tag_language({"prompt": ["hi"]})


def test_published_rows_match_their_language_tags():
    from tests.published_sample import published_dataset

    ds = published_dataset()
    out = ds.map(tag_language, batched=True)  # default (high-accuracy) detector
    for published, ours, text in zip(ds["language"], out["language"], ds["instruction"]):
        if len(text) > 5:  # "hi" is too short for any detector to be sure
            assert ours == published, text
    assert Features({k: v for k, v in out.features.items() if k != "language_configs"}) == ds.features
    assert out["language_configs"][0] == {"column": "instruction", "detector": "lingua", "low_accuracy": False}
