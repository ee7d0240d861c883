"""Small matplotlib building blocks for reports: metrics over time with fault windows shaded.

Each function does one thing and takes plain data (numbers, mappings,
DataFrames with named columns), so a Markdown report, an HTML report or a
notebook can put them together:

* :func:`shade_faults` shades the time span of each fault on an axis and labels it;
* :func:`plot_over_time` draws one or more series (with an optional band each)
  on an axis, with a threshold line such as an SLO;
* :func:`time_figure` builds a one-axis figure of series over time with the
  faults shaded;
* :func:`save_figure` writes a figure as PNG (deterministic metadata) and closes it.

matplotlib is imported inside the functions with the non-interactive ``Agg``
backend, so importing :mod:`meshsim.report` stays cheap and works headless.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["shade_faults", "plot_over_time", "time_figure", "save_figure", "fault_spans", "FaultSpan", "Series"]

#: a fault to shade: (label, start in seconds, end in seconds; ``inf`` = until the end of the axis)
FaultSpan = tuple[str, float, float]


class Series:
    """One line of a plot over time: ``x`` (seconds), ``y``, optional band ``(low, high)``.

    Parameters
    ----------
    x, y
        Equal-length sequences; NaN values leave a gap.
    low, high
        Optional band drawn around the line (a confidence interval, a range
        over replications).
    style
        Keyword arguments for ``Axes.plot`` (``color``, ``linestyle``, ...).
    """

    __slots__ = ("x", "y", "low", "high", "style")

    def __init__(self, x: Sequence[float], y: Sequence[float], *, low: Sequence[float] | None = None,
                 high: Sequence[float] | None = None, style: Mapping[str, Any] | None = None) -> None:
        self.x = list(x)
        self.y = list(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y differ in length ({len(self.x)} != {len(self.y)})")
        self.low = None if low is None else list(low)
        self.high = None if high is None else list(high)
        self.style = dict(style or {})


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fault_spans(faults: Any) -> list[FaultSpan]:
    """Fault spans from a faults table (``name, start_s, end_s`` columns) or an iterable of triples."""
    if faults is None:
        return []
    if hasattr(faults, "itertuples"):
        return [(str(r.name), float(r.start_s), float(r.end_s)) for r in faults.itertuples(index=False)]
    return [(str(n), float(s), float(e)) for n, s, e in faults]


def shade_faults(ax: Any, faults: Iterable[FaultSpan] | Any, *, color: str = "tab:red", alpha: float = 0.12,
                 label: bool = True) -> int:
    """Shade each fault's time span on ``ax`` (``axvspan``) and write its name at the top.

    Parameters
    ----------
    ax
        A matplotlib ``Axes``.
    faults
        ``(name, start_s, end_s)`` triples, or a faults table with those
        columns (``RunResult.faults``). An end of ``inf`` shades to the right
        edge of the axis.
    color, alpha
        Fill of the spans.
    label
        Write each fault's name inside the top of its span.

    Returns
    -------
    int
        The number of spans drawn.
    """
    spans = fault_spans(faults)
    right = ax.get_xlim()[1]
    for name, start, end in spans:
        stop = right if not math.isfinite(end) else end
        ax.axvspan(start, stop, color=color, alpha=alpha, linewidth=0, gid=f"fault:{name}")
        if label:
            ax.text(start, 0.98, f" {name}", transform=ax.get_xaxis_transform(), va="top", ha="left",
                    fontsize=8, color=color, clip_on=True)
    return len(spans)


def plot_over_time(ax: Any, series: Mapping[str, Series], *, threshold: float | None = None,
                   threshold_label: str | None = None, ylabel: str | None = None,
                   title: str | None = None, ylim: tuple[float | None, float | None] | None = None) -> None:
    """Draw ``series`` (label -> :class:`Series`) on ``ax``, with an optional horizontal threshold.

    Lines carry their label (``ax.get_legend_handles_labels()`` finds them);
    bands are drawn with ``fill_between`` at low opacity; the threshold is a
    dashed black line labelled ``threshold_label``.
    """
    for label, s in series.items():
        (line,) = ax.plot(s.x, s.y, label=label, linewidth=1.4, **s.style)
        if s.low is not None and s.high is not None:
            ax.fill_between(s.x, s.low, s.high, color=line.get_color(), alpha=0.2, linewidth=0)
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=threshold_label or "threshold")
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("time (s)")
    ax.grid(True, alpha=0.3)


def time_figure(series: Mapping[str, Series], *, faults: Iterable[FaultSpan] | Any = None,
                threshold: float | None = None, threshold_label: str | None = None, ylabel: str | None = None,
                title: str | None = None, ylim: tuple[float | None, float | None] | None = None,
                logy: bool = False, xlim: tuple[float, float] | None = None, size: tuple[float, float] = (8, 4)
                ) -> Any:
    """A figure with one axis: ``series`` over time, faults shaded, a threshold line and a legend.

    Returns
    -------
    matplotlib.figure.Figure
        Write it with :func:`save_figure`.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=size)
    plot_over_time(ax, series, threshold=threshold, threshold_label=threshold_label, ylabel=ylabel, title=title,
                   ylim=ylim)
    if logy:
        ax.set_yscale("log")
    if xlim is not None:
        ax.set_xlim(*xlim)
    shade_faults(ax, faults)
    if series or threshold is not None:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (no timestamp in its metadata, so equal plots give equal files) and close it."""
    plt = _pyplot()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return out
