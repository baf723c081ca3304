"""`magpie-datasets` command line: the same stages the library exports, end to end."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_template(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from .engines import resolve_model
    from .templates import describe

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model), trust_remote_code=args.trust_remote_code)
    print(json.dumps(describe(tokenizer, system_prompt=args.system_prompt), indent=2, ensure_ascii=False))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import add_magpie_instructions, empty, generate_responses

    engine_options = {"batch_size": args.batch_size} if args.engine == "transformers" else {}
    common = {"model": args.model, "engine": args.engine, "engine_options": engine_options}
    ds = empty(args.num_rows)
    ds = ds.map(
        add_magpie_instructions,
        batched=True,
        batch_size=args.batch_size,
        desc="Step 1: instructions",
        fn_kwargs={
            **common,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "max_tokens": args.max_instruction_tokens,
            "seed": args.seed,
            "early_stop": args.early_stop,
            "sanitize": args.sanitize,
            "system_prompt": args.system_prompt,
        },
    )
    ds = ds.map(
        generate_responses,
        batched=True,
        batch_size=args.batch_size,
        desc="Step 2: responses",
        fn_kwargs={**common, "max_tokens": args.max_response_tokens, "seed": args.seed},
    )
    ds.save_to_disk(args.output)
    usable = sum(1 for a, b in zip(ds["instruction_issue"], ds["response_issue"]) if a is None and b is None)
    sample = ds[0] if len(ds) else {}
    print(json.dumps({k: sample.get(k) for k in ("instruction", "response")}, indent=2, ensure_ascii=False))
    print(f"{len(ds)} rows ({usable} with no instruction/response issue) written to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magpie-datasets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("template", help="print the Magpie pre-query/post-query/stop strings of a chat model")
    p.add_argument("model", nargs="?", default=None, help="hub id or local dir (default: the embedded model)")
    p.add_argument("--system-prompt", default=None, help='"template" (as rendered) or a system prompt string')
    p.add_argument("--trust-remote-code", action="store_true")
    p.set_defaults(func=cmd_template)

    p = sub.add_parser("generate", help="steps 1 and 2: instructions, then responses, saved with save_to_disk")
    p.add_argument("--model", default=None, help="hub id or local dir (default: embedded SmolLM2-135M-Instruct)")
    p.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    p.add_argument("--num-rows", type=int, required=True)
    p.add_argument("--output", required=True, help="directory for Dataset.save_to_disk")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0, help="step 1 temperature (step 2 is greedy)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-instruction-tokens", type=int, default=2048)
    p.add_argument("--max-response-tokens", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--early-stop", action="store_true", help="cut each instruction at its first newline")
    p.add_argument("--sanitize", action="store_true", help="cut answer leaks such as 'Answer:' from instructions")
    p.add_argument("--system-prompt", default=None)
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
