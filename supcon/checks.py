"""Argument checks and error text shared by every layer (standard library only).

Bad input is one ``ValueError`` line that names the argument, the value and what is valid.
"""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type name when the message is empty), for the
    one-line reports of the CLI and of the run-folder readers."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
