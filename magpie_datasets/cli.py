"""`magpie-datasets` command line: the same stages the library exports, end to end."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .recipes import add_build_parser


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}); give an object such as '{{\"enable_thinking\": false}}'")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"give a JSON object such as '{{\"enable_thinking\": false}}', not {text}")
    return value


def cmd_template(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from .engines import resolve_model
    from .templates import describe

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
    info = describe(tokenizer, system_prompt=args.system_prompt)
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


# The caps of the authors' release suit aligned models of billions of parameters. The embedded
# 135M model rambles to them and loops without a penalty, so it gets its own unless told otherwise.
PAPER_DEFAULTS = {"max_instruction_tokens": 2048, "max_response_tokens": 4096, "repetition_penalty": 1.0,
                  "early_stop": False}
EMBEDDED_DEFAULTS = {"max_instruction_tokens": 128, "max_response_tokens": 512, "repetition_penalty": 1.2,
                     "early_stop": True}


def fill_model_defaults(args: argparse.Namespace) -> dict:
    """Set the options left unset from the model's defaults; returns those it set for the embedded model."""
    from .engines.embedded import EMBEDDED_CHAT_MODEL

    embedded = args.model in (None, EMBEDDED_CHAT_MODEL)
    defaults = EMBEDDED_DEFAULTS if embedded else PAPER_DEFAULTS
    filled = {name: value for name, value in defaults.items() if getattr(args, name) is None}
    for name, value in filled.items():
        setattr(args, name, value)
    return filled if embedded else {}


def generate_steps(args: argparse.Namespace) -> list:
    """Steps 1 and 2 as (batched map function, fn_kwargs) pairs, from the CLI options."""
    from .stages.generate import add_magpie_instructions, generate_responses

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

    from .runners.checkpoint import (
        check_output,
        checkpoint_report,
        run_identity,
        run_resumable,
        save_dataset,
    )
    from .stages.generate import empty

    if args.num_rows < 1:
        raise SystemExit(f"magpie-datasets generate: error: --num-rows must be at least 1, got {args.num_rows}")
    chosen = fill_model_defaults(args)
    steps = generate_steps(args)
    checkpoint = args.checkpoint_dir or f"{args.output.rstrip('/')}.checkpoint"
    if args.check or args.preflight:
        from .runners.preflight import preflight, print_report

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
        from .runners.on_ray import run_on_ray

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


