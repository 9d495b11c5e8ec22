"""The `supcon` command line: train, eval, compare, study, sweep.

User mistakes (bad paths, options, data, checkpoints) end with one ``error: ...`` line on stderr
that says what to do, and exit code 2; out of memory and a non-finite loss exit with 1, Ctrl-C
with 130. Set SUPCON_DEBUG=1 to see the traceback instead. docs/errors.md lists every message.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from . import __version__
from ._cli_messages import (  # noqa: F401  (exit codes are public)
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    failure_message,
    interrupted_message,
)
from .config import METHODS, DataConfig, LossConfig, TrainConfig, list_presets
from .run_folder import CONFIG, RESULTS, TRAIN_LOG


def main(argv: list[str] | None = None) -> int:
    """Run ``supcon ARGV``; returns the exit code (argparse errors exit with 2 directly)."""
    parser = build_parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    _setup_logging()
    from .engine.cpu_memory import claim_process

    claim_process()  # this process is ours: CPU training may keep freed memory for speed
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        lead = "\n" if sys.stderr.isatty() else ""  # off the line a progress bar may be on
        print(f"{lead}error: {interrupted_message(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (user-facing boundary; bugs are re-raised below)
        failure = None if os.environ.get("SUPCON_DEBUG", "") not in ("", "0") else failure_message(err, args)
        if failure is None:
            raise
        message, code = failure
        print(f"error: {message}", file=sys.stderr)
        return code


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point to the command's --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message}; see {self.prog} --help\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: appended unless the help text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text.lower() or not action.option_strings or action.required
                or action.default in (None, argparse.SUPPRESS)):
            return text
        if action.nargs == 0 and action.default is False:  # a store_true flag
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The whole `supcon` parser (sub-commands train, eval, compare, study, sweep)."""
    parser = _Parser(prog="supcon", formatter_class=_HelpFormatter,
                     description="Supervised Contrastive Learning: train and evaluate encoders.")
    parser.add_argument("--version", action="version", version=f"supcon {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="what to do; see supcon COMMAND --help")
    text = "pre-train (supcon/simclr) + linear stage, or train ce end to end"
    train = sub.add_parser("train", help=text, description=text, formatter_class=_HelpFormatter)
    train.add_argument("--method", choices=METHODS, default=None,
                       help="training method (default: the config's, else supcon)")
    train.add_argument("--data", default=None,
                       help="data set name (fashion-mnist, cifar10, cifar100, mnist, svhn, stl10, digits) "
                            f"or an ImageFolder path (default: the config's, else {DataConfig.name})")
    train.add_argument("--out", required=True, help="run folder for config, checkpoints, metrics, results")
    train.add_argument("--config", default=None, help=f"YAML file or preset name ({', '.join(list_presets())}) "
                       "(default: none, the built-in settings)")
    train.add_argument("--epochs", type=int, default=None,
                       help="pre-training epochs, train.epochs "
                            f"(default: the config's, else {TrainConfig.epochs})")
    train.add_argument("--batch-size", type=int, default=None, help="images per step, train.batch_size "
                       f"(default: the config's, else {TrainConfig.batch_size})")
    train.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    train.add_argument("--seed", type=int, default=None,
                       help=f"random seed, train.seed (default: the config's, else {TrainConfig.seed})")
    train.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N, train.device "
                       f"(default: the config's, else {TrainConfig.device})")
    train.add_argument("--workers", type=int, default=None, help="DataLoader worker processes, "
                       f"data.num_workers (default: the config's, else {DataConfig.num_workers})")
    train.add_argument("--memory", type=int, default=None, metavar="N",
                       help="supcon with a momentum encoder and a queue of N keys, e.g. 8192, loss.memory "
                            f"(default: the config's, else {LossConfig.memory} = off)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its "
                       "checkpoint, with its saved config.yaml unless --config is given")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (summaries only)")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="dotted config overrides, e.g. optim.lr=0.1 loss.temperature=0.07")
    train.set_defaults(handler=_cmd_train)
    _add_workflow_parsers(sub)
    return parser


