"""`magpie-datasets template`: the Magpie pre-query/post-query/stop strings of a chat model."""

from __future__ import annotations

import argparse
import json


def cmd_template(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from ..engines import resolve_model
    from ..templates import describe

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
    info = describe(tokenizer, system_prompt=args.system_prompt)
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0



def add_template_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`magpie-datasets template [MODEL] [--system-prompt S]`."""
    p = subparsers.add_parser("template", help="print the Magpie pre-query/post-query/stop strings of a chat model")
    p.add_argument("model", nargs="?", default=None, help="hub id or local dir (default: the embedded model)")
    p.add_argument("--system-prompt", default=None, help='"template" (as rendered) or a system prompt string')
    p.add_argument("--trust-remote-code", action="store_true")
    p.set_defaults(func=cmd_template)
    return p