def cmd_probe(args: argparse.Namespace) -> int:
    from .runners.probe import format_report, probe

    if args.samples < 1:
        raise SystemExit(f"magpie-datasets probe: error: --samples must be at least 1, got {args.samples}")
    engine_options = {"batch_size": args.batch_size} if args.engine == "transformers" else {}
    report = probe(args.model, engine=args.engine, engine_options=engine_options, samples=args.samples,
                   max_tokens=args.max_tokens, early_stop=args.early_stop, temperature=args.temperature,
                   top_p=args.top_p, seed=args.seed)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text if args.json else format_report(report))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """`magpie-datasets analyze DATASET_DIR`: the card's analysis section, for any dataset on disk."""
    from pathlib import Path

    from .publish.analysis_section import analysis_section
    from .recipes import load_any, load_references
    from .runners.ledger import REPORT_FILE, YieldReport
    from .runners.preflight import preflight

    source = Path(args.dataset)
    output = Path(args.output or f"{str(source).rstrip('/')}.analysis")
    ds = load_any(source, args.config, args.split)
    references = load_references(args.reference)
    embedder = [("min_neighbor_distance", {"model": args.embedding_model})]  # the model the analyses embed with
    checked = preflight(embedder, output=output, analysis=True, references=bool(references), projection=args.projection)
    checked.raise_for_problems()
    for note in checked.notes:
        print(f"preflight: {note}", file=sys.stderr)
    reports = [source / REPORT_FILE, source / "reports" / (args.config or "default") / REPORT_FILE]
    report = next((YieldReport.read(p) for p in reports if p.is_file()), None)
    section = analysis_section(
        ds, output / "plots", relative_to=output, references=references, report=report,
        price_per_hour=args.price_per_hour, column=args.column, sample_size=args.sample_size,
        embedding_model=args.embedding_model, projection=args.projection, threshold=args.threshold, heading="##",
    )
    (output / "analysis.md").write_text(f"# Analysis of `{source.name}`\n\n{section.markdown}", encoding="utf-8")
    (output / "analysis.json").write_text(section.results_json(), encoding="utf-8")
    print(f"analysis of {len(ds):,} rows written to {output}: analysis.md, analysis.json, "
          + ", ".join(p.file for p in section.figures))
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
    p.add_argument("--check", action="store_true",
                   help="run the preflight alone: check the model, engine, packages and output, then stop")
    p.add_argument("--no-preflight", dest="preflight", action="store_false",
                   help="start without the preflight (it runs by default and stops a run that would fail later)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("probe", help="sample step 1 with each system-prompt choice and recommend one")
    p.add_argument("model", nargs="?", default=None, help="hub id or local dir (default: the embedded model)")
    p.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    p.add_argument("--samples", type=int, default=64, help="instructions per variant (default: 64)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="step 1 cap (default: as generate, 2048; 128 for the embedded model)")
    p.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=None,
                   help="stop each instruction at its first newline (default: as generate)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--output", default=None, help="also write the JSON report to this file")
    p.set_defaults(func=cmd_probe)

    add_build_parser(sub)

    p = sub.add_parser("analyze", help="the card's analysis section and plots for a dataset on disk")
    p.add_argument("dataset", help="a save_to_disk folder, a Hub folder (ours or a published Magpie set), or a data file")
    p.add_argument("--reference", action="append", default=[], metavar="[NAME=]DIR",
                   help="a reference dataset (repeatable): coverage map and contamination check against it")
    p.add_argument("--output", default=None, help="where analysis.md, analysis.json and plots/ go (default: DATASET.analysis)")
    p.add_argument("--config", default=None, help="config of a Hub folder (default: its default config)")
    p.add_argument("--split", default="train")
    p.add_argument("--column", default="instruction", help="the column holding the instructions")
    p.add_argument("--sample-size", type=int, default=10_000, help="rows embedded per dataset (paper: 10,000)")
    p.add_argument("--embedding-model", default=None, help="sentence-transformers model (default: that of min_neighbor_distance)")
    p.add_argument("--projection", default="tsne", choices=["tsne", "umap"])
    p.add_argument("--threshold", type=float, default=0.9, help="contamination cosine-similarity threshold")
    p.add_argument("--price-per-hour", type=float, default=None, metavar="PRICE",
                   help="price of one GPU-hour (CPU-hour) for the yield report found beside the dataset")
    p.set_defaults(func=cmd_analyze)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean bad input, not a bug: each is shown as one line, without a traceback."""
    from .engines import ModelNotAvailableError
    from .engines.embedded import EmbeddedModelMissing
    from .runners.checkpoint import CheckpointMismatchError
    from .schema import MissingColumnError
    from .stages.rewards.loading import RewardModelError

    # RecipeError, PreflightError and TemplateError are ValueErrors; a stage's bad option is one too
    return (ValueError, ModelNotAvailableError, EmbeddedModelMissing, CheckpointMismatchError, MissingColumnError,
            RewardModelError, FileNotFoundError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input ends in `SystemExit("magpie-datasets CMD: error: ...")`: Python
    prints that one line (a preflight that found several problems lists them a line each) and
    exits with status 1, without a traceback; `MAGPIE_TRACEBACK=1` shows where it was raised."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except user_errors() as err:
        if os.environ.get("MAGPIE_TRACEBACK"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise SystemExit(f"magpie-datasets {args.command}: error: {message}") from None


if __name__ == "__main__":
    sys.exit(main())
