"""The release's step-1 sanitizer: a table of cases, its properties, and step 1 writing its class."""


import pytest
from datasets import Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


import magpie_datasets as magpie
from magpie_datasets import add_magpie_instructions, engines
from magpie_datasets.schema import INSTRUCTION_FEATURES
from magpie_datasets.stages.sanitize import SANITIZE_CLASSES, sanitize_instruction
from magpie_datasets.stages.texts import clean_instruction, tidy_instruction
from magpie_datasets.templates import magpie_template
from tests.chat_tokenizers import fixture
from tests.tiny_models import byte_tokenizer, save_tiny_model

CASES = [
    # list markers and label prefixes
    ("Task: Write a haiku about rain.", "Write a haiku about rain.", "prefix"),
    ("Question 3: What is 2 + 2?", "What is 2 + 2?", "prefix"),
    ("Q1. Name three primes.", "Name three primes.", "prefix"),
    ("Q2: Name three primes.", "Name three primes.", "prefix"),
    ("Part 2: Describe the water cycle.", "Describe the water cycle.", "prefix"),
    ("**Problem** Find the area of a circle of radius 2.", "Find the area of a circle of radius 2.", "prefix"),
    ("**Problem:** Find the area of a circle.", "Find the area of a circle.", "prefix"),
    ("**Problem**: Find the area of a circle.", "Find the area of a circle.", "prefix"),
    ("## Context: I run a bakery. How can I price my bread?", "I run a bakery. How can I price my bread?", "prefix"),
    ("## Problem\nFind x if 2x = 4.", "Find x if 2x = 4.", "prefix"),
    ("instructions:\nSummarise the text below.", "Summarise the text below.", "prefix"),
    ("2) Explain recursion.", "Explain recursion.", "prefix"),
    ("(b) Explain recursion.", "Explain recursion.", "prefix"),
    ("c. Explain recursion.", "Explain recursion.", "prefix"),
    ("1. Task: Plan a trip to Rome.", "Plan a trip to Rome.", "prefix"),
    # answer markers (case-sensitive, with their colon)
    ("How do I sort a list?\nAnswer: use sorted().", "How do I sort a list?", "answer_marker"),
    ("What is 7*6? **Answer:** 42", "What is 7*6?", "answer_marker"),
    ("What is 7*6?\n**Answer**: 42", "What is 7*6?", "answer_marker"),
    ("Which planet is largest? The correct answer: Jupiter", "Which planet is largest?", "answer_marker"),
    ("Which planet is largest? The correct answer is: Jupiter", "Which planet is largest?", "answer_marker"),
    ("Why do leaves fall?\nExplanation: in autumn ...", "Why do leaves fall?", "answer_marker"),
    ("Integrate x^2.\n\nSolution: x^3/3 + C", "Integrate x^2.", "answer_marker"),
    ("Give me study tips. Here are some: sleep, ...", "Give me study tips.", "answer_marker"),
    ("1. Question: What is DNA?\nAnswer: a molecule", "What is DNA?", "answer_marker"),
    ("Answer: 42", "", "answer_marker"),
    # step markers (Llama-3 families and unknown families)
    ("Solve 2x + 3 = 7.\n### Step 1: subtract 3", "Solve 2x + 3 = 7.", "step_marker"),
    ("Solve 2x + 3 = 7.\n## Step 1: subtract 3", "Solve 2x + 3 = 7.", "step_marker"),
    # quoted, bold and colon-ended first lines
    ('"What is a monad?" asked the student.', "What is a monad?", "quoted_question"),
    ("\u201cCarpe diem\u201d: what does it mean? It means ...", "Carpe diem: what does it mean?", "quoted_question"),
    ('"To be or not to be" - explain this line.\nIt means ...', "To be or not to be - explain this line.",
     "quoted_line"),
    ("**Why is the sky blue?** Because ...", "Why is the sky blue?", "bold_question"),
    ("**Write a limerick**\nThere once was ...", "Write a limerick", "bold_line"),
    ("<b>Write a limerick</b>\nThere once was ...", "Write a limerick", "html_bold"),
    ("Here is my code:\nprint(1)\nWhy does it print 1? Because ...", "Here is my code:\nprint(1)\nWhy does it print 1?",
     "colon_question"),
    ("Write a function that does the following:\n1. read a file\n2. count words",
     "Write a function that does the following:", "colon_line"),
    ("Explain this table:\n| a | b |\n## Summary\nThe table ...", "Explain this table:", "colon_header"),
    # left alone: returned exactly as given
    ("Explain Answers in exams.", "Explain Answers in exams.", None),
    ("answer: yes or no?", "answer: yes or no?", None),
    ("J. K. Rowling wrote which books?", "J. K. Rowling wrote which books?", None),
    ("3.14 is pi. Why?", "3.14 is pi. Why?", None),
    ("Question everything: is free will real?", "Question everything: is free will real?", None),
    ("Problem solving tips for kids", "Problem solving tips for kids", None),
    ("In C#, what is a delegate?", "In C#, what is a delegate?", None),
    ("Write a poem about:", "Write a poem about:", None),
    ("  What is 2 + 2?  ", "  What is 2 + 2?  ", None),
    ("", "", None),
]


