"""What the importers share: reading files, naming where a problem is, warnings, writing the scenario.

An importer turns outside files into a scenario mapping, validates it with
:func:`meshsim.config.parse_scenario` and hands back an :class:`ImportResult`;
nothing is written until everything has been read and checked, and
:meth:`ImportResult.write` replaces the output file atomically.

Problems are :class:`~meshsim.ConfigError` with one line:
``<file>: <document or entry> (<kind> <name>): <field path>: <what is wrong>``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from meshsim._exceptions import ConfigError
from meshsim._files import atomic_write_text
from meshsim._yaml import read_text, refuse_duplicate_keys, yaml_error

__all__ = ["Where", "Warnings", "ImportResult", "read_documents", "reader_error", "seconds_text", "finish",
           "NAME_RE"]

#: what meshsim accepts as a service, version or zone name
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Where:
    """Where something was read: a file, and inside it a document or entry.

    ``label`` reads like ``document 2 (Route canary)`` or ``services[3] (b)``;
    ``path`` is the field path inside it, dotted as in the file.
    """

    file: str
    label: str = ""
    path: str = ""

    def at(self, *parts: str | int) -> Where:
        """The same document, ``parts`` further down (``at("spec", "listeners", 0)``)."""
        path = self.path
        for p in parts:
            if isinstance(p, int):
                path += f"[{p}]"
            elif p:
                path = f"{path}.{p}" if path else str(p)
        return Where(self.file, self.label, path)

    def text(self) -> str:
        return ": ".join(x for x in (self.file, self.label, self.path) if x)

    def error(self, message: str) -> ConfigError:
        """A one-line :class:`ConfigError` at this place."""
        inner = ": ".join(x for x in (self.label, self.path) if x)
        return ConfigError(f"{inner}: {message}" if inner else message, path=self.path, source=self.file)


def reader_error(exc: Exception, where: Where) -> ConfigError:
    """A policy reader's refusal (``refuse``, ``ConfigError`` or pydantic's) as a ConfigError at ``where``."""
    if isinstance(exc, PydanticCustomError):
        ctx = exc.context or {}
        sub = str(ctx.get("subpath") or "")
        return where.at(*([sub] if sub else [])).error(str(ctx.get("message") or exc.message()))
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        ctx = err.get("ctx") or {}
        loc = [p for p in err.get("loc", ()) if p not in ("function-after", "function-before", "function-wrap")]
        sub = str(ctx.get("subpath") or "")
        parts: list[str | int] = [p for p in loc if isinstance(p, (str, int))]
        if sub:
            parts.append(sub)
        msg = ctx.get("message") or err.get("msg", str(exc))
        return where.at(*parts).error(str(msg))
    if isinstance(exc, ConfigError):
        text = str(exc)
        sub = exc.path
        head, sep, rest = text.partition(": ")
        if sub and sep and (sub == head or sub.startswith(head + ".") or sub.startswith(head + "[")):
            text = rest  # the reader's own "<path>: " prefix; the path is given in full below
        return where.at(*([sub] if sub else [])).error(text)
    return where.error(str(exc))


def call_reader(fn: Callable[..., Any], where: Where, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, its refusal turned into a one-line ConfigError at ``where``."""
    try:
        return fn(*args, **kwargs)
    except (PydanticCustomError, ValidationError, ConfigError) as exc:
        raise reader_error(exc, where) from None


@dataclass
class _Warning:
    message: str
    first: str
    count: int = 1


class Warnings:
    """Warnings, one line each; equal ones (same key) are merged with a count and the first place."""

    def __init__(self) -> None:
        self._items: dict[str, _Warning] = {}

    def add(self, where: Where, message: str, *, key: str | None = None) -> None:
        k = key if key is not None else f"{where.text()}: {message}"
        if k in self._items:
            self._items[k].count += 1
        else:
            self._items[k] = _Warning(message, where.text())

    def lines(self) -> list[str]:
        out = []
        for w in self._items.values():
            more = f" (and {w.count - 1} more like it)" if w.count > 1 else ""
            out.append(f"{w.first}: {w.message}{more}")
        return out

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------------------------------
# reading


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_documents(path: str | os.PathLike[str]) -> list[Any]:
    """The documents of a JSON or (multi-document) YAML file, in order.

    A JSON array at the top level, a YAML stream of several documents and a
    Kubernetes ``kind: List`` (its ``items``) each give several documents;
    empty YAML documents are skipped. Duplicate keys are refused (JSON and
    YAML would silently keep the last).
    """
    source = str(path)
    text = read_text(path)
    stripped = text.lstrip()
    docs: list[Any]
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}",
                              source=source) from None
        except ValueError as exc:
            raise ConfigError(f"JSON error: {exc}", source=source) from None
        docs = list(data) if isinstance(data, list) else [data]
    else:
        try:
            for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
                refuse_duplicate_keys(node, source)
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise yaml_error(exc, source) from None
    out: list[Any] = []
    for d in docs:
        if isinstance(d, Mapping) and d.get("kind") == "List" and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    if not out:
        raise ConfigError("the file holds no document", source=source)
    return out


def check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: Where, what: str) -> None:
    """Refuse a key not in ``allowed`` with a suggestion."""
    from meshsim.policies._model import suggest

    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            raise where.at(str(key)).error(
                f"unknown key {key!r} in {what}{suggest(str(key), allowed)} (allowed: {', '.join(allowed)})")


def mapping(value: Any, where: Where, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"{what} must be a mapping; got {value!r}")
    return value


def listing(value: Any, where: Where, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise where.error(f"{what} must be a list; got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# writing


def seconds_text(seconds: float) -> str | float:
    """An exact, readable duration: ``0.25 -> '250ms'``, ``15 -> '15s'``; other values stay seconds.

    Examples
    --------
    >>> seconds_text(0.25), seconds_text(15.0), seconds_text(0.0), seconds_text(1e-5)
    ('250ms', '15s', '0s', 1e-05)
    """
    ms = round(seconds * 1000.0)
    if abs(ms / 1000.0 - seconds) > 1e-12:
        return seconds
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110,
                     allow_unicode=True)


@dataclass
class ImportResult:
    """An imported scenario: its mapping, its YAML text (header comment included) and the warnings.

    Attributes
    ----------
    scenario
        The scenario as a mapping (what :func:`meshsim.config.parse_scenario` takes).
    text
        The YAML file to write: a comment header, then the scenario.
    warnings
        One line each: fields that were read but do not change the simulation,
        and places where meshsim approximates the source's behaviour.
    """

    scenario: dict[str, Any]
    text: str
    warnings: list[str] = field(default_factory=list)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`text` to ``path`` atomically (a temporary file renamed over it)."""
        out = Path(path)
        directory = out.parent if str(out.parent) else Path(".")
        if not directory.is_dir():
            raise ConfigError(f"{out}: the directory {directory} does not exist")
        return atomic_write_text(out, self.text)


def finish(scenario: dict[str, Any], header: Sequence[str], warnings: Warnings, source: str) -> ImportResult:
    """Validate ``scenario`` (as its YAML text reads back) and build the :class:`ImportResult`."""
    from meshsim.config import parse_scenario

    body = dump_yaml(scenario)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header)
    text = comment + body
    try:
        parse_scenario(yaml.safe_load(body), source=source)
    except ConfigError as exc:  # a bug of the importer, or a topology it cannot combine with
        raise ConfigError(f"the imported scenario does not validate: {exc}") from None
    return ImportResult(scenario=scenario, text=text, warnings=warnings.lines())
