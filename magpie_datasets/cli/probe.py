"""`magpie-datasets probe`: sample step 1 with each system-prompt choice and recommend one."""

from __future__ import annotations

import argparse

from .report_output import print_report


def cmd_probe(args: argparse.Namespace) -> int:
    from ..runners.probe import format_report, probe

    if args.samples < 1:
        raise SystemExit(f"magpie-datasets probe: error: --samples must be at least 1, got {args.samples}")
    engine_options = {"batch_size": args.batch_size} if args.engine == "transformers" else {}
    report = probe(args.model, engine=args.engine, engine_options=engine_options, samples=args.samples,
                   max_tokens=args.max_tokens, early_stop=args.early_stop, temperature=args.temperature,
                   top_p=args.top_p, seed=args.seed, instruction_prefixes=args.instruction_prefix)
    print_report(report, format_report(report), args.json, args.output)
    return 0



def add_probe_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`magpie-datasets probe [MODEL] [--samples N] [--json] [--output FILE]`."""
    p = subparsers.add_parser("probe", help="sample step 1 with each system-prompt choice and recommend one")
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
    p.add_argument("--instruction-prefix", action="append", default=[], metavar="TEXT",
                   help="also sample step 1 with the user turn started with TEXT (Magpie-Prefill; repeatable)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--output", default=None, help="also write the JSON report to this file")
    p.set_defaults(func=cmd_probe)
    return p
