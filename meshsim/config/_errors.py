"""Turn a pydantic ``ValidationError`` into one-line ``ConfigError`` messages.

A message reads ``<field path>: <what is wrong, with the value and what is
allowed>``. The field path is written the way the user wrote the file: it is
found by walking the raw input along pydantic's ``loc``, so union branch
labels, normalised shorthand and synonyms (``http`` for ``routes``) do not
leak into it, and a traffic mapping shows ``traffic.users`` rather than
``traffic[0]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError

from meshsim._exceptions import ConfigError
from meshsim.policies._model import PolicyModel, suggest

__all__ = ["Problem", "problems_of", "config_error", "format_path", "parse_path"]

_MISSING = object()
_MAX_REPR = 80


@dataclass(frozen=True)
class Problem:
    """One problem found in the input: where, and what is wrong."""

    path: str
    message: str
    base: str  # path of the union the error came from (to fold branch errors together)

    def line(self) -> str:
        """``path: message`` (or just the message at the top level)."""
        return f"{self.path}: {self.message}" if self.path else self.message


def _all_model_classes() -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [BaseModel]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("meshsim"):
                out.append(sub)
    return out


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    """Every field name (and alias) of meshsim's models; field -> accepted synonyms."""
    names: set[str] = set()
    synonyms: dict[str, set[str]] = {}
    for cls in _all_model_classes():
        for fname, info in cls.model_fields.items():
            names.add(fname)
            if isinstance(info.alias, str):
                names.add(info.alias)
        if issubclass(cls, PolicyModel):
            for alt, field in cls._synonyms.items():
                synonyms.setdefault(field, set()).add(alt)
    return frozenset(names), {k: tuple(sorted(v)) for k, v in synonyms.items()}


def format_path(parts: Sequence[str | int]) -> str:
    """``["services", "a", "script", 1, "call"] -> "services.a.script[1].call"``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def parse_path(path: str) -> list[str | int]:
    """``"traffic[0].rate"`` -> ``["traffic", 0, "rate"]`` (the inverse of :func:`format_path`).

    Raises
    ------
    ValueError
        For an empty segment or a malformed index.
    """
    parts: list[str | int] = []
    for piece in path.lstrip(".").split("."):
        if not piece:
            raise ValueError("empty segment")
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        elif not rest:
            raise ValueError(f"empty segment in {piece!r}")
        while rest:
            idx, sep, rest = rest.partition("]")
            if not sep or not idx.isdigit():
                raise ValueError(f"bad index in {piece!r}")
            parts.append(int(idx))
            if rest.startswith("["):
                rest = rest[1:]
            elif rest:
                raise ValueError(f"unexpected {rest!r} in {piece!r}")
    return parts


def _walk(loc: Sequence[Any], raw: Any) -> tuple[list[str | int], int | None]:
    """Field path along ``loc`` as the user wrote it; index where the first label was dropped."""
    fields, synonyms = _vocabulary()
    node = raw
    parts: list[str | int] = []
    dropped_at: int | None = None
    for pos, item in enumerate(loc):
        if isinstance(node, BaseModel):
            node = node.model_dump(by_alias=True)
        if isinstance(node, Mapping):
            if isinstance(item, str) and item in node:
                parts.append(item)
                node = node[item]
                continue
            if isinstance(item, int) and not isinstance(item, bool) and item in node:
                parts.append(item)
                node = node[item]
                continue
            if isinstance(item, int) and item == 0 and pos + 1 < len(loc) and loc[pos + 1] in node:
                continue  # one mapping given where a list was expected (``match: {uri: ...}``)
            if isinstance(item, int) and 0 <= item < len(node):  # a mapping normalised to a list
                key = list(node)[item]
                parts.append(str(key))
                node = node[key]
                continue
            alts = [a for a in synonyms.get(str(item), ()) if a in node]
            if alts:
                parts.append(alts[0])
                node = node[alts[0]]
                continue
            if isinstance(item, str) and item in fields:  # a field left out of the input
                parts.append(item)
                node = _MISSING
                continue
        elif isinstance(node, (list, tuple)) and isinstance(item, int) and 0 <= item < len(node):
            parts.append(item)
            node = node[item]
            continue
        # a union branch label, a '[key]' marker, or a field of expanded shorthand: not the user's
        if dropped_at is None:
            dropped_at = len(parts)
    return parts, dropped_at


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 4] + "...)"


_PREFIXES = ("Value error, ", "Assertion failed, ")


def _node_at(raw: Any, parts: Sequence[str | int]) -> Any:
    node = raw
    for p in parts:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _allowed_hint(key: str, parent: Any) -> str:
    """Suggestion for an unknown key of a model we do not own, from the models that fit the other keys."""
    if not isinstance(parent, Mapping):
        return ""
    others = {str(k) for k in parent if k != key}
    fits: list[list[str]] = []
    for cls in _all_model_classes():
        names = [f.alias if isinstance(f.alias, str) else n for n, f in cls.model_fields.items()]
        if not others <= set(names):
            continue
        tag = cls.model_fields.get("type")
        if "type" in parent and (tag is None or tag.default != parent["type"]):
            continue
        fits.append(names)
    if not fits:
        return ""
    allowed = sorted({n for names in fits for n in names})
    hint = suggest(key, allowed)
    return f"{hint} (allowed: {', '.join(fits[0])})" if len(fits) == 1 else hint


def _message(err: Mapping[str, Any], parts: list[str | int], parent: Any) -> tuple[str, list[str | int]]:
    """The message for one pydantic error, and the path it belongs to."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    msg = str(err.get("msg", ""))
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if kind == "meshsim":
        return ctx.get("message", msg), parts
    if kind == "unknown_key":
        return msg, parts
    if kind == "value_error":
        return msg, parts
    if kind == "missing":
        name = parts[-1] if parts else "?"
        return f"missing required key {name!r}", parts[:-1]
    if kind == "extra_forbidden":
        key = parts[-1] if parts else "?"
        return f"unknown key {key!r}{_allowed_hint(str(key), parent)}", parts[:-1]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = suggest(str(value), choices) if isinstance(value, str) else ""
        return f"{_show(value)} is not one of {ctx.get('expected', choices)}{hint}", parts
    if kind in ("string_type", "str_type"):
        return f"expected a string, got {_show(value)}", parts
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_show(value)}", parts
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {_show(value)}", parts
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {_show(value)}", parts
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type", "dataclass_type"):
        return f"expected a mapping, got {_show(value)}", parts
    if kind in ("list_type", "tuple_type", "sequence_type", "iterable_type", "set_type"):
        return f"expected a list, got {_show(value)}", parts
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        bound = next(iter(ctx.values()), "?")
        return f"{_show(value)} is out of range; must be {op} {bound}", parts
    text = msg[:1].lower() + msg[1:] if msg else kind
    return f"{_show(value)}: {text}", parts


