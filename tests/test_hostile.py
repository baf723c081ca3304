"""Hostile input: each case gives one clear error and leaves nothing half-written; secrets never leak.

Everything runs the real modules on real files: a tiny random-weights base model saved to disk,
the embedded SmolLM2 tokenizer, the real CLI (in-process, `cli.main`), real checkpoints.
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
from datasets import Dataset

from magpie_datasets import cli
from magpie_datasets.engines import ModelNotAvailableError
from magpie_datasets.runners.checkpoint import (
    run_resumable,
    save_dataset,
)
from magpie_datasets.runners.run_identity import CheckpointMismatchError, run_identity
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.generate import (
    add_magpie_instructions,
    empty,
    generate_responses,
)
from magpie_datasets.templates import TemplateError, magpie_template

PACKAGE = Path(__file__).resolve().parent.parent / "magpie_datasets"
FAKE_TOKEN = "hf_FakeTokenForLeakTestsDoNotUse0123456789"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")



def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`magpie-datasets ARGV` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
        if not isinstance(stop.code, int) and stop.code is not None:
            print(stop.code, file=__import__("sys").stderr)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err  # exactly one error line ...
    assert "Traceback" not in err  # ... and no traceback
    for needle in needles:
        assert needle in lines[0]


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


# ----------------------------------------------------------------------------- templates / models


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from magpie_datasets.engines.embedded import smollm2_dir

    return AutoTokenizer.from_pretrained(smollm2_dir())


def test_tokenizer_without_chat_template(smollm2_tokenizer):
    import copy

    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = None
    tokenizer.name_or_path = "acme/plain-tokenizer"
    with pytest.raises(TemplateError, match=r"acme/plain-tokenizer has no chat template.*chat_template"):
        magpie_template(tokenizer)


def test_model_not_available_offline_fails_fast_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(ModelNotAvailableError, match=r"no-such-org/no-such-model.*HF_HUB_OFFLINE"):
        empty(2).map(add_magpie_instructions, batched=True, fn_kwargs={"model": "no-such-org/no-such-model"})

    out = tmp_path / "out"
    code, _, err = run_cli(["generate", "--model", "no-such-org/no-such-model", "--num-rows", "4", "--output", str(out)], capsys)
    assert_one_error(code, err, "no-such-org/no-such-model", "not available")
    assert files_under(tmp_path) == set()  # no output, no checkpoint


# ----------------------------------------------------------------------------- datasets


def test_empty_dataset(tmp_path, capsys):
    code, _, err = run_cli(["generate", "--num-rows", "0", "--output", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, "--num-rows must be at least 1")

    with pytest.raises(ValueError, match="no rows"):
        run_resumable(empty(0), [(add_magpie_instructions, {})], tmp_path / "ck")

    import ray

    from magpie_datasets.runners.on_ray import run_on_ray

    with pytest.raises(ValueError, match="no rows"):
        run_on_ray(empty(0), [(add_magpie_instructions, {})], checkpoint_dir=tmp_path / "ck")
    assert not ray.is_initialized()  # refused before a cluster was started
    assert files_under(tmp_path) == set()


def test_missing_input_column(tmp_path):
    texts = Dataset.from_dict({"prompt": ["Write a haiku about rain."]})
    with pytest.raises(MissingColumnError, match=r"generate_responses needs column 'instruction'.*rename_column"):
        texts.map(generate_responses, batched=True)
    with pytest.raises(MissingColumnError, match=r"add_magpie_instructions needs column 'uuid'.*magpie\.empty"):
        texts.map(add_magpie_instructions, batched=True)

    with pytest.raises(MissingColumnError, match="needs column 'instruction'"):
        run_resumable(texts, [(generate_responses, {"max_tokens": 4})], tmp_path / "ck", batch_size=1)
    assert files_under(tmp_path) == set()  # the failed run's checkpoint directory is gone too


# ----------------------------------------------------------------------------- output directories


def test_output_directory_of_a_different_run(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["generate", "--num-rows", "3", "--batch-size", "2", "--output", str(out), "--seed", "1"]
    # `out` holds a finished run made with seed 1 (its identity as the CLI computes it) ...
    args = cli.build_parser().parse_args(argv)
    save_dataset(Dataset.from_dict({"x": [1, 2, 3]}), out, run_identity(empty(3), cli.generate_steps(args), 2))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    # ... the same command again: nothing to do, nothing loaded or rewritten
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0 and "already holds this finished run" in stdout

    # ... seed 2 into the same directory: one error naming what differs, directory untouched
    code, _, err = run_cli([*argv[:-1], "2"], capsys)
    assert_one_error(code, err, str(out), "different run", "seed: 1 != 2")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no checkpoint left beside it

    # ... and a directory with someone else's files
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, _, err = run_cli(["generate", "--num-rows", "3", "--output", str(other)], capsys)
    assert_one_error(code, err, "files that this run did not write")
    assert files_under(other) == {"notes.txt"}
    with pytest.raises(CheckpointMismatchError):
        save_dataset(Dataset.from_dict({"x": [1]}), other, {"any": "run"})


# ----------------------------------------------------------------------------- security


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield name, node


LOADERS = {"from_pretrained", "LLM", "SentenceTransformer", "pipeline", "snapshot_download", "CrossEncoder"}


def test_trust_remote_code_is_never_on_by_default():
    """Every model/tokenizer loader call either leaves trust_remote_code at the library default
    (False) or passes a value that comes from a parameter whose default is False."""
    loader_calls = 0
    for source in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                positional = args.posonlyargs + args.args
                defaults = dict(zip([a.arg for a in positional][-len(args.defaults) :] if args.defaults else [], args.defaults))
                defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
                if "trust_remote_code" in defaults:
                    value = defaults["trust_remote_code"]
                    assert isinstance(value, ast.Constant) and value.value in (False, None), (
                        f"{source.name}:{node.lineno} {node.name}(trust_remote_code=...) must default to False"
                    )
        for name, call in _calls(tree):
            for keyword in call.keywords:
                if keyword.arg == "trust_remote_code":
                    assert not (isinstance(keyword.value, ast.Constant) and keyword.value.value is True), (
                        f"{source.name}:{call.lineno} turns trust_remote_code on unconditionally"
                    )
                if keyword.arg is None and name in LOADERS:  # **kwargs into a loader: checked at runtime below
                    pass
            loader_calls += name in LOADERS
    assert loader_calls >= 2  # the scan really saw the loaders

    # the CLI flag is off unless given
    args = cli.build_parser().parse_args(["template"])
    assert args.trust_remote_code is False


def test_a_token_never_reaches_manifests_run_files_or_logs(tmp_path, monkeypatch, caplog, capsys):
    """A token in HF_TOKEN and passed as `token=` (here inside engine options of a step)."""
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)

    def shout(batch, engine_options=None, note=""):
        return {"y": [f"{x}!" for x in batch["x"]]}

    ds = Dataset.from_dict({"x": ["a", "b", "c"]})
    steps = [(shout, {"engine_options": {"token": FAKE_TOKEN}, "note": f"token is {FAKE_TOKEN}"})]
    out = run_resumable(ds, steps, tmp_path / "ck", batch_size=2)
    save_dataset(out, tmp_path / "out", run_identity(ds, steps, 2))
    manifest = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    assert manifest["steps"][0]["fn_kwargs"]["engine_options"]["token"] == "<redacted>"
    assert_no_token(tmp_path, caplog, capsys)


def assert_no_token(root: Path, caplog, capsys) -> None:
    scanned = 0
    for path in root.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), f"token written to {path}"
            scanned += 1
    assert scanned > 0
    assert FAKE_TOKEN not in caplog.text
    captured = capsys.readouterr()
    assert FAKE_TOKEN not in captured.out and FAKE_TOKEN not in captured.err


def test_save_for_hub_with_a_token_in_the_environment(tmp_path, monkeypatch, caplog, capsys):
    from magpie_datasets.publish import hub
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    rows = Dataset.from_dict(
        {
            "uuid": ["u1", "u2"],
            "instruction": ["What is 2+2?", "Name a colour."],
            "response": ["4", "Blue."],
            "model": ["HuggingFaceTB/SmolLM2-135M-Instruct"] * 2,
        }
    )
    hub.save_for_hub(rows, tmp_path / "repo", stages=[{"stage": "generate", "rows": 2}])
    assert (tmp_path / "repo" / "README.md").exists()
    assert_no_token(tmp_path, caplog, capsys)


# ----------------------------------------------------------------------------- models on disk


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory, smollm2_tokenizer):
    """A base (non-chat) causal LM on disk: random tiny Llama weights, a tokenizer with no chat template."""
    import copy

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = tmp_path_factory.mktemp("models") / "tiny-base-lm"
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    assert not (directory / "chat_template.jinja").exists()
    return directory


def test_base_model_asked_for_step_1(base_model_dir, tmp_path, capsys):
    with pytest.raises(TemplateError, match=r"tiny-base-lm has no chat template.*chat/instruct model|tiny-base-lm has no chat template"):
        empty(2).map(add_magpie_instructions, batched=True, fn_kwargs={"model": str(base_model_dir), "max_tokens": 4})

    out = tmp_path / "out"
    code, _, err = run_cli(["generate", "--model", str(base_model_dir), "--num-rows", "4", "--batch-size", "2",
                            "--max-instruction-tokens", "4", "--max-response-tokens", "4", "--output", str(out)], capsys)
    assert_one_error(code, err, "tiny-base-lm", "no chat template")
    assert files_under(tmp_path) == set()  # no output, no checkpoint


def test_remote_code_is_not_run_unless_asked(base_model_dir, tmp_path):
    """A model folder whose config points at its own Python code: loading it must not execute it."""
    import shutil

    from magpie_datasets.engines import load_engine

    directory = tmp_path / "remote-code-model"
    shutil.copytree(base_model_dir, directory)
    marker = tmp_path / "remote-code-ran"
    (directory / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                       "from transformers import LlamaConfig as EvilConfig, LlamaForCausalLM as EvilModel\n")
    config = json.loads((directory / "config.json").read_text())
    config.pop("model_type")  # nothing local to fall back to: only the remote code could load it
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (directory / "config.json").write_text(json.dumps(config))

    with pytest.raises(Exception, match="trust_remote_code"):
        load_engine(str(directory), "transformers")
    assert not marker.exists()


@pytest.fixture(scope="module")
def garbage_chat_model_dir(base_model_dir, tmp_path_factory, smollm2_tokenizer):
    """The tiny random-weights model with SmolLM2's chat template: a chat model that talks garbage."""
    import shutil

    directory = tmp_path_factory.mktemp("models") / "tiny-garbage-chat"
    shutil.copytree(base_model_dir, directory)
    tokenizer = type(smollm2_tokenizer).from_pretrained(directory)
    tokenizer.chat_template = smollm2_tokenizer.chat_template
    tokenizer.save_pretrained(directory)
    return directory


