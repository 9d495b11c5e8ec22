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
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (summaries only)")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="dotted config overrides, e.g. optim.lr=0.1 loss.temperature=0.07")
    train.set_defaults(handler=_cmd_train)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config
    from .engine.pipeline import run_training

    flags = {"method": args.method, "data.name": args.data, "train.epochs": args.epochs,
             "train.batch_size": args.batch_size, "data.data_dir": args.data_dir, "train.seed": args.seed,
             "train.device": args.device, "data.num_workers": args.workers}
    cfg = build_config(args.config, overrides={k: v for k, v in flags.items() if v is not None},
                       dotted=args.overrides)
    out = Path(args.out)
    _log_to_file(out / "train.log")
    results = run_training(cfg, out, resume=args.resume, progress=not args.no_progress and sys.stderr.isatty())
    _print_results(results, out)
    return 0


def _print_results(results: dict, out: Path) -> None:
    rows = [(k, results[k]) for k in ("method", "data", "epochs", "test_top1", "test_top5", "val_top1",
                                      "train_time_s") if k in results]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"results: {out / 'results.json'}")


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