_DATA_DIR_HELP = ("where the data set's files are, data.data_dir (default: the config's, else "
                  "$SUPCON_DATA, the Debian path, then a download)")


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
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config

    flags = {"method": args.method, "data.name": args.data, "train.epochs": args.epochs,
             "train.batch_size": args.batch_size, "data.data_dir": args.data_dir, "train.seed": args.seed,
             "train.device": args.device, "data.num_workers": args.workers, "loss.memory": args.memory}
    config = args.config
    saved = Path(args.out) / CONFIG
    if args.resume and config is None and saved.is_file():
        config = str(saved)  # `--out RUN --resume` alone continues the run as it was configured
    cfg = build_config(config, overrides={k: v for k, v in flags.items() if v is not None},
                       dotted=args.overrides)
    out = _out_folder(args.out)
    from . import distributed as dist  # torch is imported only once the config is known to be fine
    from .api import train

    dist.init_from_env(cfg.train.device)  # a no-op unless launched by torchrun; train() then keeps the group
    main = dist.is_main()
    if not main:  # the other ranks only speak up about problems
        logging.getLogger("supcon").setLevel(logging.WARNING)
    with _file_log(out / TRAIN_LOG if main else None):
        try:
            results = train(config=cfg, out=out, resume=args.resume,
                            progress=main and not args.no_progress and sys.stderr.isatty())
        except BaseException:
            dist.teardown(wait=False)  # do not wait for ranks that may be stuck in a collective
            raise
        dist.teardown()
    if main:
        _print_results(results, out)
    return 0


def _print_results(results: dict, out: Path) -> None:
    rows = [(k, results[k]) for k in ("method", "data", "epochs", "test_top1", "test_top5", "val_top1",
                                      "train_time_s") if k in results]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"results: {out / RESULTS}")


def _add_workflow_parsers(sub) -> None:
    """`eval`, `compare`, `study` and `sweep` (their work lives in supcon.workflows, imported on use)."""
    fmt = _HelpFormatter
    text = "linear/kNN/ECE/corruptions/embedding/gradients of a finished run"
    ev = sub.add_parser("eval", help=text, description=text, formatter_class=fmt)
    ev.add_argument("--run", required=True, help="run folder written by `supcon train`")
    ev.add_argument("--data", default=None, help="another data set (name or folder): transfer by a new "
                    "linear head on the frozen encoder (default: the run's own data)")
    ev.add_argument("--data-dir", default=None, help="where the data set's files are (default: the run's "
                    "data.data_dir, else $SUPCON_DATA, the Debian path, then a download)")
    ev.add_argument("--reference", default=None, metavar="RUN_DIR",
                    help="run on the same data set that mCE / relative mCE are normalised by "
                         "(default: none, no mCE)")
    _add_eval_options(ev)
    ev.set_defaults(handler=_cmd_eval)

    text = "train + evaluate several methods x seeds; report.md/html"
    cmp = sub.add_parser("compare", help=text, description=text, formatter_class=fmt)
    cmp.add_argument("--methods", default="ce,simclr,supcon", help="comma-separated methods")
    cmp.add_argument("--seeds", type=int, default=5, help="seeds 0..K-1 per method")
    _add_study_options(cmp)
    _add_controlled_options(cmp)
    _add_eval_options(cmp)
    cmp.set_defaults(handler=_cmd_compare)

    text = "the paper's claims, one row each (controlled compare + L_out/L_in, stability, longer schedule)"
    st = sub.add_parser("study", help=text, description=text, formatter_class=fmt)
    st.add_argument("--methods", default="ce,simclr,supcon", help="comma-separated methods (ce and supcon "
                    "required)")
    st.add_argument("--seeds", type=int, default=5, help="seeds 0..K-1 of the core comparison")
    st.add_argument("--claims", default="all", help="comma-separated claim rows: accuracy, robustness, "
                    "calibration, lout-lin, stability, long-schedule, or all")
    st.add_argument("--claim-seeds", type=int, default=3, help="seeds of the lout-lin, stability and "
                    "long-schedule rows")
    st.add_argument("--long-factor", type=int, default=4, help="the long schedule's epochs as a multiple "
                    "of --epochs")
    st.add_argument("--stability-epochs", type=int, default=None, metavar="N",
                    help="epochs of the stability runs (default: --epochs)")
    _add_study_options(st)
    _add_controlled_options(st, presets=False)
    _add_eval_options(st)
    st.set_defaults(handler=_cmd_study)

    text = "stability study: vary one factor around each method's preset"
    sw = sub.add_parser("sweep", help=text, description=text, formatter_class=fmt)
    sw.add_argument("--vary", required=True, choices=("augmentation", "optimizer", "lr", "batch"),
                    help="the factor to vary")
    sw.add_argument("--methods", default="supcon,ce", help="comma-separated methods")
    sw.add_argument("--values", default=None, help="comma-separated subset of the values (lr: factors "
                    "of the preset, e.g. 0.5,2; batch: sizes, e.g. 128,512) (default: all)")
    sw.add_argument("--device", default="auto", help="auto, cpu or cuda (for the evaluation)")
    _add_study_options(sw)
    sw.set_defaults(handler=_cmd_sweep)