@pytest.mark.parametrize(("text", "kept", "rule"), CASES)
def test_sanitize_cases(text, kept, rule):
    assert sanitize_instruction(text) == (kept, rule)


def test_step_markers_only_for_llama3_and_unknown_families():
    text = "Solve 2x + 3 = 7.\n## Step 1: subtract 3"
    for family in (None, "llama-3", "llama-3.1"):
        assert sanitize_instruction(text, family=family) == ("Solve 2x + 3 = 7.", "step_marker")
    for family in ("gemma-2", "qwen2.5", "phi-3"):
        assert sanitize_instruction(text, family=family) == (text, None)
    # the other rules hold for every family
    assert sanitize_instruction("Task: Name a prime.\nAnswer: 7", family="gemma-2") == ("Name a prime.", "answer_marker")


def test_rejects_non_text():
    with pytest.raises(TypeError, match="as a str, got NoneType"):
        sanitize_instruction(None)


def test_exported_from_the_package():
    assert magpie.sanitize_instruction is sanitize_instruction
    assert "sanitize_instruction" in magpie.__all__


def test_clean_instruction_keeps_early_stop_and_runs_the_sanitizer():
    text = "Q1. How do I sort a list?\nAnswer: use sorted()."
    assert tidy_instruction(text, early_stop=False, sanitize=False) == (text, False, None)
    assert tidy_instruction(text, early_stop=True, sanitize=False) == ("Q1. How do I sort a list?", True, None)
    assert tidy_instruction(text, early_stop=True, sanitize=True) == ("How do I sort a list?", True, "prefix")
    assert tidy_instruction(text, early_stop=False, sanitize=True) == ("How do I sort a list?", True, "answer_marker")
    assert tidy_instruction("  Hi there.  ", early_stop=False, sanitize=True) == ("Hi there.", False, None)
    # a stripped label leaves the end as sampled: not a cut (a max_tokens hit still shows)
    assert tidy_instruction("Task: Name a prime", early_stop=False, sanitize=True) == ("Name a prime", False, "prefix")
    assert clean_instruction(text, False, True) == ("How do I sort a list?", True)


# Texts built from the pieces the rules look for, so most examples exercise several rules.
PIECES = st.sampled_from([
    "Task:", "Question 3:", "Q1.", "Part 2:", "**", "*", "## ", "#", "Problem", "**Problem**", "Answer:",
    "The correct answer:", "Explanation:", "Solution:", "Here are some:", "## Step 1", "?", ":", "\n", " ",
    '"', "\u201c", "<b>", "</b>", "1. ", "a) ", "(b) ", "c. ", "__", "Context", "\t", ".", "2", "What is x",
])
TEXTS = st.lists(PIECES | st.text(max_size=4), max_size=25).map("".join)
FAMILIES = st.sampled_from([None, "llama-3", "llama-3.1", "gemma-2", "qwen2.5"])
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(TEXTS, FAMILIES)
def test_sanitizing_is_idempotent(text, family):
    once, rule = sanitize_instruction(text, family)
    assert sanitize_instruction(once, family) == (once, None)


