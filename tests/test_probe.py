"""`probe` / `magpie-datasets probe`: step 1 per system-prompt variant, measured, one recommended."""

import doctest
import json

import pytest

from magpie_datasets.cli import main
from magpie_datasets.runners import probe as probe_module
from magpie_datasets.runners.probe import (
    FLAWS,
    METRICS,
    format_report,
    instruction_flaws,
    instruction_metrics,
    probe,
)
from tests.chat_tokenizers import fixture
from tests.tiny_models import byte_tokenizer, save_tiny_model

SHARES = [m for m in METRICS if m not in ("mean_length", "distinct_first_words")]


def test_docstring_examples():
    result = doctest.testmod(probe_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize(
    ("text", "issue", "family", "flaws"),
    [
        ("How do I sort a list in Python?", None, None, ()),
        ("", "empty", None, ("empty",)),
        ("Python lists", None, None, ("fragment",)),
        ("?", None, None, ("fragment",)),
        ("写一首关于秋天的诗", None, None, ()),  # CJK characters count a word each
        ("Write a poem about the following:", None, None, ("ends_with_colon",)),
        ("请回答下面的问题：", None, None, ("ends_with_colon",)),
        ("## Introduction to sorting algorithms", None, None, ("markdown_header",)),
        ("#hashtag trends this year", None, None, ()),  # not a header: no space after "#"
        ("What is 2 + 2?\nAnswer: 4", None, None, ("answer_leak",)),
        ("Solve 2x + 3 = 7.\n## Step 1: subtract 3", None, "llama-3.1", ("answer_leak",)),
        ("Solve 2x + 3 = 7.\n## Step 1: subtract 3", None, "gemma-2", ()),
        ("Tell me a story <|im_end|>", "template_markup", None, ("template_markup",)),
        ("I have been thinking about moving to a new city and", "max_tokens", None, ("max_tokens",)),
        ("Hi:", "max_tokens", None, ("fragment", "ends_with_colon", "max_tokens")),
    ],
)
def test_instruction_flaws(text, issue, family, flaws):
    assert instruction_flaws(text, issue, family) == flaws


def test_instruction_metrics_exact_values():
    instructions = [
        "How do I sort a list in Python?",  # usable
        "how do I reverse a string?",  # usable, same first word (case-folded)
        "",  # empty
        "Python",  # fragment
        "Summarize the text below:",  # ends with ":"
        "## Sorting algorithms explained simply",  # markdown header
        "Name a prime number.\nAnswer: 7",  # answer leak, sanitizable
        "Écris un poème sur la mer.",  # usable, non-English
    ]
    issues = [None, None, "empty", None, None, None, None, None]
    languages = ["EN", "EN", None, "EN", "EN", "EN", "EN", "FR"]
    metrics = instruction_metrics(instructions, issues, languages)
    assert list(metrics) == list(METRICS)
    assert metrics == {
        "empty": 0.125,
        "fragment": 0.125,
        "ends_with_colon": 0.125,
        "markdown_header": 0.125,
        "answer_leak": 0.125,
        "template_markup": 0.0,
        "max_tokens": 0.0,
        "non_english": 0.125,
        "sanitized": 0.125,
        "usable": 0.375,
        "mean_length": round(sum(map(len, instructions)) / 8, 1),
        # how, python, summarize, sorting, name, écris: 6 distinct over 7 non-empty rows
        "distinct_first_words": 6,
        "distinct_first_word_share": round(6 / 7, 4),
    }
    assert instruction_metrics([], [], []) == {**{m: 0.0 for m in METRICS}, "distinct_first_words": 0}
    with pytest.raises(ValueError, match="one issue and one language per instruction"):
        instruction_metrics(["a"], [], [])


def check_report(report, samples):
    assert report["samples"] == samples and report["recommendation"]["variant"] in report["variants"]
    for entry in report["variants"].values():
        metrics = entry["metrics"]
        assert list(metrics) == list(METRICS)
        assert all(0.0 <= metrics[m] <= 1.0 for m in SHARES)
        assert entry["score"] == metrics["usable"]
        assert 0 <= metrics["distinct_first_words"] <= samples and metrics["mean_length"] >= 0
        # a row is usable only without any flaw: the flaw shares leave room for the usable share
        assert metrics["usable"] <= 1 - max(metrics[f] for f in FLAWS) + 1e-9


def test_cli_probe_on_the_embedded_model(tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert main(["probe", "--samples", "8", "--max-tokens", "16", "--output", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    check_report(report, 8)
    assert report["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and report["family"] is None
    assert report["settings"]["max_tokens"] == 16 and report["settings"]["early_stop"] is True
    variants = report["variants"]
    assert [v["system_prompt"] for v in variants.values()] == [None, "template", ""]
    # SmolLM2 is no known family: the derived pre-query is the template's own, so it is not sampled twice
    assert variants["template"]["same_as"] == "derived"
    assert variants["template"]["metrics"] == variants["derived"]["metrics"]
    assert variants["derived"]["pre_query"].startswith("<|im_start|>system\nYou are a helpful AI assistant")
    assert variants["no_system"]["pre_query"] == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n"
    assert variants["no_system"]["same_as"] is None
    lines = table.splitlines()
    assert lines[0].startswith("probe of HuggingFaceTB/SmolLM2-135M-Instruct")
    assert lines[1].split() == ["derived", "template", "no_system"]
    assert any(line.split()[:2] == ["same", "as"] and "derived" in line for line in lines)
    for metric in METRICS:
        assert any(line.startswith(metric.replace("_", " ") + " ") for line in lines), metric
    assert lines[-1].startswith("recommendation: ") or lines[-1].startswith("warning: ")

    prefix = "Write a Python function that"
    assert main(["probe", "--samples", "2", "--max-tokens", "4", "--json", "--instruction-prefix", prefix]) == 0
    report = json.loads(capsys.readouterr().out)
    check_report(report, 2)
    prefixed = report["variants"][f"prefix: {prefix}"]  # Magpie-Prefill: a variant per prefix
    assert prefixed["instruction_prefix"] == prefix and prefixed["same_as"] is None
    assert prefixed["examples"] and all(text.startswith(prefix) for text in prefixed["examples"])
    assert report["recommendation"]["variant"] in ("derived", "template", "no_system")  # a prefix is not a template choice


def test_probe_flags_a_fragment_writing_configuration():
    # A 2-token cap really truncates every instruction to a word or two; it goes first, so a tie
    # could not pick it, and the recommendation must move away from it.
    report = probe(samples=8, max_tokens=48, variants={"capped": {"max_tokens": 2}, "derived": None})
    check_report(report, 8)
    capped, derived = report["variants"]["capped"], report["variants"]["derived"]
    assert capped["max_tokens"] == 2 and "max_tokens" not in derived
    assert capped["metrics"]["fragment"] >= 0.75 and capped["score"] <= 0.25
    assert derived["metrics"]["fragment"] <= 0.25 and derived["score"] > capped["score"]
    recommendation = report["recommendation"]
    assert recommendation["variant"] == "derived" and recommendation["system_prompt"] is None
    assert "capped" in recommendation["reason"] and "fragment" in recommendation["reason"]

    alone = probe(samples=8, variants={"capped": {"max_tokens": 2}})
    assert alone["recommendation"]["variant"] == "capped" and "only" in alone["recommendation"]["warning"]


def tiny_chat_model(tmp_path, name):
    data = fixture(name)
    tokenizer = byte_tokenizer(data["chat_template"], ["<|im_start|>", "<|im_end|>", "<start_of_turn>",
                                                       "<end_of_turn>"], bos=data["bos_token"],
                               eos=data["eos_token"], adds_bos=data["bos_token"] is not None,
                               name=str(tmp_path / name))
    return save_tiny_model(tmp_path / name, tokenizer)


def test_variants_follow_the_template(tmp_path):
    # Qwen2.5: the authors' pre-query keeps the default system prompt (the family writes fragments
    # without it), so "derived" and "template" are one variant; "no_system" is an empty system turn.
    report = probe(tiny_chat_model(tmp_path, "Qwen__Qwen2.5-7B-Instruct"), samples=2, max_tokens=3)
    variants = report["variants"]
    assert report["family"] == "qwen2.5" and report["settings"]["early_stop"] is False
    assert variants["derived"]["pre_query"] == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n")
    assert variants["template"]["same_as"] == "derived"
    assert variants["no_system"]["pre_query"] == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n"
    check_report(report, 2)

    # Gemma-2 has no system role: that variant says why and is not sampled, the others are.
    report = probe(tiny_chat_model(tmp_path, "google__gemma-2-2b-it"), samples=2, max_tokens=3)
    assert "system" in report["variants"]["no_system"]["error"].lower()
    assert "metrics" not in report["variants"]["no_system"]
    assert report["variants"]["derived"]["pre_query"] == "<bos><start_of_turn>user\n\n"
    assert report["recommendation"]["variant"] in ("derived", "template")
    table = format_report(report)
    assert "no_system: not sampled: " in table and table.splitlines()[3].split()[-1] == "error"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": 0}, "samples >= 1"),
        ({"variants": {}}, "at least one variant"),
        ({"variants": {"x": {"max_token": 3}}}, "sets \\['max_token'\\]"),
        ({"variants": {"x": 3}}, "not int"),
        ({"instruction_prefixes": "Write a"}, "instruction_prefixes must be a list of non-empty strings"),
    ],
)
def test_bad_arguments_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        probe(**kwargs)


def test_cli_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit, match="^magpie-datasets probe: error: --samples must be at least 1"):
        main(["probe", "--samples", "0"])
    with pytest.raises(SystemExit, match="^magpie-datasets probe: error: .*not available"):
        main(["probe", str(tmp_path / "missing"), "--samples", "2"])
