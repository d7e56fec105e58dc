"""`harness check-generator`: a user's generation loop against the engine and a full recompute."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-generator", help="check your own generation loop against the reference engine",
        description="Compare the greedy tokens of your generation loop with the harness engine's "
                    "and with a full recomputation of the context at every step. A token the full "
                    "context would not choose (beyond a near-tie) is a failed gate: exit 1. Give "
                    "the loop as --generator MODULE:FUNCTION (called as FUNCTION(model, tokenizer, "
                    "prompt_ids, max_tokens) -> token ids, with the model loaded here), or what it "
                    'produced as --completions FILE.jsonl ({"prompt_token_ids": [...], '
                    '"output_token_ids": [...]} per line).')
    p.add_argument("--model", required=True, help="base model folder (or hub id)")
    p.add_argument("--adapter", type=Path, help="adapter folder to put on the base for the check")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", help="MODULE:FUNCTION or FILE.py:FUNCTION (your loop)")
    src.add_argument("--completions", type=Path, help="JSONL of prompt_token_ids and output_token_ids")
    p.add_argument("--suite", type=Path, help="with --generator: take prompts from this suite "
                                              "(rendered as `harness eval` renders them)")
    p.add_argument("--prompt", action="append", default=[], help="with --generator: a prompt text (repeatable)")
    p.add_argument("--template", choices=("chat", "raw"), default="raw",
                   help="how --prompt texts are encoded (default raw)")
    p.add_argument("--limit", type=int, default=8, help="prompts taken from --suite (default 8)")
    p.add_argument("--max-tokens", type=int, default=32, help="tokens compared per prompt (default 32)")
    p.add_argument("--float32", action="store_true",
                   help="with --generator: run the check (your loop, the engine, the recomputation) with the "
                        "model's float weights in float32 (a bfloat16 model takes twice the memory). A bfloat16 "
                        "model's near-ties are wide, so a subtle bug (a position off by one) shows on few "
                        "prompts; in float32 on most")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="with --generator: seconds one call of your loop may take (default 300; 0: no limit)")
    p.add_argument("--out", type=Path, help="write the full report (JSON) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import write_json
    from ..errors import HarnessError
    from ..generator_check import check_generator, compare_outputs, load_callable, read_outputs
    from ..models import adapter_applied, load_base
    from ..prompts import encode_prompt

    if not args.timeout >= 0 or args.timeout == float("inf"):
        raise HarnessError("--timeout must be a number of seconds (0: no limit)", field="--timeout")
    if args.max_tokens < 1:
        raise HarnessError("--max-tokens must be at least 1", field="--max-tokens")
    if args.limit < 1:  # a slice would take it: -3 is all but the last 3 prompts
        raise HarnessError("--limit must be at least 1", field="--limit")
    if args.out is not None:
        from ..preflight import check_out_file

        check_out_file(args.out, "--out")  # before any model loads
    if args.float32 and not args.generator:
        raise HarnessError("--float32 needs --generator: stored token ids were produced at the model's own "
                           "precision, and a float32 recomputation would differ from them on near-ties",
                           field="--float32", hint="run your loop through --generator with --float32")
    if args.generator:
        fn = load_callable(args.generator)
        if not args.suite and not args.prompt:
            raise HarnessError("--generator needs prompts: --suite FILE or --prompt TEXT",
                               field="--generator")
        suite = None
        if args.suite:
            from ..suite import load_suite

            suite = load_suite(args.suite).limited(args.limit)
    else:
        lines: list[int] = []
        stored_prompts, outputs = read_outputs(args.completions, lines)
    base = load_base(args.model)
    if args.float32:
        import mlx.core as mx

        base.model.set_dtype(mx.float32)  # the float weights; quantized ones keep their bits
    if args.generator:
        prompts = [encode_prompt(base.tokenizer, t, args.template) for t in args.prompt]
        if suite is not None:
            prompts += [encode_prompt(base.tokenizer, c.prompt, suite.template, suite.system,
                                      suite.chat_template_kwargs)
                        for c in suite.cases]

        def check():
            return check_generator(lambda ids, n: fn(base.model, base.tokenizer, ids, n), base,
                                   prompts, max_tokens=args.max_tokens, name=f"--generator {args.generator}",
                                   timeout=args.timeout or None,
                                   hard_timeout=getattr(args, "as_command", False))
    else:
        def check():
            return compare_outputs(base, stored_prompts, outputs, args.max_tokens, args.completions, lines)
    if args.adapter is not None:
        with adapter_applied(base, "checked", args.adapter):
            report = check()
    else:
        report = check()
    for item in report.items:
        where = "matches" if item.first_engine_difference is None else \
            f"leaves the engine at step {item.first_engine_difference}"
        verdict = f"MISMATCH: {item.problem}" if item.problem else "ok"
        print(f"  prompt {item.index} ({item.prompt_tokens} tokens): {len(item.tokens)} tokens, {where}; {verdict}")
    if args.out:
        write_json(args.out, report.to_json())
    print(("PASS: " if report.passed else "FAIL: ") + report.detail, file=sys.stderr)
    return 0 if report.passed else 1
