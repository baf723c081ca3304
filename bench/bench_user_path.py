"""Steps 1 and 2 on the paths users take, against the engine's one-call ceiling, in one process.

    python bench/bench_user_path.py --engine vllm --rows 512                  # the issue's setting
    python bench/bench_user_path.py --engine transformers --rows 64 --max-response-tokens 128

Every path makes the same rows from the same options: the CLI's `generate` steps
(`cli.generate_steps`: sampled step 1 with the row seeds, greedy step 2, the embedded model's
caps unless given) on the same loaded engine.

- `ceiling`: every step-1 prompt in one engine call, then every step-2 prompt in one call; for
  vLLM the bare `vllm.LLM.generate` on the requests our engine builds (`VLLMEngine.requests`),
  for transformers one call of its own `generate`. The calls are those the stages made on the
  first path, replayed (the rows are seeded per row, so one call gives the same texts).
  With `--ceiling bare` (transformers): transformers' own `model.generate` on those prompts.
- `cli`: `magpie-datasets generate` at its defaults (in this process: the same engine).
- `run_resumable[B]`: the checkpoint runner at checkpoint batch B (the CLI's runner).
- `dataset_map`: `Dataset.map(batched=True)` at its default batch of 1,000.
- `ray` (with `--ray`): `run_on_ray` at its defaults on a local Ray cluster started once, before
  the timing; its actor loads its own engine (same model and options) in its own process on every
  call. That start is timed alone before each `ray` run (a one-row run with 1-token caps;
  `ray_start_seconds`), and `ray_after_start` is the `ray` ratio with its mean taken off the seconds.

The paths run ceiling, the others, ceiling again (A B ... A), so drift on a shared machine shows;
with `--rounds R` the round (ceiling, the others) runs R times before the last ceiling, and
`vs_ceiling` gives each path's tokens over its seconds across the rounds, against the ceilings' mean.
This machine's speed wanders by several per cent within minutes, so with `--ceiling-between` a
ceiling runs between every two paths (A B A C A ...) and `vs_neighbours` gives each path against the
mean of the two ceilings run just before and just after it, averaged over the rounds.
Tokens are the completion tokens the engine generated; `rows_as_dataset_map` counts the rows equal
to those of the first (recording) `Dataset.map` run: all of them with vLLM; with the transformers
engine a near-tie between two tokens can go the other way when a batch pads a row differently
(the order of float sums changes), so a few rows, and the token count, may differ. Printed and written as JSON: seconds, tok/s and the ratio
to the mean of the two ceiling runs. Model loading is excluded (a warm-up call first).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="vllm")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--max-instruction-tokens", type=int, default=128)
    parser.add_argument("--max-response-tokens", type=int, default=256)
    parser.add_argument("--checkpoint-sizes", default="16,64,512,4096",
                        help="run_resumable checkpoint batch sizes, comma separated")
    parser.add_argument("--model", default=None, help="a model folder (default: the embedded model)")
    parser.add_argument("--ceiling", choices=["engine", "bare"], default="engine",
                        help='"engine": one call of the engine per step (bare vllm.LLM.generate for vLLM, our own '
                             'generate for transformers); "bare" (transformers only): transformers\' own '
                             '`model.generate` over every prompt, in batches of the engine\'s batch_size')
    parser.add_argument("--ignore-eos", action="store_true",
                        help="transformers only: no stop token or string ends a row, so every row generates its "
                             "cap (a randomly initialised model: tokens/s then does not depend on the weights)")
    parser.add_argument("--ray", action="store_true", help="also run the Ray runner on a local cluster")
    parser.add_argument("--ceiling-between", action="store_true",
                        help="run the ceiling between every two paths (drift within a round)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every path this many times (ceiling first in each round, once more at the end)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if args.engine == "vllm" and (args.ceiling == "bare" or args.ignore_eos):
        parser.error("--ceiling bare and --ignore-eos are for --engine transformers")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    from magpie_datasets import cli
    from magpie_datasets.engines import load_engine
    from magpie_datasets.engines.base import Sampling, generated_tokens, split_stops
    from magpie_datasets.runners.checkpoint import run_resumable
    from magpie_datasets.stages.generate import empty

    argv = ["generate", "--engine", args.engine, "--num-rows", str(args.rows),
            "--max-instruction-tokens", str(args.max_instruction_tokens),
            "--max-response-tokens", str(args.max_response_tokens), *(["--model", args.model] if args.model else [])]
    work = Path(tempfile.mkdtemp(prefix="bench-user-path-"))
    steps = cli.generate_steps(cli.build_parser().parse_args([*argv, "--output", str(work / "x")]))
    options = steps[0][1]
    engine = load_engine(options["model"], args.engine, **options["engine_options"])
    if args.ignore_eos:  # every path runs through this engine object (load_engine caches it)
        engine.eos_ids, plain = set(), engine.generate
        engine.generate = lambda prompts, sampling, seeds=None: plain(
            prompts, dataclasses.replace(sampling, stop=(), stop_token_ids=()), seeds)
    engine.generate(["Hello"], Sampling(max_tokens=4, temperature=0))  # warm-up: loading is not timed

    # the calls the stages make, recorded on the first path, replayed as one call per step
    recorded: list[tuple] = []
    generate = engine.generate

    def bare(prompts, sampling) -> int:
        """transformers' own `generate` on `prompts`, shortest first in batches of the engine's
        batch_size; returns the completion tokens (up to the first stop id)."""
        stops = set() if args.ignore_eos else engine.eos_ids | split_stops(engine.tokenizer, sampling.stop)[0]
        encoded = engine.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        encoded.sort(key=len)
        tokens = 0
        for first in range(0, len(encoded), engine.batch_size):
            part = encoded[first: first + engine.batch_size]
            width = max(len(ids) for ids in part)
            ids = torch.full((len(part), width), engine.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, row in enumerate(part):
                ids[i, width - len(row):], mask[i, width - len(row):] = torch.tensor(row), 1
            sampled = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0} \
                if sampling.temperature > 0 else {"do_sample": False}
            with torch.inference_mode():
                out = engine.model.generate(
                    input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device),
                    max_new_tokens=sampling.max_tokens, eos_token_id=sorted(stops) or None, pad_token_id=engine.pad_id,
                    repetition_penalty=sampling.repetition_penalty, **sampled,
                    **({"min_new_tokens": sampling.max_tokens} if args.ignore_eos else {}))
            for row in out[:, width:].tolist():
                tokens += next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        return tokens

    def recording(prompts, sampling, seeds=None):
        recorded.append((list(prompts), sampling, None if seeds is None else list(seeds)))
        return generate(prompts, sampling, seeds)

    def rows_of(ds):
        return [(r["uuid"], r["instruction"], r["response"]) for r in ds]

    def ceiling():
        by_sampling: dict = {}
        for prompts, sampling, seeds in recorded:
            p, s = by_sampling.setdefault(sampling, ([], []))
            p.extend(prompts)
            s.extend(seeds or [])
        tokens = 0  # completion tokens, counted as the engines count them
        for sampling, (prompts, seeds) in by_sampling.items():
            if args.ceiling == "bare":
                tokens += bare(prompts, sampling)
            elif args.engine == "vllm":
                requests, params = engine.requests(prompts, sampling, seeds or None)
                outputs = engine.llm.generate(requests, params, use_tqdm=False)
                tokens += sum(len(o.token_ids) for out in outputs for o in out.outputs)
            else:
                out = engine.generate(prompts, sampling, seeds or None)
                tokens += sum(c.completion_tokens for per in out for c in per)
        return tokens

    results, reference = [], []
    cuda = torch.cuda.is_available() and args.engine == "transformers"  # vLLM's GPU is another process's

    def timed(name, run, tokens_elsewhere=None):
        """`tokens_elsewhere`: the completion tokens of a path whose engine runs in another process
        (its rows, when equal to `Dataset.map`'s, took the recording run's tokens)."""
        before = generated_tokens()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        value = run()
        seconds = time.perf_counter() - start
        tokens = value if isinstance(value, int) else tokens_elsewhere or generated_tokens() - before
        same = None
        if not isinstance(value, int):
            rows = rows_of(value)
            assert len(rows) == len(reference), f"{name} made {len(rows)} rows, not {len(reference)}"
            same = sum(a == b for a, b in zip(rows, reference))
        results.append({"path": name, "seconds": round(seconds, 2), "tokens": tokens,
                        "tok_per_s": round(tokens / seconds, 1), "rows_as_dataset_map": same,
                        **({"peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)} if cuda else {})})
        print(json.dumps(results[-1]), flush=True)

    def through_map():
        ds = empty(args.rows)
        for fn, kwargs in steps:
            ds = ds.map(fn, batched=True, fn_kwargs=kwargs)
        return ds

    # path 0 (untimed for the ratios): record the stages' calls
    engine.generate = recording
    before = generated_tokens()
    rows_of_map = through_map()
    map_tokens = generated_tokens() - before
    engine.generate = generate
    reference = rows_of(rows_of_map)

    def through_cli():
        from datasets import load_from_disk

        output = work / f"cli-{len(results)}"
        assert cli.main([*argv, "--output", str(output), "--no-preflight"]) in (0, None)
        return load_from_disk(str(output))

    if args.ray:
        import ray

        from magpie_datasets.runners.on_ray import run_on_ray

        env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TQDM_DISABLE", "VLLM_CPU_KVCACHE_SPACE") if k in os.environ}
        ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
        tiny = [(fn, {**kwargs, "max_tokens": 1}) for fn, kwargs in steps]

    ray_starts: list[float] = []

    def through_ray():
        start = time.perf_counter()  # the actor's start and model load, alone
        run_on_ray(empty(1), tiny)
        ray_starts.append(round(time.perf_counter() - start, 2))
        timed("ray", lambda: run_on_ray(empty(args.rows), steps), tokens_elsewhere=map_tokens)

    for round_ in range(args.rounds):
        paths = [lambda: timed("cli", through_cli)]
        for size in [int(s) for s in args.checkpoint_sizes.split(",") if s]:
            paths.append(lambda size=size: timed(f"run_resumable[{size}]", lambda: run_resumable(
                empty(args.rows), steps, work / f"ck-{size}-{round_}", batch_size=size)))
        paths.append(lambda: timed("dataset_map", through_map))
        if args.ray:
            paths.append(through_ray)
        timed("ceiling", ceiling)
        for n, path in enumerate(paths):
            path()
            if args.ceiling_between and n < len(paths) - 1:
                timed("ceiling", ceiling)
    timed("ceiling", ceiling)

    ceilings = [r["tok_per_s"] for r in results if r["path"] == "ceiling"]
    mean = sum(ceilings) / len(ceilings)
    for r in results:
        r["vs_ceiling"] = round(r["tok_per_s"] / mean, 3)
    paths = dict.fromkeys(r["path"] for r in results)
    # each path over its rounds: the seconds summed, so the ratio weighs every round alike
    summary = {p: round(sum(r["tokens"] for r in results if r["path"] == p)
                        / sum(r["seconds"] for r in results if r["path"] == p) / mean, 3) for p in paths}
    if ray_starts:
        ray = [r for r in results if r["path"] == "ray"]
        start = sum(ray_starts) / len(ray_starts)
        summary["ray_after_start"] = round(sum(r["tokens"] for r in ray) / (sum(r["seconds"] for r in ray) - start * len(ray))
                                           / mean, 3)
    # each run against the ceilings just before and after it, averaged per path over the rounds
    neighbours: dict[str, list[float]] = {}
    for i, r in enumerate(results):
        before = next(c for c in reversed(results[:i]) if c["path"] == "ceiling") if i else None
        after = next((c for c in results[i + 1:] if c["path"] == "ceiling"), None)
        if r["path"] != "ceiling" and before and after:
            neighbours.setdefault(r["path"], []).append(r["tok_per_s"] / ((before["tok_per_s"] + after["tok_per_s"]) / 2))
    report = {"args": vars(args), "engine": args.engine, "cores": os.cpu_count(), "ceiling_tok_per_s": mean,
              "ceiling_drift": round(ceilings[-1] / ceilings[0], 3), "vs_ceiling": summary,
              "vs_neighbours": {p: round(sum(v) / len(v), 3) for p, v in neighbours.items()},
              **({"ray_start_seconds": ray_starts} if ray_starts else {}), "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