def test_a_judge_that_answers_garbage(garbage_chat_model_dir, one_torch_thread):
    # free answers: under the schema mask (the default) a judge cannot answer garbage
    from magpie_datasets.stages import tags

    rows = Dataset.from_dict({"instruction": ["Write a poem about the sea.", "", "What is 2 + 2?"]})
    out = rows.map(
        tags.tag_with_llm,
        batched=True,
        fn_kwargs={"model": str(garbage_chat_model_dir), "max_tokens": 12, "tags": ["quality", "task_category"], "constrained": False},
    )
    assert out["input_quality"] == [None, None, None]  # no label invented from garbage
    assert out["task_category"] == [None, None, None]
    raw = out["quality_raw_answer"]
    assert raw[0] and raw[2] and raw[1] is None  # what the judge said is kept; the empty row was not sent
    assert out["quality_generator"][0] == str(garbage_chat_model_dir)
    assert out.features["input_quality"].dtype == "string"  # typed even though all None
    assert out["tag_configs"][1] is None and out["tag_configs"][0]["constrained"] is False


def test_a_reward_model_of_the_wrong_type(base_model_dir, tmp_path):
    from magpie_datasets.stages import rewards
    rows = Dataset.from_dict({"instruction": ["Name a prime."], "response": ["7"]})
    with pytest.raises(rewards.RewardModelError, match="LlamaForCausalLM, not a sequence-classification reward model"):
        rows.map(rewards.add_rewards, batched=True, fn_kwargs={"model": str(base_model_dir)})
    with pytest.raises(rewards.RewardModelError, match="not a sequence-classification reward model"):
        run_resumable(rows, [(rewards.add_rewards, {"model": str(base_model_dir)})], tmp_path / "ck")
    assert files_under(tmp_path) == set()


