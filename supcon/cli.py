"""The `supcon` command line: train, eval, compare, sweep.

User mistakes (bad paths, options, data, checkpoints) end with one line on stderr and exit code 2;
set SUPCON_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    _setup_logging(args)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the last checkpoint is kept: re-run with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (user-facing boundary)
        if os.environ.get("SUPCON_DEBUG"):
            raise
        return _report(err)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supcon", description="Supervised Contrastive Learning: train and evaluate encoders.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"supcon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="pre-train (supcon/simclr) + linear stage, or train ce end to end",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--method", choices=("supcon", "simclr", "ce"), default=None,
                       help="training method (default: the config's, else supcon)")
    train.add_argument("--data", default=None,
                       help="data set name (fashion-mnist, cifar10, cifar100, mnist, svhn, stl10, digits) "
                            "or an ImageFolder path (default: the config's, else fashion-mnist)")
    train.add_argument("--out", required=True, help="run folder for config, checkpoints, metrics, results")
    train.add_argument("--config", default=None, help="YAML file or preset name (see supcon/configs/)")
    train.add_argument("--epochs", type=int, default=None, help="pre-training epochs (train.epochs)")
    train.add_argument("--batch-size", type=int, default=None, help="images per step (train.batch_size)")
    train.add_argument("--data-dir", default=None, help="where the data set's files are (data.data_dir)")
    train.add_argument("--seed", type=int, default=None, help="random seed (train.seed)")
    train.add_argument("--device", default=None, help="auto, cpu or cuda (train.device)")
    train.add_argument("--workers", type=int, default=None, help="DataLoader workers (data.num_workers)")
    train.add_argument("--memory", type=int, default=None, metavar="N",
                       help="supcon with a momentum encoder and a queue of N keys, e.g. 8192 (loss.memory)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (summaries only)")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="dotted config overrides, e.g. optim.lr=0.1 loss.temperature=0.07")
    train.set_defaults(handler=_cmd_train)
    _add_workflow_parsers(sub)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from . import distributed as dist
    from .config import build_config
    from .engine.pipeline import run_training

    flags = {"method": args.method, "data.name": args.data, "train.epochs": args.epochs,
             "train.batch_size": args.batch_size, "data.data_dir": args.data_dir, "train.seed": args.seed,
             "train.device": args.device, "data.num_workers": args.workers, "loss.memory": args.memory}
    cfg = build_config(args.config, overrides={k: v for k, v in flags.items() if v is not None},
                       dotted=args.overrides)
    out = Path(args.out)
    dist.init_from_env(cfg.train.device)  # a no-op unless launched by torchrun
    main = dist.is_main()
    if main:
        _log_to_file(out / "train.log")
    else:  # the other ranks only speak up about problems
        logging.getLogger("supcon").setLevel(logging.WARNING)
    try:
        results = run_training(cfg, out, resume=args.resume,
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
    print(f"results: {out / 'results.json'}")


def _add_workflow_parsers(sub) -> None:
    """`eval`, `compare` and `sweep` (their work lives in supcon.workflows, imported on use)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    ev = sub.add_parser("eval", help="linear/kNN/ECE/corruptions/embedding/gradients of a finished run",
                        formatter_class=fmt)
    ev.add_argument("--run", required=True, help="run folder written by `supcon train`")
    ev.add_argument("--data", default=None, help="another data set (name or folder): transfer by a new "
                    "linear head on the frozen encoder (default: the run's own data)")
    ev.add_argument("--data-dir", default=None, help="where the data set's files are")
    ev.add_argument("--reference", default=None, metavar="RUN_DIR",
                    help="run on the same data set that mCE / relative mCE are normalised by")
    _add_eval_options(ev)
    ev.set_defaults(handler=_cmd_eval)

    cmp = sub.add_parser("compare", help="train + evaluate several methods x seeds; report.md/html",
                         formatter_class=fmt)
    cmp.add_argument("--methods", default="ce,simclr,supcon", help="comma-separated methods")
    cmp.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 per method")
    _add_study_options(cmp)
    _add_eval_options(cmp)
    cmp.set_defaults(handler=_cmd_compare)

    sw = sub.add_parser("sweep", help="stability study: vary one factor around each method's preset",
                        formatter_class=fmt)
    sw.add_argument("--vary", required=True, choices=("augmentation", "optimizer", "lr"))
    sw.add_argument("--methods", default="supcon,ce", help="comma-separated methods")
    sw.add_argument("--values", default=None, help="comma-separated subset of the values (lr: factors "
                    "of the preset, e.g. 0.5,2); default: all")
    sw.add_argument("--device", default="auto", help="auto, cpu or cuda (for the evaluation)")
    _add_study_options(sw)
    sw.set_defaults(handler=_cmd_sweep)