def _add_study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help=f"data set name or folder (default: the config's, else {DataConfig.name})")
    p.add_argument("--out", required=True, help="folder for the runs and the report")
    p.add_argument("--epochs", type=int, default=None, help="pre-training epochs of every run "
                   f"(default: the config's, else {TrainConfig.epochs})")
    p.add_argument("--config", default=None, help="YAML file or preset name shared by every run "
                   "(default: none, each method's built-in settings)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides for every run")


def _add_controlled_options(p: argparse.ArgumentParser, presets: bool = True) -> None:
    """The controlled comparison's options (docs/evaluation.md, `supcon compare`)."""
    if presets:
        p.add_argument("--presets", action="store_true", help="uncontrolled: each method keeps its own "
                       "preset augmentation, lr and temperature; no selection, no second ce row")
    p.add_argument("--augmentation", default="simaugment", help="augmentation policy shared by every method")
    p.add_argument("--lr-grid", default="0.05,0.1,0.2", help="peak learning rates tried per method, "
                   "chosen on the validation split")
    p.add_argument("--temperature-grid", default="0.1,0.5", help="temperatures tried for supcon and "
                   "simclr (crossed with --lr-grid)")
    p.add_argument("--baseline-augmentation", default="crop-flip,autoaugment", help="candidate "
                   "augmentations of the second ce row (the best on validation), or none")
    p.add_argument("--budget", choices=("epochs", "passes"), default="epochs", help="equal pre-training "
                   "epochs, or equal encoder passes (images x views x epochs)")
    p.add_argument("--select-epochs", type=int, default=None, metavar="N",
                   help="epochs of the selection runs (default: --epochs)")
    p.add_argument("--unreliable-below", type=float, default=5.0, metavar="POINTS", help="mark relative "
                   "CE unreliable where ce's own top-1 drop under a corruption is below this")
    p.add_argument("--record", default=None, metavar="DIR", help="folder for the committable outputs: "
                   "summaries/ (one JSON per finished run), report, plots (default: --out)")
    p.add_argument("--commit", action="store_true", help="git add + commit each run's summary as it is "
                   "written (--record must be inside a git repository)")


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = (-1.0,)
    if not values or not all(v > 0 for v in values):
        example = "0.05,0.1,0.2" if flag == "--lr-grid" else "0.1,0.5"
        raise ValueError(f"{flag} must be positive numbers like {example}, got {text!r}")
    return values


def _controls(args: argparse.Namespace):
    from .workflows.controlled import Controls

    own = tuple(a.strip() for a in args.baseline_augmentation.split(",") if a.strip())
    return Controls(augmentation=args.augmentation, lr_grid=_floats(args.lr_grid, "--lr-grid"),
                    temperature_grid=_floats(args.temperature_grid, "--temperature-grid"),
                    baseline_augmentations=() if own == ("none",) else own, budget=args.budget,
                    select_epochs=args.select_epochs, unreliable_below=args.unreliable_below,
                    record=Path(args.record) if args.record else None, commit=args.commit)


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corruption-samples", type=int, default=2000, metavar="N",
                   help="seeded test subsample the corruptions are applied to")
    p.add_argument("--corruptions", default="all", help="comma-separated corruption names, all, or none")
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated severities")
    p.add_argument("--knn-k", type=int, default=200, help="neighbours of the kNN classifier")
    p.add_argument("--knn-temperature", type=float, default=0.1, help="kNN weight temperature")
    p.add_argument("--embedding", default="tsne", choices=("tsne", "umap", "none"),
                   help="2-D embedding plot: t-SNE, UMAP (needs umap-learn) or none")
    p.add_argument("--embedding-samples", type=int, default=2000, help="test points in the embedding")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the subsamples and corruptions")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (for the evaluation)")