_PRIORITY = {"meshsim": 0, "unknown_key": 0, "value_error": 0, "missing": 2}


_LEADING_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\])*): ")


def _config_error_inside(err: Mapping[str, Any]) -> tuple[list[str | int], str] | None:
    """A ``ConfigError`` a policy module raised inside validation: (its path below the model, message).

    Policy modules that read other spellings (Istio's ``connectionPool``, ...)
    raise ``ConfigError("tcp.maxConnections: ...", path="tcp.maxConnections")``;
    pydantic wraps it as a ``value_error`` at the model. The path goes into the
    field path and out of the message, so the line reads like every other one.
    """
    if err.get("type") != "value_error":
        return None
    exc = (err.get("ctx") or {}).get("error")
    if not isinstance(exc, ConfigError) or exc.source:
        return None
    message = str(exc)
    path = exc.path
    m = _LEADING_PATH.match(message)
    if m is not None and (
        not path or path == m.group(1) or path.startswith((m.group(1) + ".", m.group(1) + "["))
    ):
        path, message = m.group(1), message[m.end() :]
    if not path:
        return None
    try:
        return parse_path(path), message
    except ValueError:
        return None


def problems_of(exc: ValidationError, raw: Any) -> list[Problem]:
    """Every distinct problem in a ``ValidationError``, in input order.

    Errors from the branches of one union (a latency spec that is neither a
    valid shorthand nor a valid mapping) are folded into one problem: the
    most specific message wins.
    """
    chosen: dict[str, tuple[tuple[int, int, int], Problem]] = {}
    for order, err in enumerate(exc.errors()):
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        if err["type"] == "meshsim" and ctx.get("subpath"):
            loc += tuple(parse_path(str(ctx["subpath"])))
        inner = _config_error_inside(err)
        if inner is not None:
            loc += tuple(inner[0])
        parts, dropped_at = _walk(loc, raw)
        parent = _node_at(raw, parts[:-1]) if err["type"] == "extra_forbidden" else None
        message, where = _message(err, parts, parent)
        if inner is not None:
            message = inner[1]
        path = format_path(where)
        base = format_path(parts[:dropped_at]) if dropped_at is not None else path
        # rank: our own messages first, then deeper paths, then input order
        rank = (_PRIORITY.get(err["type"], 1), -len(where), order)
        problem = Problem(path=path, message=message, base=base)
        if base not in chosen or rank < chosen[base][0]:
            chosen[base] = (rank, problem)
    return [p for _, p in sorted(chosen.values(), key=lambda rp: rp[0][2])]


def config_error(exc: ValidationError, raw: Any, source: str) -> ConfigError:
    """One ``ConfigError`` for the first problem (the rest counted in the message)."""
    problems = problems_of(exc, raw)
    if not problems:  # pragma: no cover - pydantic always reports at least one error
        return ConfigError("invalid scenario", source=source)
    first = problems[0]
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    err = ConfigError(first.line() + tail, path=first.path, source=source)
    err.problems = [p.line() for p in problems]  # type: ignore[attr-defined]
    return err
