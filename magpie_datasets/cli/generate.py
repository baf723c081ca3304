"""`magpie-datasets generate`: steps 1 and 2 (instructions, then responses), resumable, saved to disk;
with the option defaults that suit the model (`fill_model_defaults`) and the steps (`generate_steps`)."""

from __future__ import annotations

import argparse
import json
import sys

from .preflight_flags import add_preflight_flags


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}); give an object such as '{{\"enable_thinking\": false}}'")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"give a JSON object such as '{{\"enable_thinking\": false}}', not {text}")
    return value


# The caps of the authors' release suit aligned models of billions of parameters. The embedded
# 135M model rambles to them and loops without a penalty, so it gets its own unless told otherwise.
PAPER_DEFAULTS = {"max_instruction_tokens": 2048, "max_response_tokens": 4096, "repetition_penalty": 1.0,
                  "early_stop": False}
EMBEDDED_DEFAULTS = {"max_instruction_tokens": 128, "max_response_tokens": 512, "repetition_penalty": 1.2,
                     "early_stop": True}


def fill_model_defaults(args: argparse.Namespace) -> dict:
    """Set the options left unset from the model's defaults; returns those it set for the embedded model."""
    from ..engines.embedded import EMBEDDED_CHAT_MODEL

    embedded = args.model in (None, EMBEDDED_CHAT_MODEL)
    defaults = EMBEDDED_DEFAULTS if embedded else PAPER_DEFAULTS
    filled = {name: value for name, value in defaults.items() if getattr(args, name) is None}
    for name, value in filled.items():
        setattr(args, name, value)
    return filled if embedded else {}


def generate_steps(args: argparse.Namespace) -> list:
    """Steps 1 and 2 as (batched map function, fn_kwargs) pairs, from the CLI options."""
    from ..stages.generate import add_magpie_instructions, generate_responses

    fill_model_defaults(args)

    # --batch-size is the checkpoint's batch, not the engine's: the runner keeps enough batches in
    # flight to fill the engine at its own concurrency (vLLM's max_num_seqs, transformers' batch_size)
    engine_options = {}
    if args.dtype in ("auto", "native") and args.engine == "vllm":
        raise SystemExit(f"magpie-datasets generate: error: --dtype {args.dtype} is for the transformers engine; "
                         "with --engine vllm give float32, bfloat16 or float16 (float32 is its CPU default)")
    if args.dtype:
        engine_options["dtype"] = args.dtype
    common = {"model": args.model, "engine": args.engine, "engine_options": engine_options}
    if getattr(args, "chat_template_kwargs", None):  # both steps render the template with them
        common["chat_template_kwargs"] = args.chat_template_kwargs
    step1 = {
        **common,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_instruction_tokens,
        "seed": args.seed,
        "early_stop": args.early_stop,
        "sanitize": args.sanitize,
        "system_prompt": args.system_prompt,
    }
    step2 = {**common, "max_tokens": args.max_response_tokens, "repetition_penalty": args.repetition_penalty,
             "seed": args.seed}
    return [(add_magpie_instructions, step1), (generate_responses, step2)]