def _add_study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="data set name or folder (default: the config's)")
    p.add_argument("--out", required=True, help="folder for the runs and the report")
    p.add_argument("--epochs", type=int, default=None, help="pre-training epochs of every run")
    p.add_argument("--config", default=None, help="YAML file or preset name shared by every run")
    p.add_argument("--data-dir", default=None, help="where the data set's files are")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides for every run")


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corruption-samples", type=int, default=2000, metavar="N",
                   help="seeded test subsample the corruptions are applied to")
    p.add_argument("--corruptions", default="all", help="comma-separated corruption names, all, or none")
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated severities")
    p.add_argument("--knn-k", type=int, default=200, help="neighbours of the kNN classifier")
    p.add_argument("--knn-temperature", type=float, default=0.1, help="kNN weight temperature")
    p.add_argument("--embedding", default="auto", choices=("auto", "tsne", "umap", "none"),
                   help="2-D embedding plot (auto: UMAP when installed, else t-SNE)")
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
    rows = [("linear top-1", result["linear"]["top1"]), ("linear top-5", result["linear"]["top5"]),
            ("kNN top-1", result["knn"]["top1"]), ("ECE", result["calibration"]["ece"])]
    if result.get("corruptions"):
        rows.append(("corrupted top-1", result["corruptions"]["mean_corrupted_top1"]))
    if result.get("reference"):
        rows += [("mCE", result["reference"]["mce"]), ("relative mCE", result["reference"]["relative_mce"])]
    print("\n".join(f"{k:<16} {v if v is None else round(v, 4)}" for k, v in rows))
    print(f"eval: {Path(result['output']) / 'eval.json'}")
    return 0


def _study(args: argparse.Namespace, seeds: int = 1):
    from .workflows import StudySpec

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    return StudySpec(out=Path(args.out), methods=methods, seeds=seeds, data=args.data, epochs=args.epochs,
                     config=args.config, overrides=tuple(args.overrides), data_dir=args.data_dir)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .workflows import run_compare

    spec, options = _study(args, args.seeds), _eval_options(args)
    _log_to_file(spec.out / "compare.log")
    result = run_compare(spec, options, progress=not args.no_progress and sys.stderr.isatty())
    print(result["table"])
    print(f"report: {result['report']} and {result['html']}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .workflows import EvalOptions, run_sweep

    spec = _study(args)
    values = [v for v in args.values.split(",") if v.strip()] if args.values else None
    options = EvalOptions(corruptions=(), embedding="none", gradients=False, device=args.device)
    _log_to_file(spec.out / "sweep.log")
    result = run_sweep(spec, args.vary, values, options=options,
                       progress=not args.no_progress and sys.stderr.isatty())
    for method, s in result["spread"].items():
        std = "-" if s["std"] is None else f"{s['std']:.2f}"
        print(f"{method:<8} top-1 mean {s['mean']:.2f}  std {std}  range {s['range']:.2f}  ({s['n']} runs)")
    print(f"report: {spec.out / 'sweep.md'}")
    return 0


def _report(err: Exception) -> int:
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        print("error: out of memory; lower --batch-size or set train.micro_batch_size", file=sys.stderr)
        return 1
    from .engine.loop import NonFiniteLossError

    if isinstance(err, (ValueError, OSError, NonFiniteLossError)):
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1 if isinstance(err, NonFiniteLossError) else EXIT_USER_ERROR
    raise err


def _setup_logging(args: argparse.Namespace) -> None:
    root = logging.getLogger("supcon")
    root.setLevel(logging.INFO)
    if not any(isinstance(h, _TqdmHandler) for h in root.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


def _log_to_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("supcon").addHandler(handler)


class _TqdmHandler(logging.Handler):
    """Log lines that do not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
