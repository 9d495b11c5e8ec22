"""The `supcon` command line (train, eval, compare, study, sweep): a thin caller of :func:`supcon.train`
and :mod:`supcon.workflows`, whose option classes its flags are generated from (:mod:`.command_line`).

A user mistake ends with one ``error: ...`` line and exit code 2; out of memory and a non-finite loss
exit with 1, Ctrl-C with 130 (:mod:`._cli_messages`; SUPCON_DEBUG=1 shows the traceback instead).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
from . import _cli_messages as say
from ._cli_messages import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USER_ERROR  # noqa: F401  (public)
from .command_line import add_flags, field_docs, from_flags
from .config import METHODS, Config, build_config, get_value, list_presets
from .run_folder import RESULTS, TRAIN_LOG

# `supcon train`'s flags: the config key each sets (its help is the key's docstring).
TRAIN_FLAGS = {"--method": "method", "--data": "data.name", "--epochs": "train.epochs",
               "--batch-size": "train.batch_size", "--data-dir": "data.data_dir", "--seed": "train.seed",
               "--device": "train.device", "--workers": "data.num_workers", "--memory": "loss.memory"}


def main(argv: list[str] | None = None) -> int:
    """Run ``supcon ARGV``; returns the exit code (argparse errors exit with 2 directly)."""
    parser = build_parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    say.setup_logging()
    from .engine.cpu_memory import claim_process

    claim_process()  # this process is ours: CPU training may keep freed memory for speed
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        lead = "\n" if sys.stderr.isatty() else ""  # off the line a progress bar may be on
        print(f"{lead}error: {say.interrupted_message(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (user-facing boundary; bugs are re-raised below)
        failure = None if os.environ.get("SUPCON_DEBUG", "") not in ("", "0") else say.failure_message(err, args)
        if failure is None:
            raise
        message, code = failure
        print(f"error: {message}", file=sys.stderr)
        return code


class _Commands(argparse._SubParsersAction):
    """Sub-commands whose options are added when one is used: those of eval, compare, study and
    sweep come from option classes in supcon.workflows, which imports torch (slow for `--help`)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        _complete(self.choices[values[0]])
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    """The whole `supcon` parser (sub-commands train, eval, compare, study, sweep)."""
    parser = say.Parser(prog="supcon", formatter_class=say.HelpFormatter,
                     description="Supervised Contrastive Learning: train and evaluate encoders.")
    parser.register("action", "parsers", _Commands)
    parser.add_argument("--version", action="version", version=f"supcon {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="what to do; see supcon COMMAND --help")
    for name, (text, options, handler) in _COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text, formatter_class=say.HelpFormatter)
        command.set_defaults(handler=handler, flags={})
        command.options = options  # added by _complete, when the command is used
    return parser