def cmd_generate(args: argparse.Namespace) -> int:
    import shutil

    from ..runners.checkpoint import (
        check_output,
        checkpoint_report,
        run_resumable,
        save_dataset,
    )
    from ..runners.run_identity import run_identity
    from ..stages.generate import empty

    if args.num_rows < 1:
        raise SystemExit(f"magpie-datasets generate: error: --num-rows must be at least 1, got {args.num_rows}")
    chosen = fill_model_defaults(args)
    steps = generate_steps(args)
    checkpoint = args.checkpoint_dir or f"{args.output.rstrip('/')}.checkpoint"
    if args.check or args.preflight:
        from ..runners.preflight import preflight, print_report

        report = preflight(steps, output=args.output, checkpoint_dir=checkpoint, ray=args.ray is not None)
        if args.check:
            print_report(report)
            return 0 if report.ok else 1
        report.raise_for_problems()
        for note in report.notes:
            print(f"preflight: {note}", file=sys.stderr)
    if chosen:
        shown = ", ".join(f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k.replace('_', '-')}"
                          for k, v in chosen.items())
        print(f"embedded model: using {shown} (it rambles to the paper's caps; pass any of them to change it)",
              file=sys.stderr)
    ds = empty(args.num_rows)
    identity = run_identity(ds, steps, args.batch_size)
    if check_output(args.output, identity):  # raises if it holds a different run
        print(f"{args.output} already holds this finished run; nothing to do.")
        return 0
    if args.ray is not None:
        from ..runners.on_ray import run_on_ray

        ds = run_on_ray(ds, steps, address=args.ray or None, batch_size=args.batch_size, checkpoint_dir=checkpoint)
    else:
        ds = run_resumable(ds, steps, checkpoint, batch_size=args.batch_size, desc="Steps 1+2")
    save_dataset(ds, args.output, identity, report=checkpoint_report(checkpoint))  # + yield_report.json
    clean = [i for i, (a, b) in enumerate(zip(ds["instruction_issue"], ds["response_issue"])) if a is None and b is None]
    usable = len(clean)
    sample = ds[clean[0] if clean else 0] if len(ds) else {}  # show a row without issues where there is one
    print(json.dumps({k: sample.get(k) for k in ("instruction", "response")}, indent=2, ensure_ascii=False))
    print(f"{len(ds)} rows ({usable} with no instruction/response issue) written to {args.output}")
    if not args.checkpoint_dir:  # the default checkpoint has served its purpose
        shutil.rmtree(checkpoint, ignore_errors=True)
    return 0



def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`magpie-datasets generate --num-rows N --output DIR [--model M] ...`."""
    p = subparsers.add_parser("generate", help="steps 1 and 2: instructions, then responses, saved with save_to_disk")
    p.add_argument("--model", default=None, help="hub id or local dir (default: embedded SmolLM2-135M-Instruct)")
    p.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    p.add_argument("--num-rows", type=int, required=True)
    p.add_argument("--output", required=True, help="directory for Dataset.save_to_disk")
    p.add_argument("--batch-size", type=int, default=64,
                   help="rows per checkpoint batch, written at once (a kill loses at most the batches in flight); "
                        "the engine is fed from several batches at once, whatever this is")
    p.add_argument("--dtype", default=None,
                   help='compute dtype (transformers default auto: fp32 on CPU, where rows do not depend on '
                        'batching; "native": bf16 on CPUs that compute it, faster)')
    p.add_argument("--temperature", type=float, default=1.0, help="step 1 temperature (step 2 is greedy)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-instruction-tokens", type=int, default=None,
                   help="step 1 cap (default: 2048 as in the paper; 128 for the embedded model)")
    p.add_argument("--max-response-tokens", type=int, default=None,
                   help="step 2 cap (default: 4096 as in the paper; 512 for the embedded model)")
    p.add_argument(
        "--repetition-penalty",
        type=float,
        default=None,
        help="step 2 repetition penalty (default: 1.0 as in the paper; 1.2 for the embedded model, which loops)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=None,
                   help="stop each instruction at its first newline (default: off; on for the embedded model)")
    p.add_argument("--sanitize", action="store_true", help="cut answer leaks such as 'Answer:' from instructions")
    p.add_argument("--system-prompt", default=None)
    p.add_argument("--chat-template-kwargs", type=_json_object, default=None, metavar="JSON",
                   help='keyword arguments for the chat template in both steps, e.g. \'{"enable_thinking": false}\'')
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        help="where finished batches are kept; run the same command again to resume "
        "(default: OUTPUT.checkpoint, removed once OUTPUT is written)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the batches on a Ray cluster (ADDRESS, e.g. ray://head:10001 or auto; none: a local cluster)",
    )
    add_preflight_flags(p, "the model, engine, packages and output")
    p.set_defaults(func=cmd_generate)
    return p