def _eval_options(args: argparse.Namespace, **extra):
    from .workflows import EvalOptions

    names = {"all": None, "none": ()}.get(args.corruptions)
    if args.corruptions not in ("all", "none"):
        names = tuple(n.strip() for n in args.corruptions.split(",") if n.strip())
    try:
        severities = tuple(int(s) for s in args.severities.split(","))
    except ValueError:
        raise ValueError(f"--severities must be integers like 1,3,5, got {args.severities!r}") from None
    return EvalOptions(corruption_samples=args.corruption_samples, corruptions=names,
                       severities=severities, knn_k=args.knn_k, knn_temperature=args.knn_temperature,
                       embedding=args.embedding, embedding_samples=args.embedding_samples,
                       seed=args.eval_seed, device=args.device, **extra)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .workflows import evaluate_run

    options = _eval_options(args, data=args.data, data_dir=args.data_dir, reference=args.reference)
    result = evaluate_run(args.run, options)
    top5 = [("linear top-5", result["linear"]["top5"])] if "top5" in result["linear"] else []  # > 5 classes
    rows = [("linear top-1", result["linear"]["top1"]), *top5,
            ("kNN top-1", result["knn"]["top1"]), ("ECE", result["calibration"]["ece"])]
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


def _study(args: argparse.Namespace, seeds: int = 1):
    from .distributed import resolve_device
    from .workflows import StudySpec

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    spec = StudySpec(out=Path(args.out), methods=methods, seeds=seeds, data=args.data, epochs=args.epochs,
                     config=args.config, overrides=tuple(args.overrides), data_dir=args.data_dir)
    resolve_device(args.device, what="--device")  # now, not after hours of training
    return spec


def _cmd_compare(args: argparse.Namespace) -> int:
    from .workflows import run_compare

    spec, options = _study(args, args.seeds), _eval_options(args)
    controls = None if args.presets else _controls(args)
    with _file_log(_out_folder(args.out) / "compare.log"):
        result = run_compare(spec, options, progress=not args.no_progress and sys.stderr.isatty(),
                             controls=controls, presets=args.presets)
    print(result["table"])
    print(f"report: {result['report']} and {result['html']}")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from .workflows.claims import CLAIMS, ClaimOptions, run_study

    names = CLAIMS if args.claims.strip() == "all" else tuple(c.strip() for c in args.claims.split(",") if c.strip())
    claims = ClaimOptions(claims=names, seeds=args.claim_seeds, long_factor=args.long_factor,
                          stability_epochs=args.stability_epochs)
    spec, options, controls = _study(args, args.seeds), _eval_options(args), _controls(args)
    with _file_log(_out_folder(args.out) / "study.log"):
        result = run_study(spec, options, controls, claims,
                           progress=not args.no_progress and sys.stderr.isatty())
    print(result["table"])
    print(f"report: {result['report']} and {result['html']}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .workflows import EvalOptions, run_sweep

    spec = _study(args)
    values = [v for v in args.values.split(",") if v.strip()] if args.values is not None else None
    if values == []:
        raise ValueError(f"--values names no value ({args.values!r}); give e.g. --values 0.5,2 or leave it out")
    options = EvalOptions(corruptions=(), embedding="none", gradients=False, device=args.device)
    with _file_log(_out_folder(args.out) / "sweep.log"):
        result = run_sweep(spec, args.vary, values, options=options,
                           progress=not args.no_progress and sys.stderr.isatty())
    for method, s in result["spread"].items():
        std = "-" if s["std"] is None else f"{s['std']:.2f}"
        print(f"{method:<8} top-1 mean {s['mean']:.2f}  std {std}  range {s['range']:.2f}  ({s['n']} runs)")
    print(f"report: {spec.out / 'sweep.md'}")
    return 0


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


def _setup_logging() -> None:
    root = logging.getLogger("supcon")
    root.setLevel(logging.INFO)
    if not any(isinstance(h, _TqdmHandler) for h in root.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


@contextlib.contextmanager
def _file_log(path: Path | None) -> Iterator[None]:
    """Also log to ``path`` while the command runs (removed after, so calls never pile up)."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("supcon")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


class _TqdmHandler(logging.Handler):
    """Log lines that do not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
