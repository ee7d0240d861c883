"""Capacity reports: a sweep's curves and SLO heatmap, an SLO search's evaluated points, as Markdown and HTML.

Plots (PNG, rendered headless like the run report, :mod:`meshsim.report._run`):

* :func:`sweep_curves_figure`: a latency quantile (or the SLO's metric) with
  its confidence band against the swept value, one line per scope (end to
  end, each service); utilization per service on a second panel; the SLO
  target as a dashed line, the answer (the boundary value meeting the SLO)
  and the knee as vertical lines. With two swept fields the lines are the
  end-to-end curve at each value of the second field.
* :func:`slo_heatmap_figure`: for two swept fields, one cell per grid point,
  green when the SLO is met and red when not (or coloured by the metric
  without an SLO), annotated with the metric's value.
* :func:`capacity_figure`: an SLO search's evaluated values, each SLO's
  metric with its one-sided bound, coloured by verdict, the target, the
  answer and the knee; the busiest service's utilization below.

A sweep cell meets an SLO when its confidence bound does: ``p99<=200ms`` is met
when ``p99_s_high <= 0.2`` (the table's two-sided interval), so a cell with one
replication (no interval) is judged on its mean.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meshsim.report._curves import knee
from meshsim.report._markdown import fmt_number
from meshsim.report._plots import _pyplot
from meshsim.report._run import RunReport, _Block, _deterministic_style, _figure

__all__ = [
    "sweep_curves_figure",
    "slo_heatmap_figure",
    "capacity_figure",
    "build_sweep_report",
    "build_capacity_report",
    "write_sweep_report",
    "write_capacity_report",
]

#: SLO metric -> (sweep table column, factor for display, axis label)
_COLUMNS: dict[str, tuple[str, float, str]] = {
    "mean": ("mean_s", 1e3, "mean latency (ms)"),
    "p50": ("p50_s", 1e3, "p50 latency (ms)"),
    "p90": ("p90_s", 1e3, "p90 latency (ms)"),
    "p99": ("p99_s", 1e3, "p99 latency (ms)"),
    "success": ("success_rate", 1.0, "success rate"),
    "utilization": ("utilization", 1.0, "utilization"),
    "rps": ("rps", 1.0, "throughput (req/s)"),
}
_LATENCY = ("mean", "p50", "p90", "p99", "p999")
_VERDICT_COLOURS = {"pass": "tab:green", "fail": "tab:red", "undecided": "tab:gray"}
_STABLE_UTILIZATION = 0.95


# ---------------------------------------------------------------------------- helpers
def _numeric(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """Positions on the x axis: the values as numbers (rates, durations parsed), else 0, 1, 2... with labels."""
    from meshsim.units import parse_duration, parse_fraction, parse_rate

    out = []
    for v in values:
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out.append(float(v))
            continue
        for parse in (parse_rate, parse_duration, parse_fraction):
            try:
                out.append(float(parse(v)))
                break
            except (ValueError, TypeError):
                continue
        else:
            return np.arange(len(values), dtype=float), [str(v) for v in values]
    return np.asarray(out, dtype=float), None


def _swept(table: pd.DataFrame) -> list[str]:
    """The swept paths of a sweep table (the columns between ``point`` and ``scope``)."""
    cols = list(table.columns)
    return cols[cols.index("point") + 1:cols.index("scope")]


def _varying(table: pd.DataFrame) -> list[str]:
    return [p for p in _swept(table) if table[p].nunique(dropna=False) > 1]


def _metric_of(slos: Sequence[Any], metric: str | None) -> tuple[str, Any]:
    """The metric the curves show and the SLO on it (or None): the first SLO with a sweep column."""
    if metric is not None:
        return metric, next((s for s in slos if s.metric == metric), None)
    for s in slos:
        if s.metric in _COLUMNS:
            return s.metric, s
    return "p99", None


def _meets(table: pd.DataFrame, slo: Any) -> np.ndarray:
    """Per row: the SLO met by its confidence bound (the mean when there is no interval)."""
    col = _COLUMNS[slo.metric][0]
    upper = slo.op.startswith("<")
    bound = table[f"{col}_high" if upper else f"{col}_low"].to_numpy(dtype=float)
    mean = table[col].to_numpy(dtype=float)
    bound = np.where(np.isfinite(bound), bound, mean)
    return bound <= slo.target if upper else bound >= slo.target


def _boundary(xs: np.ndarray, ok: np.ndarray) -> int | None:
    """Index of the answer along a curve: the first passing value when the last passes, else the last passing."""
    idx = np.flatnonzero(ok)
    if not idx.size:
        return None
    if ok[-1]:
        run = len(ok) - 1
        while run > 0 and ok[run - 1]:
            run -= 1
        return int(run)
    return int(idx[-1])


def _ticks(ax: Any, xs: np.ndarray, labels: list[str] | None) -> None:
    if labels is not None:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)


def _target_display(slo: Any) -> float:
    return float(slo.target) * _COLUMNS[slo.metric][1]


# ---------------------------------------------------------------------------- figures
def sweep_curves_figure(table: pd.DataFrame, *, slos: Sequence[Any] = (), metric: str | None = None) -> Any:
    """Capacity curves of a sweep table: the metric (with CI) and utilization against the swept value.

    Parameters
    ----------
    table
        ``SweepResult.table`` (:func:`meshsim.experiments.sweep.tabulate`).
    slos
        Objectives (``meshsim.experiments.capacity.SLO``); the first one on a
        table column sets the metric and draws the target and the answer.
    metric
        The metric to draw (``p99`` by default, or the SLO's).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no field varies.
    """
    varying = _varying(table)
    if not varying:
        return None
    metric, slo = _metric_of(slos, metric)
    col, factor, ylabel = _COLUMNS[metric]
    field = varying[0]
    plt = _pyplot()
    fig, (ax, ax_u) = plt.subplots(2, 1, figsize=(8, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    e2e = table[table["scope"] == "end_to_end"]
    if len(varying) == 1:
        curves = [("end to end", e2e)] + [
            (str(s), grp) for s, grp in table[table["scope"] == "service"].groupby("service", sort=False)]
        title = f"{ylabel} vs {field}, per scope"
    else:
        other = varying[1]
        curves = [(f"{other}={v}", grp) for v, grp in e2e.groupby(other, sort=False)]
        title = f"end-to-end {ylabel} vs {field}, per {other}"
    xs_all, labels = _numeric(list(dict.fromkeys(e2e[field])))
    pos = dict(zip(dict.fromkeys(e2e[field]), xs_all, strict=True))
    for label, grp in curves:
        x = np.array([pos[v] for v in grp[field]])
        y = grp[col].to_numpy(dtype=float) * factor
        (line,) = ax.plot(x, y, marker="o", markersize=3, linewidth=1.4, label=label)
        lo = grp[f"{col}_low"].to_numpy(dtype=float) * factor
        hi = grp[f"{col}_high"].to_numpy(dtype=float) * factor
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if slo is not None:
        ax.axhline(_target_display(slo), color="black", linestyle="--", linewidth=1, label=f"SLO {slo.text}")
    # the answer and the knee on the end-to-end curve (the first curve)
    first = curves[0][1]
    x0 = np.array([pos[v] for v in first[field]])
    if slo is not None:
        i = _boundary(x0, _meets(first, slo))
        if i is not None:
            ax.axvline(x0[i], color="tab:green", linestyle="-.", linewidth=1.2,
                       label=f"answer: {field}={first[field].iloc[i]}")
    if metric in _LATENCY:
        y0 = first[col].to_numpy(dtype=float)
        util = _busiest_utilization(table, first)
        keep = np.isfinite(y0) & (util < _STABLE_UTILIZATION)
        k = knee(list(x0[keep]), list(y0[keep])) if keep.sum() >= 3 else None
        if k is not None:
            ax.axvline(x0[keep][k], color="tab:purple", linestyle=":", linewidth=1.4,
                       label=f"knee: {field}={first[field].to_numpy()[keep][k]}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)

    services = table[table["scope"] == "service"]
    if len(varying) == 1:
        for s, grp in services.groupby("service", sort=False):
            x = np.array([pos[v] for v in grp[field]])
            (line,) = ax_u.plot(x, grp["utilization"].to_numpy(dtype=float), marker="o", markersize=3,
                                linewidth=1.4, label=str(s))
            lo, hi = grp["utilization_low"].to_numpy(dtype=float), grp["utilization_high"].to_numpy(dtype=float)
            if np.isfinite(lo).any():
                ax_u.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        ax_u.set_title("utilization per service")
    else:
        other = varying[1]
        for label, grp in curves:
            x = np.array([pos[v] for v in grp[field]])
            ax_u.plot(x, _busiest_utilization(table, grp), marker="o", markersize=3, linewidth=1.4, label=label)
        ax_u.set_title(f"busiest service's utilization, per {other}")
    ax_u.axhline(1.0, color="gray", linewidth=0.8)
    ax_u.set_ylabel("utilization")
    ax_u.set_xlabel(field)
    ax_u.grid(True, alpha=0.3)
    ax_u.legend(loc="best", fontsize=8)
    _ticks(ax_u, xs_all, labels)
    fig.tight_layout()
    return fig


def _busiest_utilization(table: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """For each grid point of ``rows``: the highest utilization of a service at that point."""
    services = table[table["scope"] == "service"]
    busiest = services.groupby("point")["utilization"].max()
    return np.array([float(busiest.get(p, math.nan)) for p in rows["point"]])


def slo_heatmap_figure(table: pd.DataFrame, *, slos: Sequence[Any] = (), metric: str | None = None,
                       scope: str = "end_to_end") -> Any:
    """One cell per grid point of two swept fields: SLO pass/fail (or the metric), annotated with the metric.

    Rows are the second varying field, columns the first. Returns None unless
    exactly two fields vary.
    """
    varying = _varying(table)
    if len(varying) != 2:
        return None
    metric, slo = _metric_of(slos, metric)
    col, factor, label = _COLUMNS[metric]
    fx, fy = varying
    rows = table[table["scope"] == scope] if scope == "end_to_end" else \
        table[(table["scope"] == "service") & (table["service"] == scope)]
    xv, yv = list(dict.fromkeys(rows[fx])), list(dict.fromkeys(rows[fy]))
    value = np.full((len(yv), len(xv)), np.nan)
    ok = np.zeros((len(yv), len(xv)), dtype=bool)
    met = _meets(rows, slo) if slo is not None else np.zeros(len(rows), dtype=bool)
    for (a, b, v), m in zip(rows[[fx, fy, col]].itertuples(index=False), met, strict=True):
        value[yv.index(b), xv.index(a)] = v * factor
        ok[yv.index(b), xv.index(a)] = bool(m)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(xv) + 2.5), max(3.0, 0.5 * len(yv) + 2.0)))
    if slo is not None:
        from matplotlib.colors import ListedColormap

        ax.imshow(ok.astype(float), cmap=ListedColormap(["#f4a6a6", "#a8dba8"]), vmin=0, vmax=1, aspect="auto",
                  origin="lower")
        ax.set_title(f"{scope}: SLO {slo.text} (green: met, red: not)\ncells: {label}", fontsize=10)
    else:
        im = ax.imshow(value, cmap="viridis", aspect="auto", origin="lower")
        fig.colorbar(im, ax=ax, label=label)
        ax.set_title(f"{scope}: {label}")
    for i in range(len(yv)):
        for j in range(len(xv)):
            ax.text(j, i, fmt_number(float(value[i, j])), ha="center", va="center", fontsize=8, gid="cell")
    ax.set_xticks(range(len(xv)))
    ax.set_xticklabels([str(v) for v in xv], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(yv)))
    ax.set_yticklabels([str(v) for v in yv], fontsize=8)
    ax.set_xlabel(fx)
    ax.set_ylabel(fy)
    fig.tight_layout()
    return fig


def capacity_figure(result: Any) -> Any:
    """An SLO search's evaluated values: one panel per SLO (mean, bound, verdict, target), then utilization.

    ``result`` is a ``CapacityResult``; the answer and the knee are vertical lines on every panel.
    """
    ev = result.evaluations.sort_values("index") if "index" in result.evaluations else result.evaluations
    xs, labels = _numeric(list(ev["value"]))
    slos = list(result.slos)
    plt = _pyplot()
    fig, axes = plt.subplots(len(slos) + 1, 1, figsize=(8, 2.9 * (len(slos) + 1)), sharex=True, squeeze=False)
    pos = dict(zip(map(str, ev["value"]), xs, strict=True))
    for ax, slo in zip(axes[:-1, 0], slos, strict=True):
        factor = 1e3 if slo.metric in _LATENCY else 1.0
        unit = " (ms)" if slo.metric in _LATENCY else ""
        mean = ev[slo.metric].to_numpy(dtype=float) * factor
        bound = ev[f"{slo.metric}_bound"].to_numpy(dtype=float) * factor
        ax.plot(xs, mean, color="tab:blue", linewidth=1.2, label=f"{slo.metric} (mean over replications)")
        for verdict, colour in _VERDICT_COLOURS.items():
            m = (ev["verdict"] == verdict).to_numpy()
            if m.any():
                ax.errorbar(xs[m], mean[m], yerr=np.abs(bound[m] - mean[m]), fmt="o", color=colour, capsize=3,
                            markersize=5, label=verdict)
        ax.axhline(float(slo.target) * factor, color="black", linestyle="--", linewidth=1, label=f"SLO {slo.text}")
        ax.set_ylabel(f"{slo.metric}{unit}")
        ax.set_title(f"{slo.metric} at {result.scope} vs {result.vary} "
                     f"(bars to the {result.confidence:.0%} one-sided bound)")
    ax_u = axes[-1, 0]
    ax_u.plot(xs, ev["busiest_utilization"].to_numpy(dtype=float), marker="o", markersize=4, color="tab:orange",
              label="busiest service")
    ax_u.axhline(1.0, color="gray", linewidth=0.8)
    ax_u.set_ylabel("utilization")
    ax_u.set_title("utilization of the busiest service")
    ax_u.set_xlabel(result.vary)
    for ax in axes[:, 0]:
        if result.answer is not None and str(result.answer) in pos:
            ax.axvline(pos[str(result.answer)], color="tab:green", linestyle="-.", linewidth=1.2,
                       label=f"answer: {result.answer}")
        if result.knee_value is not None and str(result.knee_value) in pos:
            ax.axvline(pos[str(result.knee_value)], color="tab:purple", linestyle=":", linewidth=1.4,
                       label=f"knee: {result.knee_value}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    _ticks(ax_u, xs, labels)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- reports
def build_sweep_report(result: Any, *, slos: Sequence[Any] = (), metric: str | None = None,
                       title: str | None = None) -> RunReport:
    """The report of a sweep (a ``SweepResult`` or its table): the curves, the heatmap, the table.

    Parameters
    ----------
    result
        ``SweepResult`` or the tidy table it holds.
    slos
        Objectives drawn as targets and judged per cell (see the module docstring).
    metric
        The metric of the curves and the heatmap (default: the first SLO's, else ``p99``).
    """
    table = result.table if hasattr(result, "table") else result
    blocks: list[_Block] = []
    varying = _varying(table)
    metric, slo = _metric_of(slos, metric)
    if hasattr(result, "runs"):
        reps = len(result.summaries[0]) if result.summaries else 0
        blocks.append(_Block("p", f"{len(result.points)} grid points x {reps} replications = {result.runs} runs "
                                  f"({result.executor}, {result.seeds} random numbers, "
                                  f"{result.confidence:.0%} t intervals)."))
    blocks.append(_Block("p", "Swept: " + (", ".join(f"{p} ({table[p].nunique()} values)" for p in varying)
                                          or "nothing varies") + "."))
    if slos:
        blocks.append(_Block("list", items=[f"SLO {s.text}" for s in slos]))
        if slo is None:
            blocks.append(_Block("p", "No SLO on a table metric (mean, p50, p90, p99, success, utilization, rps): "
                                      "the curves show p99 without a target."))
    with _deterministic_style():
        fig = sweep_curves_figure(table, slos=slos, metric=metric)
        if fig is not None:
            blocks.append(_Block("h2", "Capacity curves"))
            blocks.append(_figure("capacity-curves.png", f"{metric} and utilization vs {varying[0]}", fig))
        if len(varying) == 2:
            blocks.append(_Block("h2", "SLO heatmap"))
            blocks.append(_figure("slo-heatmap.png", f"{metric} per grid cell, end to end",
                                  slo_heatmap_figure(table, slos=slos, metric=metric)))
        elif len(varying) > 2:
            blocks.append(_Block("p", f"{len(varying)} fields vary: the heatmap needs exactly two; "
                                      "the curves show the first two."))
    col = _COLUMNS[metric][0]
    blocks.append(_Block("h2", "Table (end to end and per service)"))
    view = table[table["scope"] != "version"]
    headers = [*varying, "scope", "rps", "success", f"{metric}", f"{metric} low", f"{metric} high", "utilization"]
    scale = _COLUMNS[metric][1]
    rows = []
    for d in view.to_dict("records"):
        rows.append([*(str(d[p]) for p in varying), "end to end" if d["scope"] == "end_to_end" else d["service"],
                     fmt_number(d["rps"], 4), fmt_number(d["success_rate"], 4),
                     fmt_number(d[col] * scale, 4), fmt_number(d[f"{col}_low"] * scale, 4),
                     fmt_number(d[f"{col}_high"] * scale, 4), fmt_number(d["utilization"], 3)])
    blocks.append(_Block("table", headers=headers, rows=rows))
    if metric in _LATENCY:
        blocks.append(_Block("p", "Latencies in milliseconds."))
    return RunReport(title=title or "Sweep report", blocks=blocks)


def build_capacity_report(result: Any, *, title: str | None = None) -> RunReport:
    """The report of an SLO search (``CapacityResult``): the answer, the curve, the evaluated values."""
    goal = "largest" if result.maximize else "smallest"
    blocks = [_Block("p", f"The {goal} {result.vary} meeting {' and '.join(s.text for s in result.slos)} at "
                          f"{result.scope} ({result.confidence:.0%} one-sided confidence): "
                          + (f"{result.answer}." if result.answer is not None else "none in the range."))]
    items = [f"runs: {result.search_runs} by the search (+{result.knee_runs} for the knee) vs {result.grid_runs} "
             "for the full grid"]
    if result.knee_value is not None:
        u = result.knee_utilization
        items.append(f"knee of the {result.knee_metric} curve: {result.vary}={result.knee_value}"
                     + (f", busiest service at {u:.0%} utilization" if u else ""))
    if result.utilization:
        items.append("utilization at the answer: " + ", ".join(
            f"{k} {v:.0%}" for k, v in result.utilization.items() if "/" not in k))
    items += [f"note: {n}" for n in result.notes]
    blocks.append(_Block("list", items=items))
    with _deterministic_style():
        blocks.append(_Block("h2", "Capacity curve"))
        blocks.append(_figure("capacity.png", f"SLO metrics and utilization vs {result.vary}",
                              capacity_figure(result)))
    blocks.append(_Block("h2", "Evaluated values"))
    ev = result.evaluations.drop(columns=["index"], errors="ignore")
    headers, cols = [], []
    for c in ev.columns:
        latency = any(c in (s.metric, f"{s.metric}_bound") and s.metric in _LATENCY for s in result.slos)
        headers.append(f"{c} (ms)" if latency else c)
        cols.append((c, 1e3 if latency else 1.0))
    rows = [[fmt_number(r[c] * f, 4) if isinstance(r[c], float) else str(r[c]) for c, f in cols]
            for r in ev.to_dict("records")]
    blocks.append(_Block("table", headers=headers, rows=rows))
    return RunReport(title=title or f"Capacity report: {result.vary}", blocks=blocks)


def _write(report: RunReport, directory: str | os.PathLike[str], stem: str) -> list[Path]:
    d = Path(directory)
    return report.write(html=d / f"{stem}.html", markdown=d / f"{stem}.md")


def write_sweep_report(result: Any, directory: str | os.PathLike[str], *, slos: Sequence[Any] = (),
                       metric: str | None = None) -> list[Path]:
    """Write ``sweep.md`` (PNGs in ``plots/``) and the self-contained ``sweep.html`` into ``directory``."""
    return _write(build_sweep_report(result, slos=slos, metric=metric), directory, "sweep")


def write_capacity_report(result: Any, directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``capacity.md`` (PNGs in ``plots/``) and the self-contained ``capacity.html`` into ``directory``."""
    return _write(build_capacity_report(result), directory, "capacity")