def test_generate_cli_never_writes_or_logs_the_environment_token(
    tmp_path, monkeypatch, caplog, capsys, one_torch_thread
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    out, ck = tmp_path / "out", tmp_path / "ck"
    code, stdout, err = run_cli(["generate", "--num-rows", "2", "--batch-size", "2", "--max-instruction-tokens", "4",
                                 "--max-response-tokens", "4", "--output", str(out), "--checkpoint-dir", str(ck)], capsys)
    assert code == 0 and "2 rows" in stdout
    assert FAKE_TOKEN not in err
    assert (ck / "manifest.json").exists() and (out / "magpie_run.json").exists()
    assert FAKE_TOKEN not in stdout
    assert_no_token(tmp_path, caplog, capsys)


def test_build_cli_never_writes_or_logs_the_environment_token(
    tmp_path, monkeypatch, caplog, capsys, one_torch_thread
):
    import yaml

    import magpie_datasets.recipes  # noqa: F401

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny", "config_name": "tiny", "num_rows": 2, "engine_options": {"batch_size": 2},
        "stages": [
            {"stage": "add_magpie_instructions", "kwargs": {"engine_options": "$engine_options", "max_tokens": 4}},
            {"stage": "generate_responses", "kwargs": {"engine_options": "$engine_options", "max_tokens": 4}},
        ],
    }))
    out = tmp_path / "hub"
    code, stdout, err = run_cli(["build", str(recipe), "--output", str(out)], capsys)
    assert code == 0, err
    assert (out / "README.md").exists() and (tmp_path / "hub.tiny.checkpoint" / "00-add_magpie_instructions").exists()
    assert FAKE_TOKEN not in stdout and FAKE_TOKEN not in err
    assert_no_token(tmp_path, caplog, capsys)
