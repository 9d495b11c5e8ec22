"""What the `supcon` command tells the user: one ``error:`` line and an exit code when it fails,
its help, and its log lines (on stderr, between progress bars, and in a run's train.log).

Split from :mod:`supcon.cli` so the parser and the commands stay readable; docs/errors.md lists
every message. The library's errors name the arguments of the Python calls (``resume=True``,
``run_dir``, ``methods``); :func:`in_flags` turns those names into the flags the user typed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from .checks import first_line
from .run_folder import has_checkpoint

EXIT_FAILED = 1  # the run itself failed: out of memory, non-finite loss
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# A Python argument named in a library error -> the flag that gave it on the command line.
ARGUMENT_FLAGS = {"resume": "--resume", "presets": "--presets", "run_dir": "--run", "out_dir": "--out",
                  "reference": "--reference", "device": "--device", "methods": "--methods",
                  "seeds": "--seeds", "epochs": "--epochs"}


def failure_message(err: Exception, args: argparse.Namespace) -> tuple[str, int] | None:
    """The one-line message of a user-facing failure and its exit code; None for a bug (any other
    exception), which the caller re-raises with its traceback."""
    if _is_out_of_memory(err):
        message = ("out of memory; evaluate with --device cpu" if args.command == "eval" else
                   "out of memory; set train.micro_batch_size=N (supcon/simclr: embeds the batch N images "
                   "at a time) or lower --batch-size, and train again into a new --out")
        code = EXIT_FAILED
    elif _is_non_finite(err):
        message, code = first_line(err), EXIT_FAILED
    elif isinstance(err, OSError):
        message, code = _os_message(err), EXIT_USER_ERROR
    elif isinstance(err, ValueError):
        message, code = first_line(err), EXIT_USER_ERROR
    else:
        return None
    return in_flags(message, {**ARGUMENT_FLAGS, **getattr(args, "flags", {})}), code


def in_flags(message: str, flags: dict[str, str] = ARGUMENT_FLAGS) -> str:
    """``message`` with the Python arguments it names turned into their flags (``flags``: name ->
    flag): ``resume=True`` becomes ``--resume``; a name that is the message's subject (it begins
    the message, followed by ``:``, `` must``, `` names`` or a path, quote or number:
    ``methods must ...``, ``run_dir /x does not exist``) becomes its flag; a name with an
    underscore (``run_dir``, never an English word) becomes its flag wherever it stands, but not
    inside a dotted config key."""
    for name, flag in flags.items():
        message = re.sub(rf"(?<![\w.]){name}=True\b", flag, message)
        message = re.sub(rf"^{name}(?=:| must | names | ['\"/~.\d])", flag, message)
        if "_" in name:
            message = re.sub(rf"(?<![\w.]){name}(?![\w.=])", flag, message)
    return message


def _is_out_of_memory(err: Exception) -> bool:
    torch = sys.modules.get("torch")  # not imported yet: it cannot be torch's error
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(getattr(torch, "cuda", None),
                                                             "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    cpu_oom = isinstance(err, RuntimeError) and "can't allocate memory" in str(err)  # CPU allocator
    return isinstance(err, MemoryError) or cpu_oom


def _is_non_finite(err: Exception) -> bool:
    loop = sys.modules.get("supcon.engine.loop")
    return loop is not None and isinstance(err, loop.NonFiniteLossError)


def _os_message(err: OSError) -> str:
    """``PATH: reason; what to do`` instead of ``[Errno N] ...``."""
    if not err.strerror:  # raised with a message of our own
        return first_line(err)
    hint = {errno.ENOSPC: "free some disk space", errno.EACCES: "choose a path you may write to",
            errno.EPERM: "choose a path you may write to", errno.EROFS: "choose a writable path",
            errno.ENOENT: "check the path"}.get(err.errno, "check the path and retry")
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror.lower()}; {hint}"


def interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C left behind, and how to go on."""
    if args.command == "train":
        if has_checkpoint(args.out):
            return f"interrupted; the checkpoint in {args.out} is kept: re-run with --resume to continue"
        return "interrupted before the first checkpoint; re-run the same command (without --resume) to start"
    if args.command in ("compare", "sweep", "study"):
        return ("interrupted; re-run the same command to continue (finished runs are skipped, "
                "the interrupted one resumes from its checkpoint)")
    return "interrupted; nothing was saved: re-run the same command to evaluate"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point to the command's --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message}; see {self.prog} --help\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: appended unless the help text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text.lower() or not action.option_strings or action.required
                or action.default in (None, argparse.SUPPRESS)):
            return text
        if action.nargs == 0 and action.default is False:  # a store_true flag
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def setup_logging() -> None:
    """Log the ``supcon`` logger's INFO lines on stderr, without breaking a progress bar."""
    root = logging.getLogger("supcon")
    root.setLevel(logging.INFO)
    if not any(isinstance(h, TqdmHandler) for h in root.handlers):
        handler = TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


@contextlib.contextmanager
def file_log(path: Path | None) -> Iterator[None]:
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


class TqdmHandler(logging.Handler):
    """Log lines that do not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record), file=sys.stderr)