@PROPERTY
@given(TEXTS, FAMILIES)
def test_sanitizing_never_lengthens_and_reports_every_change(text, family):
    kept, rule = sanitize_instruction(text, family)
    assert len(kept) <= len(text)
    assert (rule is None) == (kept == text)
    if rule is not None:
        assert kept == kept.strip()


@PROPERTY
@given(st.text(max_size=60), FAMILIES)
def test_any_text_is_idempotent(text, family):
    once, _ = sanitize_instruction(text, family)
    assert len(once) <= len(text) and sanitize_instruction(once, family) == (once, None)


LEAK = "Task: Solve 2x = 4.\n## Step 1: divide by 2 "
LLAMA_SPECIALS = ["<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>"]


def leaking_model(directory, fixture_name, **tokens):
    """A mute tiny model (greedy repeats words[0]) under a real template: it writes LEAK, twice."""
    tok = byte_tokenizer(fixture(fixture_name)["chat_template"], words=[LEAK], **tokens)
    return save_tiny_model(directory, tok, mute=True)


@pytest.fixture(scope="module")
def llama3_model(tmp_path_factory):
    return leaking_model(tmp_path_factory.mktemp("llama3"), "meta-llama__Meta-Llama-3-8B-Instruct",
                         specials=LLAMA_SPECIALS, bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|end_of_text|>",
                         name="test/tiny-llama-3")


@pytest.fixture(scope="module")
def gemma2_model(tmp_path_factory):
    return leaking_model(tmp_path_factory.mktemp("gemma2"), "google__gemma-2-2b-it",
                         specials=["<start_of_turn>", "<end_of_turn>"], bos="<bos>", eos="<eos>", pad="<pad>",
                         name="test/tiny-gemma-2")


GREEDY = {"temperature": 0.0, "max_tokens": 2}


def test_step1_sanitizes_for_the_template_family(llama3_model, gemma2_model):
    rows = {"uuid": ["r0", "r1"]}
    raw = add_magpie_instructions(rows, model=llama3_model, **GREEDY)
    assert raw["instruction"] == [(LEAK * 2).strip()] * 2
    assert raw["instruction_sanitize_class"] == [None, None] and raw["instruction_issue"] == ["max_tokens"] * 2

    llama = add_magpie_instructions(rows, model=llama3_model, sanitize=True, **GREEDY)
    assert llama["instruction"] == ["Solve 2x = 4."] * 2
    assert llama["instruction_sanitize_class"] == ["step_marker"] * 2
    assert llama["instruction_issue"] == [None, None]  # the truncated end was cut away
    assert llama["instruction_sanitize_class"].pa_type == INSTRUCTION_FEATURES["instruction_sanitize_class"].pa_type

    # Gemma-2 gets no step-marker cut: only the label goes, and the end is still max_tokens'.
    gemma = add_magpie_instructions(rows, model=gemma2_model, sanitize=True, **GREEDY)
    assert gemma["instruction"] == [(LEAK * 2).strip().removeprefix("Task: ")] * 2
    assert gemma["instruction_sanitize_class"] == ["prefix"] * 2
    assert gemma["instruction_issue"] == ["max_tokens"] * 2


def test_step1_writes_the_sanitize_class_on_the_embedded_model():
    ds = magpie.empty(2).map(magpie.add_magpie_instructions, batched=True,
                             fn_kwargs={"max_tokens": 24, "seed": 3, "sanitize": True})
    assert ds.features["instruction_sanitize_class"] == Value("string")
    assert all(options["sanitize"] for options in ds["instruction_options"])
    family = magpie_template(engines.load_engine(None).tokenizer).family
    for text, rule in zip(ds["instruction"], ds["instruction_sanitize_class"]):
        assert rule is None or rule in SANITIZE_CLASSES
        assert sanitize_instruction(text, family=family) == (text, None)  # what step 1 kept is clean
