"""Reading YAML input files with the place of an error in the message.

One way to read a text file and to turn a YAML error into a one-line
:class:`~meshsim._exceptions.ConfigError`: ``<source>: line L, column C:
YAML syntax error: <problem>``. It needs only PyYAML and
``meshsim._exceptions``, so every meshsim package may use it without pulling
in the configuration models or the simulator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from meshsim._exceptions import ConfigError

__all__ = ["read_text", "load_yaml", "yaml_error", "yaml_mark", "refuse_duplicate_keys"]


def read_text(path: str | os.PathLike[str], what: str = "a file") -> str:
    """The UTF-8 text of ``path``, or a :class:`ConfigError` naming it.

    ``what`` completes "is a directory, not ..." (``"a scenario file"``).
    """
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise ConfigError("no such file", source=source)
    if p.is_dir():
        raise ConfigError(f"is a directory, not {what}", source=source)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None


def yaml_mark(exc: yaml.YAMLError) -> str:
    """``"line L, column C: "`` (1-based) where ``exc`` happened, or ``""`` if it has no place."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """``exc`` as one line: place, ``YAML syntax error`` (or ``unsupported YAML`` for a tag), problem."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "invalid YAML"
        extra = f" ({exc.context})" if exc.context and exc.problem else ""
        what = "unsupported YAML" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        return ConfigError(f"{yaml_mark(exc)}{what}: {problem}{extra}", source=source)
    return ConfigError(f"YAML error: {exc}", source=source)


def load_yaml(text: str, source: str) -> Any:
    """The one YAML document in ``text``; duplicate keys and YAML errors raise :class:`ConfigError`."""
    try:
        refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), source)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None


def refuse_duplicate_keys(node: yaml.Node | None, source: str) -> None:
    """YAML silently keeps the last of two equal keys; meshsim's inputs refuse them."""
    todo = [node] if node is not None else []
    seen_nodes: set[int] = set()
    while todo:
        n = todo.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in first and key.tag == first[key.value].tag:
                        prev = first[key.value].start_mark
                        mark = key.start_mark
                        raise ConfigError(
                            f"line {mark.line + 1}, column {mark.column + 1}: duplicate key {key.value!r}"
                            f" (first at line {prev.line + 1})",
                            source=source,
                        )
                    first[key.value] = key
                todo.append(value)
        elif isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)
