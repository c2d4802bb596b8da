"""The ``omasgan`` command."""

from __future__ import annotations

import argparse
import ast
import sys

from omasgan.errors import OmasganError

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


def _cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from omasgan.doctor import environment_report, format_report

    report = environment_report()
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


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


def _parse_targets(text: str) -> list:
    """ "0-9" -> [0..9], "1,3" -> [1, 3], "fashion-mnist,kmnist" -> names."""
    targets: list = []
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if sep and first.isdigit() and last.isdigit():
            targets += list(range(int(first), int(last) + 1))
        else:
            targets.append(int(part) if part.isdigit() else part)
    return targets


# omasgan.data's PROTOCOLS and TABLE_PROTOCOLS, the first the default (not imported: the parser is built
# without torch; tests/evaluation/test_tables.py keeps them equal).
IMAGE_PROTOCOLS = ("loo", "one_class", "ood")
TABLE_PROTOCOLS = ("novelty", "unsupervised")


def _dataset(value: str) -> str:
    """An image dataset's name, or adbench:NAME for an ADBench-style table."""
    images = ("mnist", "fashion-mnist", "kmnist", "cifar10", "svhn")
    if value in images or (value.startswith("adbench:") and len(value) > len("adbench:")):
        return value
    raise argparse.ArgumentTypeError(f"expected one of {images} or adbench:NAME (e.g. adbench:cardio), got {value!r}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    common = dict(
        preset=args.preset,
        out=args.out,
        data_dir=args.data_dir,
        overrides=_user_config(args),
        device=args.device,
        verbose=0 if args.quiet else 1,
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    kind, allowed = ("tables", TABLE_PROTOCOLS) if args.dataset.startswith("adbench:") else ("images", IMAGE_PROTOCOLS)
    protocol = args.protocol or allowed[0]
    if protocol not in allowed:
        raise SystemExit(f"omasgan evaluate: {kind} take --protocol {' or '.join(allowed)}, not {protocol}.")
    if kind == "tables":
        from omasgan.evaluation.tables import evaluate_table

        evaluate_table(args.dataset.partition(":")[2], protocol, seeds, **common)
    else:
        from omasgan.evaluation.runner import evaluate

        evaluate(args.dataset, protocol, _parse_targets(args.classes), seeds, **common)
    print(open(f"{args.out}/results.md").read())
    return 0


def _user_config(args: argparse.Namespace):
    """What the user gave: a whole configuration (--config FILE, with any --set applied to it) or just the
    --set overrides, which the estimator applies to the preset. Passed on unchanged."""
    from omasgan.config import OMASGANConfig

    overrides = _parse_params(args.set)
    if args.config:
        return OMASGANConfig.from_json(open(args.config).read()).with_overrides(overrides)
    return overrides


def _cmd_config(args: argparse.Namespace) -> int:
    from omasgan.config import OMASGANConfig, describe

    if args.describe:
        print(describe(markdown=args.markdown), end="")
        return 0
    config = _user_config(args)
    if not isinstance(config, OMASGANConfig):
        config = OMASGANConfig.preset(args.preset, args.kind).with_overrides(config)
    print(config.to_json())
    return 0


def _runtime(args: argparse.Namespace) -> dict:
    return {"precision": "bf16" if args.bf16 else "fp32", "channels_last": args.channels_last, "compile": args.compile}


def _cmd_fit(args: argparse.Namespace) -> int:
    import numpy as np

    from omasgan.config import OMASGANConfig
    from omasgan.distributed import session
    from omasgan.estimator import OMASGANDetector
    from omasgan.runtime import resolve_device
    from omasgan.scoring import load_array

    X = load_array(args.input)
    config = _user_config(args)
    # --seed, else a --config file's own seed, else 0: a CLI run is reproducible by default.
    seed = args.seed if args.seed is not None else (None if isinstance(config, OMASGANConfig) else 0)
    with session(resolve_device(args.device), distributed=args.distributed) as context:
        detector = OMASGANDetector(
            preset=args.preset,
            config=config,
            random_state=seed,
            device=args.device,
            verbose=0 if args.quiet else 1,
            run_dir=args.run_dir,
            runtime=_runtime(args),
        ).fit(np.asarray(X))
        if context.is_main:
            detector.save(args.out)
            print(f"saved the detector to {args.out} (load with OMASGANDetector.load)")
        context.barrier()  # the detector is on disk before any rank exits
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from omasgan.scoring import score_file

    n = score_file(
        args.run,
        args.input,
        args.output,
        which=args.which,
        batch_size=args.batch_size,
        device=args.device,
        verbose=0 if args.quiet else 1,
    )
    print(f"wrote {n} scores ({args.which}, higher = more anomalous) to {args.output}")
    return 0


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    from omasgan.config import PRESET_NAMES

    parser.add_argument(
        "--preset",
        default="quick",
        choices=list(PRESET_NAMES),
        help="; ".join(f"{name}: {text}" for name, text in PRESET_NAMES.items()),
    )
    parser.add_argument("--config", help="a configuration JSON file (as `omasgan config` prints); replaces --preset")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field, e.g. --set task2.mu=1.0 (repeatable; `omasgan config --describe` lists them)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omasgan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    div = commands.add_parser("divergences", help="list registered divergences, or check one")
    div.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    div.add_argument("name", nargs="?", help="divergence to check")
    div.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="divergence parameter")
    div.add_argument("--max-examples", type=int, default=100, help="hypothesis examples per property")
    div.set_defaults(handler=_cmd_divergences)
    doctor = commands.add_parser(
        "doctor", help="print the operators' backend, CUDA kernels, torch version and plugins (for bug reports)"
    )
    doctor.add_argument("--json", action="store_true", help="as JSON")
    doctor.set_defaults(handler=_cmd_doctor)
    demo = commands.add_parser("demo", help="train on 2-D data and draw the boundary (about a minute on a CPU)")
    demo.add_argument("--out", default="omasgan-demo", help="output folder (boundary.png, summary.json)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_cmd_demo)
    config = commands.add_parser("config", help="print a configuration as JSON (a starting point for --config)")
    _add_config_options(config)
    config.add_argument("--kind", default="image", choices=["image", "vector"])
    config.add_argument(
        "--describe", action="store_true", help="print every field: meaning, default and each preset's value"
    )
    config.add_argument("--markdown", action="store_true", help="with --describe: markdown tables (docs/)")
    config.set_defaults(handler=_cmd_config)
    fit = commands.add_parser("fit", help="train an OMASGANDetector on an .npy array of normal data and save it")
    fit.add_argument("--input", required=True, help=".npy array: (n, d) vectors or (n, [c,] h, w) images")
    fit.add_argument("--out", required=True, help="folder for the saved detector")
    fit.add_argument("--run-dir", help="keep checkpoints and metrics here (and resume an interrupted fit)")
    fit.add_argument("--device", default="auto")
    fit.add_argument("--seed", type=int, help="the run's seed (default: the --config file's, else 0)")
    fit.add_argument("--quiet", action="store_true")
    fit.add_argument(
        "--distributed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use torch.distributed (default: when launched by torchrun)",
    )
    fit.add_argument("--bf16", action="store_true", help="networks under bf16 autocast (losses stay float32)")
    fit.add_argument("--channels-last", action="store_true", help="channels_last memory format for image nets")
    fit.add_argument("--compile", action="store_true", help="torch.compile the networks")
    _add_config_options(fit)
    fit.set_defaults(handler=_cmd_fit)
    score = commands.add_parser("score", help="score an .npy array (memory-mapped, in batches) into an .npy file")
    score.add_argument("--run", required=True, help="a saved detector (fit --out) or a completed run (--run-dir)")
    score.add_argument("--input", required=True, help=".npy array of samples, read as a memory map")
    score.add_argument("--output", required=True, help=".npy file for the scores (float64, higher = more anomalous)")
    score.add_argument("--which", default="detector", choices=["detector", "task1_critic", "task3_critic"])
    score.add_argument("--batch-size", type=int, default=4096)
    score.add_argument("--device", default="auto")
    score.add_argument("--quiet", action="store_true")
    score.set_defaults(handler=_cmd_score)
    ev = commands.add_parser("evaluate", help="run a protocol per class x seed with baselines; write tables")
    ev.add_argument(
        "--dataset",
        required=True,
        type=_dataset,
        help="mnist, fashion-mnist, kmnist, cifar10, svhn, or adbench:NAME (a table under $OMASGAN_DATA/adbench)",
    )
    ev.add_argument(
        "--protocol",
        default=None,
        choices=[*IMAGE_PROTOCOLS, *TABLE_PROTOCOLS],
        help="images: loo (default), one_class, ood; tables: novelty (default), unsupervised",
    )
    ev.add_argument("--classes", default="0-9", help="classes (loo, one_class: '0-9', '1,7') or datasets (ood)")
    ev.add_argument("--seeds", default="0")
    _add_config_options(ev)
    ev.add_argument("--data-dir", help="folder holding the dataset folders (default: $OMASGAN_DATA)")
    ev.add_argument("--out", default="evaluation")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(handler=_cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "divergences" and args.action == "check" and not args.name:
        parser.error("divergences check needs a NAME")
    try:
        return args.handler(args)
    except (KeyError, ValueError, FileNotFoundError, OmasganError) as exc:  # user mistakes: one line, no traceback
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print("omasgan: error: " + " ".join(line.strip() for line in str(message).splitlines()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