def _complete(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add a sub-command's options (once); its ``flags`` default maps field names to flags, for
    the messages of its errors."""
    add_options = command.__dict__.pop("options", None)
    if add_options is not None:
        flags = add_options(command) or {}
        command.set_defaults(flags={k: v for k, v in flags.items() if k not in say.ARGUMENT_FLAGS})
    return command


def _config_flags(p: argparse.ArgumentParser, flags: list[str]) -> None:
    """``flags`` of TRAIN_FLAGS: help from their keys' docstrings, None (the config's) by default."""
    defaults = build_config(None)
    for flag in flags:
        key = TRAIN_FLAGS[flag]
        section, _, name = key.rpartition(".")
        default = get_value(defaults, key)
        doc = field_docs(type(get_value(defaults, section)) if section else Config)[name]
        p.add_argument(flag, type=type(default) if isinstance(default, int) else None,
                       choices=METHODS if key == "method" else None,
                       help=f"{doc} ({key}; default: the config's" + ("" if default is None else f", else {default}") + ")")


def _train_options(p: argparse.ArgumentParser) -> None:
    _config_flags(p, list(TRAIN_FLAGS))
    p.add_argument("--out", required=True, help="run folder for config, checkpoints, metrics, results")
    p.add_argument("--config", default=None, help=f"YAML file or preset name ({', '.join(list_presets())}) "
                   "(default: none, the built-in settings)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its "
                   "checkpoint, with its saved config.yaml unless --config is given")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (summaries only)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted config overrides, e.g. optim.lr=0.1 loss.temperature=0.07")


def _eval_options(p: argparse.ArgumentParser) -> dict[str, str]:
    from .workflows import EvalOptions

    p.add_argument("--run", required=True, help="run folder written by `supcon train`")
    return add_flags(p, EvalOptions)


def _study_options(p: argparse.ArgumentParser, methods: str = "ce,simclr,supcon", seeds: bool = True,
                   what: str = "") -> None:
    p.add_argument("--methods", default=methods, help=f"comma-separated methods{what}")
    if seeds:
        p.add_argument("--seeds", type=int, default=5, help="seeds 0..K-1 per method")
    _config_flags(p, ["--data", "--epochs", "--data-dir"])
    p.add_argument("--out", required=True, help="folder for the runs and the report")
    p.add_argument("--config", default=None, help="YAML file or preset name shared by every run "
                   "(default: none, each method's built-in settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides for every run")


def _compare_options(p: argparse.ArgumentParser, claims: bool = False) -> dict[str, str]:
    from .workflows import EvalOptions
    from .workflows.controlled import Controls
    from .workflows.eval_options import RUN_ONLY

    _study_options(p, what=" (ce and supcon required)" if claims else "")
    flags = {}
    if claims:
        from .workflows.study import ClaimOptions

        flags = add_flags(p, ClaimOptions, title="claim rows")
        p.add_argument("--plan-only", action="store_true", help="write (and --commit) the plan, then stop")
    else:
        p.add_argument("--presets", action="store_true", help="uncontrolled: each method keeps its own "
                       "preset augmentation, lr and temperature; no selection, no second ce row")
    return {**flags, **add_flags(p, Controls, title="controlled comparison"),
            **add_flags(p, EvalOptions, skip=RUN_ONLY, title="evaluation")}


def _sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vary", required=True, choices=("augmentation", "optimizer", "lr", "batch"),
                   help="the factor to vary")
    p.add_argument("--values", default=None, help="comma-separated subset of the values (lr: factors "
                   "of the preset, e.g. 0.5,2; batch: sizes, e.g. 128,512) (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (for the evaluation)")
    _study_options(p, methods="supcon,ce", seeds=False)


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``key=value`` items after an option (``--resume optim.lr=0.1``) are overrides too."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        command = parser if args.command is None else _subparsers(parser)[args.command]
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands by name, their options added."""
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: _complete(command) for name, command in commands.items()}


