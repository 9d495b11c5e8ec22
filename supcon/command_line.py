"""Option dataclasses as command-line flags, written once: the CLI's argument groups are generated
from them (:func:`add_flags`, :func:`from_flags`) and a report's "reproduce this" command is
rebuilt from the same objects (:func:`to_flags`).

A field ``knn_k`` is the flag ``--knn-k`` (another spelling in ``metadata["flag"]``; none at all
with ``metadata["flag"] = None``); its docstring is the flag's help and its default the flag's
default. On the command line a bool field is a switch, a tuple is comma-separated (``none`` for
an empty tuple; ``all`` for None where the tuple may be None, or for ``metadata["all"]``), and
anything else is its value.
Standard library only, so the parser is built without importing torch.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: its docstring on one line}`` of a dataclass (the string right under each field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    return {stmt.target.id: " ".join(nxt.value.value.split())
            for stmt, nxt in zip(body, body[1:], strict=False)
            if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)}


def flag_fields(cls: type, skip: tuple[str, ...] = ()) -> list[tuple[dataclasses.Field, str]]:
    """``(field, flag)`` of every field of ``cls`` that is a flag, in field order, but ``skip``."""
    out = []
    for f in dataclasses.fields(cls):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if flag is not None and f.name not in skip:
            out.append((f, flag))
    return out


def add_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (),
              title: str | None = None) -> dict[str, str]:
    """Add a flag for every field of the dataclass ``cls`` (but ``skip``) to ``parser`` (in a group
    named ``title``); returns ``{field name: flag}``.

    Raises:
        TypeError: a field without a docstring (its help), or a bool field that defaults to True
            (a switch can only turn it on).
    """
    group = parser.add_argument_group(title) if title else parser
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f, flag in flag_fields(cls, skip):
        if f.name not in docs:
            raise TypeError(f"{cls.__name__}.{f.name} has no docstring to be the help of {flag}")
        base, optional = _base(hints[f.name])
        if base is bool:
            if f.default is not False:
                raise TypeError(f"{cls.__name__}.{f.name}: a switch needs the default False")
            group.add_argument(flag, action="store_true", help=_help(docs[f.name]))
            continue
        tuple_ = typing.get_origin(base) is tuple
        kind = str if tuple_ or base is Path else base
        default = to_text(f.default, optional, f.metadata.get("all")) if tuple_ else f.default
        group.add_argument(flag, type=kind, default=default, help=_help(docs[f.name], tuple_, f.default is None))
    return {f.name: flag for f, flag in flag_fields(cls, skip)}


def from_flags(cls: type, args: argparse.Namespace, *, skip: tuple[str, ...] = (), **given: Any) -> Any:
    """The ``cls`` instance that parsed flags ``args`` (made by :func:`add_flags`) describe, with
    ``given`` fields on top.

    Raises:
        ValueError: a tuple's text that is not comma-separated values of its type (named by the
            field), or anything ``cls`` itself refuses.
    """
    hints, values = typing.get_type_hints(cls), {}
    for f, flag in flag_fields(cls, skip):
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        base, optional = _base(hints[f.name])
        if typing.get_origin(base) is tuple and isinstance(value, str):
            value = from_text(f.name, value, typing.get_args(base)[0], optional, f.metadata.get("all"),
                              f.default or ())
        elif base is Path and value is not None:
            value = Path(value)
        values[f.name] = value
    return cls(**{**values, **given})


def to_flags(obj: Any, *, skip: tuple[str, ...] = ()) -> list[str]:
    """The flags that rebuild the dataclass instance ``obj`` (but ``skip``): one per field that
    differs from its default, in field order (the inverse of :func:`from_flags`)."""
    hints, out = typing.get_type_hints(type(obj)), []
    for f, flag in flag_fields(type(obj), skip):
        value = getattr(obj, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if value == default:
            continue
        if value is True:
            out.append(flag)
        elif value is not False:
            out += [flag, to_text(value, _base(hints[f.name])[1], f.metadata.get("all"))]
    return out


def to_text(value: Any, optional: bool = False, every: tuple | None = None) -> str:
    """A value as it is written on the command line: a tuple comma-separated (``none`` when empty,
    ``all`` for None or for ``every``), a float in its shortest exact form (``0.1``, ``5``),
    anything else as str."""
    if (value is None and optional) or (every is not None and value == every):
        return "all"
    if isinstance(value, tuple):
        return ",".join(to_text(v) for v in value) or "none"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def from_text(name: str, text: str, kind: type, optional: bool = False, every: tuple | None = None,
              example: tuple = ()) -> tuple | None:
    """The tuple of ``kind`` that the comma-separated ``text`` of field ``name`` spells (``none``:
    empty; ``all``: None where the field may be None, else ``every``); ``example`` (the field's
    default) is shown when ``text`` is wrong.

    Raises:
        ValueError: an item that is not a ``kind``.
    """
    words = tuple(w.strip() for w in text.split(",") if w.strip())
    if words == ("none",):
        return ()
    if words == ("all",) and (optional or every is not None):
        return None if optional else every
    try:
        return tuple(kind(w) for w in words)
    except ValueError:
        what = {int: "integers", float: "numbers"}.get(kind, "values")
        raise ValueError(f"{name} must be {what} like {to_text(example)}, got {text!r}") from None


def _help(doc: str, tuple_: bool = False, none_default: bool = False) -> str:
    """A field's docstring as the help of its flag: Python's spellings of the values in the
    command line's (a None default is the flag's default; a tuple's None is ``all``, ``()`` is
    ``none``), and how a tuple is written."""
    text = doc.replace("``", "")
    if tuple_:
        text = text.replace("None = ", "all = ").replace("() = ", "none = ")
        return f"{text.rstrip('.')} (comma-separated)"
    return text.replace("None = ", "default: ") if none_default else text


def _base(hint: Any) -> tuple[Any, bool]:
    """``(the type without None, whether None is allowed)`` of a field's type hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
    return hint, False
