"""The ``omasgan`` command."""

from __future__ import annotations

import argparse
import ast
import sys

__all__ = ["main"]


def _parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key] = raw
    return params


def _cmd_divergences(args: argparse.Namespace) -> int:
    from omasgan import divergences

    if args.action == "check":
        from omasgan.testing import check_divergence

        divergence = divergences.get(args.name, **_parse_params(args.param))
        report = check_divergence(divergence, max_examples=args.max_examples, raise_on_failure=False)
        print(report)
        return 0 if report.passed else 1
    rows = [("name", "provider", "parameters", "description")]
    for name, entry in divergences.available().items():
        params = ", ".join(f"{k}={v!r}" for k, v in entry.parameters.items()) or "-"
        rows.append((name, entry.provider, params, entry.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for error in divergences.load_errors():
        print(f"error: {error}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from omasgan.demo import format_summary, run_demo

    summary = run_demo(args.out, seed=args.seed, verbose=0 if args.quiet else 1, device=args.device)
    print(format_summary(summary))
    print(f"wrote {args.out}/boundary.png and {args.out}/summary.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omasgan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    div = commands.add_parser("divergences", help="list registered divergences, or check one")
    div.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    div.add_argument("name", nargs="?", help="divergence to check")
    div.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="divergence parameter")
    div.add_argument("--max-examples", type=int, default=100, help="hypothesis examples per property")
    div.set_defaults(handler=_cmd_divergences)
    demo = commands.add_parser("demo", help="train on 2-D data and draw the boundary (about a minute on a CPU)")
    demo.add_argument("--out", default="omasgan-demo", help="output folder (boundary.png, summary.json)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "divergences" and args.action == "check" and not args.name:
        parser.error("divergences check needs a NAME")
    try:
        return args.handler(args)
    except (KeyError, ValueError) as exc:  # user mistakes: one line, no traceback
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"omasgan: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