def _cmd_train(args: argparse.Namespace) -> int:
    from .api import run_config
    from .config import parse_overrides

    given = {key: getattr(args, flag[2:].replace("-", "_")) for flag, key in TRAIN_FLAGS.items()}
    settings = {**{k: v for k, v in given.items() if v is not None}, **parse_overrides(args.overrides)}
    cfg = run_config(args.config, args.out, resume=args.resume, **settings)  # before any folder or torch
    out = _out_folder(args.out)
    from .api import train
    from .distributed import launch_rank

    main = launch_rank() == 0
    if not main:  # the other ranks only speak up about problems
        logging.getLogger("supcon").setLevel(logging.WARNING)
    with say.file_log(out / TRAIN_LOG if main else None):
        results = train(config=cfg, out=out, resume=args.resume,
                        progress=main and not args.no_progress and sys.stderr.isatty())
    if main:
        rows = [(k, results[k]) for k in ("method", "data", "epochs", "test_top1", "test_top5", "val_top1",
                                          "train_time_s") if k in results]
        print("\n".join(f"{k:<{max(len(k) for k, _ in rows)}}  {v}" for k, v in rows))
        print(f"results: {out / RESULTS}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .workflows import EvalOptions, evaluate_run

    result = evaluate_run(args.run, from_flags(EvalOptions, args))
    top5 = [("linear top-5", result["linear"]["top5"])] if "top5" in result["linear"] else []  # > 5 classes
    rows = [("linear top-1", result["linear"]["top1"]), *top5,
            ("kNN top-1", result["knn"]["top1"]), ("ECE", result["calibration"]["ece"]),
            *[(f"probe {name}", result["probe"][k]) for name, k in (("top-1", "top1"), ("ECE", "ece")) if result.get("probe")]]
    if result.get("corruptions"):
        rows.append(("corrupted top-1", result["corruptions"]["mean_corrupted_top1"]))
    if result.get("reference"):
        rows += [("mCE", result["reference"]["mce"]), ("relative mCE", result["reference"]["relative_mce"])]
    print("\n".join(f"{k:<16} {v if v is None else round(v, 4)}" for k, v in rows))
    for note in result.get("notes", []):
        print(note)
    print(f"eval: {Path(result['output']) / 'eval.json'}")
    print("\n".join(f"plot: {Path(result['output']) / name}" for name in result["plots"]))
    return 0


def study_spec(args: argparse.Namespace, seeds: int = 1):
    from .distributed import resolve_device
    from .workflows import StudySpec

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    spec = StudySpec(out=Path(args.out), methods=methods, seeds=seeds, data=args.data, epochs=args.epochs,
                     config=args.config, overrides=tuple(args.overrides), data_dir=args.data_dir)
    resolve_device(args.device, what="--device")  # now, not after hours of training
    return spec


def _cmd_compare(args: argparse.Namespace) -> int:
    """`supcon compare` (controlled, or each method's presets) and `supcon study` (+ the claims)."""
    from .workflows import EvalOptions, run_compare
    from .workflows.controlled import Controls
    from .workflows.eval_options import RUN_ONLY
    from .workflows.study import ClaimOptions, plan_study, run_study

    spec, options = study_spec(args, args.seeds), from_flags(EvalOptions, args, skip=RUN_ONLY)
    controls = None if getattr(args, "presets", False) else from_flags(Controls, args)
    claims = from_flags(ClaimOptions, args) if args.command == "study" else None
    progress = not args.no_progress and sys.stderr.isatty()
    with say.file_log(_out_folder(args.out) / f"{args.command}.log"):
        if claims is not None and args.plan_only:
            print(f"plan: {plan_study(spec, options, controls, claims)}")
            return 0
        result = (run_study(spec, options, controls, claims, progress=progress) if claims is not None
                  else run_compare(spec, options, progress=progress, controls=controls, presets=args.presets))
    print(result["table"])
    print(f"report: {result['report']} and {result['html']}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .workflows import EvalOptions, run_sweep

    spec = study_spec(args)
    values = [v for v in args.values.split(",") if v.strip()] if args.values is not None else None
    if values == []:
        raise ValueError(f"--values names no value ({args.values!r}); give e.g. --values 0.5,2 or leave it out")
    options = EvalOptions(corruptions=(), embedding="none", gradients=False, device=args.device)
    with say.file_log(_out_folder(args.out) / "sweep.log"):
        result = run_sweep(spec, args.vary, values, options=options,
                           progress=not args.no_progress and sys.stderr.isatty())
    for method, s in result["spread"].items():
        std = "-" if s["std"] is None else f"{s['std']:.2f}"
        print(f"{method:<8} top-1 mean {s['mean']:.2f}  std {std}  range {s['range']:.2f}  ({s['n']} runs)")
    print(f"report: {spec.out / 'sweep.md'}")
    return 0


_COMMANDS = {  # name: (help, what adds its options, handler)
    "train": ("pre-train (supcon/simclr) + linear stage, or train ce end to end", _train_options, _cmd_train),
    "eval": ("linear/kNN/ECE/corruptions/embedding/gradients of a finished run", _eval_options, _cmd_eval),
    "compare": ("train + evaluate several methods x seeds; report.md/html", _compare_options, _cmd_compare),
    "study": ("the paper's claims, one row each (controlled compare + L_out/L_in, stability, longer schedule)",
              lambda p: _compare_options(p, claims=True), _cmd_compare),
    "sweep": ("stability study: vary one factor around each method's preset", _sweep_options, _cmd_sweep),
}


def _out_folder(text: str) -> Path:
    """``--out`` as a folder that exists (created here, when the command starts its work)."""
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create the folder ({err.strerror or err}); "
                         "choose another --out") from None
    return out


if __name__ == "__main__":
    sys.exit(main())
