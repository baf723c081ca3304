"""GPU check for maintainers with a CUDA GPU: steps 1 and 2 through `Dataset.map` on vLLM against
bare `vllm.LLM.generate` on the same prompts, in one run, on the embedded model.

    bash bench/gpu_check.sh            # installs vllm and this package, then runs this script
    python bench/gpu_check.py --rows 1024 --max-tokens 256

Prints one JSON object: tokens/s of both paths and their ratio for each step, and the peak GPU
memory (sampled with nvidia-smi, since vLLM's engine core is another process). Writes it to
`bench/results/gpu_check.json`. Meant to finish within 10 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class GpuMemoryPeak:
    """Highest `memory.used` (MiB) nvidia-smi reports while the block runs."""

    def __enter__(self):
        self.peak_mib, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True)
            used = [int(v) for v in out.stdout.split() if v.strip().isdigit()]
            self.peak_mib = max([self.peak_mib, *used])
            self._stop.wait(0.5)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_check.json"))
    args = parser.parse_args()

    import torch
    import vllm

    import magpie_datasets as magpie
    from magpie_datasets.engines import load_engine
    from magpie_datasets.engines.base import generated_tokens
    from magpie_datasets.engines.vllm import _request_seed
    from magpie_datasets.stages.generate import row_seed
    from magpie_datasets.templates import chat_prompt, magpie_template

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU visible to torch; run it on a machine with one")
    result = {"gpu": torch.cuda.get_device_name(0), "vllm": vllm.__version__, "rows": args.rows,
              "max_tokens": args.max_tokens, "package": magpie.__version__}
    with GpuMemoryPeak() as memory:
        llm = load_engine(None, "vllm")
        template = magpie_template(llm.tokenizer)
        ds = magpie.empty(args.rows)
        step1 = {"engine": "vllm", "max_tokens": args.max_tokens, "seed": args.seed}
        step2 = {"engine": "vllm", "max_tokens": args.max_tokens}

        def through_map(fn, data, kwargs):
            before = generated_tokens()
            out, seconds = timed(lambda: data.map(fn, batched=True, batch_size=len(data), fn_kwargs=kwargs,
                                                  load_from_cache_file=False))
            return out, generated_tokens() - before, seconds

        def bare(prompts, seeds, temperature):
            params = [vllm.SamplingParams(temperature=temperature, max_tokens=args.max_tokens, stop=list(template.stop),
                                          seed=seed) for seed in seeds]
            outputs, seconds = timed(lambda: llm.llm.generate(prompts, params, use_tqdm=False))
            return sum(len(o.outputs[0].token_ids) for o in outputs), seconds

        instructions, map1_tokens, map1_s = through_map(magpie.add_magpie_instructions, ds, step1)
        seeds = [_request_seed(str(row_seed(args.seed, u))) for u in ds["uuid"]]  # the seeds the stage sends
        bare1_tokens, bare1_s = bare([template.pre_query] * args.rows, seeds, 1.0)
        answered, map2_tokens, map2_s = through_map(magpie.generate_responses, instructions, step2)
        prompts = [chat_prompt(llm.tokenizer, [{"role": "user", "content": q}]) for q in instructions["instruction"] if q.strip()]
        bare2_tokens, bare2_s = bare(prompts, [None] * len(prompts), 0.0)
    for step, (mt, ms, bt, bs) in {"step1": (map1_tokens, map1_s, bare1_tokens, bare1_s),
                                    "step2": (map2_tokens, map2_s, bare2_tokens, bare2_s)}.items():
        result[step] = {"map_tok_s": round(mt / ms, 1), "bare_tok_s": round(bt / bs, 1),
                        "map_over_bare": round((mt / ms) / (bt / bs), 3), "map_tokens": mt, "bare_tokens": bt}
    result["peak_gpu_memory_mib"] = memory.peak_mib
    result["rows_without_issues"] = sum(a is None and b is None for a, b in
                                        zip(answered["instruction_issue"], answered["response_issue"]))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
