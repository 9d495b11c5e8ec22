"""Argument checks and error text shared by every layer (standard library only).

Bad input is one ``ValueError`` line that names the argument, the value and what is valid.
"""

from __future__ import annotations

from typing import Any

OBJECT_PREFIX = "object:"  # object:<ClassName>: an encoder or data set given to supcon.train as an object


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type name when the message is empty), for the
    one-line reports of the CLI and of the run-folder readers."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def object_name(obj: object) -> str:
    """``object:<ClassName>``: how a config names an encoder or data set given as an object."""
    return OBJECT_PREFIX + type(obj).__name__


def is_object_name(name: object) -> bool:
    """Whether ``name`` (an encoder or data set name) stands for an object given in Python, which
    nothing can rebuild from the name alone."""
    return isinstance(name, str) and name.startswith(OBJECT_PREFIX)


def is_int(value: Any, low: int = 1) -> bool:
    """True for an int (not a bool) that is at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_int(name: str, value: Any, *, low: int = 1, allow_none: bool = False) -> None:
    """Refuse anything but an int >= ``low`` (or None, when ``allow_none``) for ``name``.

    Raises:
        ValueError: ``"NAME must be an int >= LOW, got VALUE"`` for a value of another type (a
            bool included), ``"NAME must be >= LOW, got VALUE"`` for an int below ``low``
            (``"None or ..."`` when ``allow_none``).
    """
    if is_int(value, low) or (allow_none and value is None):
        return
    alternative = "None or " if allow_none else ""
    kind = "" if isinstance(value, int) and not isinstance(value, bool) else "an int "
    raise ValueError(f"{name} must be {alternative}{kind}>= {low}, got {value!r}")
