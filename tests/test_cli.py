"""`magpie-datasets template`: one JSON object for any tokenizer directory, one error line otherwise."""

import json

import pytest

from magpie_datasets.cli import main
from tests.chat_tokenizers import fixture, fixture_tokenizer


def template_json(tmp_path, name, capsys, *extra):
    path = tmp_path / name
    fixture_tokenizer(fixture(name)).save_pretrained(path)
    assert main(["template", str(path), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_template_prints_published_pre_query_for_a_known_family(tmp_path, capsys):
    info = template_json(tmp_path, "Qwen__Qwen2-7B-Instruct", capsys)
    assert info["family"] == "qwen2"
    assert info["pre_query"] == "<|im_start|>user\n"
    assert info["post_query"] == "<|im_end|>\n<|im_start|>assistant\n"
    assert "<|im_end|>" in info["stop"]


def test_template_derives_for_an_unknown_family(tmp_path, capsys):
    info = template_json(tmp_path, "microsoft__phi-4", capsys)
    assert info["family"] is None
    assert info["pre_query"] == "<|im_start|>user<|im_sep|>"
    assert "<|im_end|>" in info["stop"]


def test_template_error_is_one_line(tmp_path, capsys):
    path = tmp_path / "gemma"
    fixture_tokenizer(fixture("google__gemma-2-2b-it")).save_pretrained(path)
    with pytest.raises(SystemExit) as exit_info:
        main(["template", str(path), "--system-prompt", "You are a math tutor."])
    message = str(exit_info.value.code)
    assert message.startswith("magpie-datasets template: error:") and "system" in message.lower()
    with pytest.raises(SystemExit, match="not available"):
        main(["template", str(tmp_path / "missing")])


def test_generate_records_the_step_2_options_it_was_given(tmp_path, capsys):
    from datasets import load_from_disk

    out = tmp_path / "out"
    argv = ["generate", "--num-rows", "2", "--max-instruction-tokens", "4", "--max-response-tokens", "6",
            "--repetition-penalty", "1.2", "--early-stop", "--output", str(out)]
    assert main(argv) == 0 and "2 rows" in capsys.readouterr().out
    ds = load_from_disk(str(out))
    assert [c["repetition_penalty"] for c in ds["gen_response_configs"]] == [1.2, 1.2]
    assert [c["max_tokens"] for c in ds["gen_response_configs"]] == [6, 6]
    assert all(o["early_stop"] for o in ds["instruction_options"])


def test_generate_defaults_suit_the_model():
    from magpie_datasets.cli import (
        EMBEDDED_DEFAULTS,
        PAPER_DEFAULTS,
        build_parser,
        fill_model_defaults,
    )

    embedded = build_parser().parse_args(["generate", "--num-rows", "1", "--output", "o"])
    assert fill_model_defaults(embedded) == EMBEDDED_DEFAULTS  # printed by the CLI
    assert (embedded.max_instruction_tokens, embedded.max_response_tokens) == (128, 512)
    assert embedded.repetition_penalty == 1.2 and embedded.early_stop is True

    mine = build_parser().parse_args(["generate", "--num-rows", "1", "--output", "o", "--max-response-tokens", "64",
                                      "--no-early-stop"])
    assert fill_model_defaults(mine) == {"max_instruction_tokens": 128, "repetition_penalty": 1.2}
    assert (mine.max_response_tokens, mine.early_stop) == (64, False)  # what the user gave stays

    other = build_parser().parse_args(["generate", "--num-rows", "1", "--output", "o", "--model", "Qwen/Qwen2.5-7B-Instruct"])
    assert fill_model_defaults(other) == {}  # the paper's defaults, nothing to announce
    assert {name: getattr(other, name) for name in PAPER_DEFAULTS} == PAPER_DEFAULTS
