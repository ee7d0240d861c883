"""Markdown pieces for reports: tables and numbers as a reader wants to see them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["markdown_table", "fmt_number"]


def fmt_number(value: Any, digits: int = 3) -> str:
    """A cell: ``–`` for None/NaN, ``∞`` for infinity, floats with ``digits`` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
                   align: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table; cells go through :func:`fmt_number` unless already strings.

    ``align`` gives one of ``"l"``, ``"r"``, ``"c"`` per column (default: left
    for the first column, right for the others). ``|`` in a cell is escaped.

    Examples
    --------
    >>> print(markdown_table(["phase", "ok"], [["before", 1.0], ["during", float("nan")]]))
    | phase | ok |
    |:--|--:|
    | before | 1 |
    | during | – |
    """
    heads = list(headers)
    al = list(align) if align is not None else ["l"] + ["r"] * (len(heads) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(marks[a] for a in al) + "|"]
    for row in rows:
        cells = [c if isinstance(c, str) else fmt_number(c) for c in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
