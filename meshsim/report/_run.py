"""Run reports: a run directory (or a ``RunResult``) as Markdown and as one self-contained HTML file.

A report has the summary tables, the faults and the non-zero Envoy stats, and
these plots (PNG, rendered headless with matplotlib's ``Agg``):

* the service graph, with request rates and error rates on its edges
  (:func:`service_graph_figure`);
* latency CDFs per service and version (:func:`latency_cdf_figure`);
* p50 and p99 over time per service, one colour per version, fault windows
  shaded (:func:`percentiles_figure`);
* success rate and throughput over time (:func:`success_figure`,
  :func:`throughput_figure`);
* retries, ejected hosts and circuit-breaker overflows over time, the panels
  that have any (:func:`resilience_figure`).

The HTML file embeds every plot as a ``data:image/png;base64`` URI and its CSS
inline; it needs no other file and no JavaScript. The Markdown file refers to
the same PNGs written beside it (or embeds them, ``embed=True``). The same run
gives the same bytes: the PNGs carry no date or software version, and every
file is written atomically (a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meshsim._exceptions import ConfigError
from meshsim.report._markdown import fmt_number, markdown_table
from meshsim.report._plots import Series, _pyplot, shade_faults, time_figure
from meshsim.report._table import SUMMARY_COLUMNS, _nonzero_stats, _title, _when, summary_rows

__all__ = [
    "RunData",
    "RunReport",
    "read_run_dir",
    "run_data",
    "build_run_report",
    "write_run_report",
    "service_graph_figure",
    "latency_cdf_figure",
    "percentiles_figure",
    "success_figure",
    "throughput_figure",
    "resilience_figure",
]

_TABLES = ("requests", "attempts", "timeseries", "faults")
#: most points on a time axis; longer runs are binned coarser than one second
_MAX_BINS = 300
#: an edge of the service graph is drawn red from this error rate on
_EDGE_ERROR_RED = 0.01


# ---------------------------------------------------------------------------- input
@dataclass
class RunData:
    """What a report is made from: the run summary and its tables (``None`` when not recorded).

    Attributes
    ----------
    summary
        The run summary (``summary.json``).
    requests, attempts, timeseries, faults
        The tables of the run directory; ``requests`` and ``attempts`` are
        ``None`` for a ``record: summary`` run, ``faults`` without chaos.
    note
        A remark for the reader (which replication the plots show).
    """

    summary: dict[str, Any]
    requests: pd.DataFrame | None = None
    attempts: pd.DataFrame | None = None
    timeseries: pd.DataFrame | None = None
    faults: pd.DataFrame | None = None
    note: str = ""

    @property
    def warmup_s(self) -> float:
        return _num(self.summary.get("warmup_s"), 0.0)

    @property
    def window_s(self) -> float:
        w = _num(self.summary.get("window_s"), math.nan)
        if math.isfinite(w) and w > 0:
            return w
        return max(self.end_s - self.warmup_s, 1e-9)

    @property
    def end_s(self) -> float:
        end = _num(self.summary.get("end_s"), math.nan)
        if not math.isfinite(end):
            end = _num(self.summary.get("duration_s"), math.nan)
        if not math.isfinite(end) and self.timeseries is not None and len(self.timeseries):
            end = float(self.timeseries["t_s"].max()) + 1.0
        return end if math.isfinite(end) else 1.0


def _num(x: Any, default: float) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x is not None else default


def read_run_dir(path: str | os.PathLike[str]) -> RunData:
    """Read a run directory written by ``meshsim run -o DIR`` (Parquet or CSV tables and ``summary.json``).

    Raises
    ------
    ConfigError
        ``path`` is not a directory, has no ``summary.json``, or a file
        cannot be read.
    """
    p = Path(path)
    if not p.is_dir():
        raise ConfigError("not a run directory (no such directory)", source=str(p))
    summary_file = p / "summary.json"
    if not summary_file.is_file():
        raise ConfigError("not a run directory (expected summary.json; write one with meshsim run -o DIR)",
                          source=str(p))
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the run summary: {exc}", source=str(summary_file)) from None
    tables: dict[str, Any] = {}
    for name in _TABLES:
        tables[name] = None
        for suffix in (".parquet", ".csv"):
            f = p / f"{name}{suffix}"
            if not f.is_file():
                continue
            try:
                tables[name] = pd.read_parquet(f) if suffix == ".parquet" else pd.read_csv(f, keep_default_na=False,
                                                                                           na_values=[""])
            except ImportError as exc:
                raise ConfigError(f"reading Parquet needs pyarrow (pip install 'meshsim[parquet]'): {exc}",
                                  source=str(f)) from None
            except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
                raise ConfigError(f"cannot read the table: {exc}", source=str(f)) from None
            break
    return _normalize(RunData(summary=summary, **tables))


def run_data(source: Any) -> RunData:
    """A :class:`RunData` from a run directory, a ``RunResult``, a ``RunSet`` or a ``RunData``.

    Of several replications the plots show the first; the summary tables
    show the combined summary with its confidence intervals.
    """
    if isinstance(source, RunData):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_run_dir(source)
    if hasattr(source, "tables") and hasattr(source, "summary"):
        results = getattr(source, "results", None)
        note = ""
        if results is not None:
            if len(results) > 1:
                note = f"Plots show replication {results[0].replication} of {len(results)}."
            first = results[0]
        else:
            first = source
        t = first.tables()
        return _normalize(RunData(summary=dict(source.summary), requests=t.get("requests"),
                                  attempts=t.get("attempts"), timeseries=t.get("timeseries"),
                                  faults=t.get("faults"), note=note))
    raise TypeError(f"cannot make a run report from {type(source).__name__}; "
                    "pass a run directory, a RunResult or a RunSet")


def _normalize(d: RunData) -> RunData:
    """Plain string columns, one replication, empty flags as ``""``."""
    note = d.note
    frames: dict[str, Any] = {}
    for name in _TABLES:
        df = getattr(d, name)
        if df is None:
            frames[name] = None
            continue
        df = df.copy()
        if "replication" in df.columns and df["replication"].nunique() > 1:
            first = df["replication"].min()
            note = note or f"Plots show replication {first} of {df['replication'].nunique()}."
            df = df[df["replication"] == first]
        for col in ("service", "version", "caller", "caller_version", "flags", "source", "name"):
            if col in df.columns:
                df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
        frames[name] = df.reset_index(drop=True)
    if frames["faults"] is not None and not len(frames["faults"]):
        frames["faults"] = None
    if frames["faults"] is None and d.summary.get("faults"):
        frames["faults"] = pd.DataFrame(d.summary["faults"])
    if frames["faults"] is not None:
        frames["faults"]["end_s"] = pd.to_numeric(frames["faults"]["end_s"]).fillna(math.inf)
    return RunData(summary=d.summary, note=note, **frames)


# ---------------------------------------------------------------------------- helpers
def _bin_width(end_s: float) -> int:
    return max(1, math.ceil(end_s / _MAX_BINS))


def _services(d: RunData) -> dict[str, list[str]]:
    """Service -> versions, in the summary's order (else the tables')."""
    out: dict[str, list[str]] = {}
    for name, row in (d.summary.get("services") or {}).items():
        out[name] = list((row.get("versions") or {}).keys()) or ["default"]
    for df in (d.timeseries, d.attempts):
        if df is not None and len(df):
            for (s, v), _ in df.groupby(["service", "version"], sort=False):
                vs = out.setdefault(s, [])
                if v not in vs:
                    vs.append(v)
    return out


def _label(service: str, version: str, versions: Sequence[str]) -> str:
    return service if len(versions) == 1 else f"{service} {version}"


def _colors(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _series(x: np.ndarray, y: np.ndarray, *, style: dict[str, Any] | None = None) -> Series:
    return Series(x.tolist(), np.asarray(y, dtype=float).tolist(), style=style)


def _is_ok(status: pd.Series) -> np.ndarray:
    s = status.to_numpy()
    return (s >= 200) & (s < 400)


# ---------------------------------------------------------------------------- figures
def service_graph_figure(data: Any) -> Any:
    """The call graph, callers left and callees right, each edge labelled with its rate and error rate.

    Nodes are the traffic sources and the services (with their versions);
    an edge ``caller -> service`` carries the attempts per second over the
    measurement window and the share that failed (not 2xx/3xx); edges at or
    above 1 % errors are red. Layers are the longest call path from a source
    (a cycle is cut where it closes). Each edge's arrow and label have the
    ``gid`` ``"edge:<caller>-><service>"``; each node's box ``"node:<name>"``.

    Returns ``None`` when the run has no attempts table (``record: summary``).
    """
    d = run_data(data)
    att = d.attempts
    if att is None or not len(att):
        return None
    services = _services(d)
    win = att[att["start_s"] >= d.warmup_s]
    ok = _is_ok(win["status"])
    edges: dict[tuple[str, str], tuple[int, int]] = {}
    for (caller, callee), idx in win.groupby(["caller", "service"], sort=False).indices.items():
        edges[(str(caller), str(callee))] = (len(idx), int((~ok[idx]).sum()))
    for (caller, callee) in att.groupby(["caller", "service"], sort=False).indices:
        edges.setdefault((str(caller), str(callee)), (0, 0))
    sources = [c for c, _ in edges if c not in services]
    nodes = list(dict.fromkeys(sources + list(services)))
    layer = _layers(nodes, list(edges), sources)

    plt = _pyplot()
    n_layers = max(layer.values()) + 1
    per_layer: dict[int, list[str]] = {}
    for n in nodes:
        per_layer.setdefault(layer[n], []).append(n)
    height = max(len(v) for v in per_layer.values())
    fig, ax = plt.subplots(figsize=(max(6.0, 3.2 * n_layers), max(3.0, 1.6 * height + 1)))
    pos: dict[str, tuple[float, float]] = {}
    for k, members in per_layer.items():
        for i, n in enumerate(members):
            pos[n] = (float(k), (len(members) - 1) / 2.0 - i)
    for (caller, callee), (count, errors) in edges.items():
        rate = count / d.window_s
        err = errors / count if count else 0.0
        color = "tab:red" if err >= _EDGE_ERROR_RED else "0.35"
        (x0, y0), (x1, y1) = pos[caller], pos[callee]
        back = x1 <= x0
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), gid=f"edge:{caller}->{callee}",
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.2 + min(3.0, math.log10(1 + rate)),
                                "shrinkA": 38, "shrinkB": 38,
                                "connectionstyle": "arc3,rad=0.35" if back else "arc3,rad=0.0"})
        lx, ly = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + (0.3 if back else 0.0)
        ax.text(lx, ly, f"{_rate(rate)}/s · {_pct(err)} err", ha="center", va="bottom", fontsize=8, color=color,
                gid=f"edge:{caller}->{callee}", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
    for n in nodes:
        versions = services.get(n)
        text = n if not versions or len(versions) == 1 else f"{n}\n{' '.join(versions)}"
        fc = "#fde9c9" if n not in services else "#dbe8f6"
        ax.text(*pos[n], text, ha="center", va="center", fontsize=9, gid=f"node:{n}",
                bbox={"boxstyle": "round,pad=0.4", "fc": fc, "ec": "0.3"})
    ax.set_xlim(-0.6, n_layers - 0.4)
    ax.set_ylim(-(height - 1) / 2.0 - 0.7, (height - 1) / 2.0 + 0.7)
    ax.set_axis_off()
    ax.set_title("service graph: attempts/s and error rate over the measurement window")
    fig.tight_layout()
    return fig


def _layers(nodes: list[str], edges: list[tuple[str, str]], sources: list[str]) -> dict[str, int]:
    """Longest path from a source (or from a node nobody calls), cycles cut where they close."""
    out_edges: dict[str, list[str]] = {n: [] for n in nodes}
    called = set()
    for a, b in edges:
        out_edges[a].append(b)
        called.add(b)
    roots = [n for n in nodes if n in sources or n not in called] or nodes[:1]
    layer = {n: 0 for n in nodes}

    def visit(n: str, depth: int, path: tuple[str, ...]) -> None:
        layer[n] = max(layer[n], depth)
        for m in out_edges[n]:
            if m not in path and layer[m] < depth + 1:
                visit(m, depth + 1, path + (m,))

    for r in roots:
        visit(r, 0, (r,))
    return layer


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.2g}" if x > 0 else "0"


def _pct(x: float) -> str:
    return "0%" if x == 0 else f"{100 * x:.2g}%"


def latency_cdf_figure(data: Any) -> Any:
    """Latency CDFs over the measurement window: end to end, then one panel per service, one line per version.

    Each panel is titled ``"latency CDF: <service>"`` (``"... end to end"``
    for the requests), with latency in ms on a log axis; unanswered attempts
    (status 0) are left out. Returns ``None`` without request/attempt rows.
    """
    d = run_data(data)
    if d.attempts is None or not len(d.attempts):
        return None
    services = _services(d)
    plt = _pyplot()
    panels: list[tuple[str, str | None]] = [("end to end", None)] if d.requests is not None and len(d.requests) \
        else []
    panels += [(s, s) for s in services]
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.2 * nrows), squeeze=False)
    probs = np.linspace(0.0, 1.0, 401)
    att = d.attempts[(d.attempts["start_s"] >= d.warmup_s) & (d.attempts["status"] != 0)]
    for ax, (title, service) in zip(axes.flat, panels, strict=False):
        if service is None and d.requests is not None:
            req = d.requests[(d.requests["start_s"] >= d.warmup_s) & (d.requests["status"] != 0)]
            curves = {"all requests": req["latency_s"].to_numpy()}
        elif service is not None:
            rows = att[att["service"] == service]
            versions = services[service]
            curves = {v if len(versions) > 1 else service: rows.loc[rows["version"] == v, "latency_s"].to_numpy()
                      for v in versions}
        for (label, lat), color in zip(curves.items(), _colors(len(curves)), strict=True):
            lat = lat[np.isfinite(lat) & (lat > 0)]
            if not len(lat):
                continue
            ax.plot(np.quantile(lat, probs) * 1e3, probs, label=f"{label} (n={len(lat):,})", color=color,
                    linewidth=1.4)
        ax.set_xscale("log")
        ax.set_title(f"latency CDF: {title}")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction ≤ x")
        ax.set_ylim(0, 1.0)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def percentiles_figure(data: Any, service: str) -> Any:
    """p50 (dashed) and p99 (solid) of ``service``'s attempt latency over time, one colour per version.

    Lines are labelled ``"<version> p50"``/``"<version> p99"`` (the service
    name for a one-version service); time bins are one second for runs up to
    300 s, wider beyond; fault windows are shaded. Returns ``None`` when the
    service has no answered attempts.
    """
    d = run_data(data)
    if d.attempts is None:
        return None
    versions = _services(d).get(service, [])
    att = d.attempts[(d.attempts["service"] == service) & (d.attempts["status"] != 0)]
    att = att[np.isfinite(att["latency_s"])]
    if not len(att):
        return None
    width = _bin_width(d.end_s)
    n_bins = max(1, math.ceil(d.end_s / width))
    centers = (np.arange(n_bins) + 0.5) * width
    series: dict[str, Series] = {}
    for v, color in zip(versions, _colors(len(versions)), strict=True):
        rows = att[att["version"] == v]
        b = np.minimum((rows["start_s"].to_numpy() // width).astype(np.int64), n_bins - 1)
        lat = rows["latency_s"].to_numpy() * 1e3
        name = v if len(versions) > 1 else service
        for q, style in ((0.5, "--"), (0.99, "-")):
            y = np.full(n_bins, np.nan)
            if len(lat):
                grouped = pd.Series(lat).groupby(b).quantile(q)
                y[grouped.index.to_numpy()] = grouped.to_numpy()
            series[f"{name} p{round(q * 100)}"] = _series(centers, y, style={"color": color, "linestyle": style})
    return time_figure(series, faults=d.faults, ylabel="latency (ms)", logy=True, xlim=(0.0, d.end_s),
                       title=f"{service}: attempt latency p50 / p99 over time ({width}s bins)")


def _timeseries_bins(d: RunData, column: str) -> tuple[np.ndarray, dict[tuple[str, str], np.ndarray], int]:
    """``column`` of the timeseries summed into time bins, per (service, version)."""
    ts = d.timeseries
    width = _bin_width(d.end_s)
    n_bins = max(1, math.ceil(d.end_s / width))
    out: dict[tuple[str, str], np.ndarray] = {}
    if ts is not None and column in ts.columns:
        for key, rows in ts.groupby(["service", "version"], sort=False):
            b = np.minimum((rows["t_s"].to_numpy() // width).astype(np.int64), n_bins - 1)
            out[(str(key[0]), str(key[1]))] = np.bincount(b, weights=rows[column].to_numpy(dtype=float),
                                                          minlength=n_bins)
    return (np.arange(n_bins) + 0.5) * width, out, width


def success_figure(data: Any) -> Any:
    """Success rate (%) over time: end to end (from the requests) and per service version (from the timeseries).

    A bin with no completions leaves a gap. Fault windows are shaded.
    """
    d = run_data(data)
    centers, done, width = _timeseries_bins(d, "completions")
    _, errors, _ = _timeseries_bins(d, "errors")
    series: dict[str, Series] = {}
    if d.requests is not None and len(d.requests):
        req = d.requests[d.requests["status"] != 0]
        b = np.minimum((req["end_s"].to_numpy() // width).astype(np.int64), len(centers) - 1)
        n = np.bincount(b, minlength=len(centers)).astype(float)
        good = np.bincount(b, weights=_is_ok(req["status"]).astype(float), minlength=len(centers))
        with np.errstate(invalid="ignore", divide="ignore"):
            series["end to end"] = _series(centers, np.where(n > 0, 100 * good / n, np.nan),
                                          style={"color": "black", "zorder": 3})
    services = _services(d)
    for (s, v), n in done.items():
        e = errors.get((s, v), np.zeros_like(n))
        with np.errstate(invalid="ignore", divide="ignore"):
            series[_label(s, v, services.get(s, [v]))] = _series(centers, np.where(n > 0, 100 * (n - e) / n, np.nan))
    return time_figure(series, faults=d.faults, ylabel="success rate (%)", xlim=(0.0, d.end_s),
                       title=f"success rate over time ({width}s bins)")


def throughput_figure(data: Any) -> Any:
    """Completions per second over time: end to end (requests) and per service version (timeseries)."""
    d = run_data(data)
    centers, done, width = _timeseries_bins(d, "completions")
    series: dict[str, Series] = {}
    if d.requests is not None and len(d.requests):
        req = d.requests[d.requests["status"] != 0]
        b = np.minimum((req["end_s"].to_numpy() // width).astype(np.int64), len(centers) - 1)
        series["end to end"] = _series(centers, np.bincount(b, minlength=len(centers)) / width,
                                      style={"color": "black", "zorder": 3})
    services = _services(d)
    for (s, v), n in done.items():
        series[_label(s, v, services.get(s, [v]))] = _series(centers, n / width)
    return time_figure(series, faults=d.faults, ylabel="completions per second", xlim=(0.0, d.end_s),
                       title=f"throughput over time ({width}s bins)")


def resilience_figure(data: Any) -> Any:
    """Retries/s, ejected hosts and circuit-breaker overflows/s over time, one panel each that has any.

    Retries are attempts after the first (``attempt > 1``) and overflows are
    attempts with Envoy's ``UO`` response flag, per called service, from the
    attempts table; ejected hosts (mean over the bin) come from the
    timeseries' ``ejected`` column, per service version. Panels that would be
    all zero are left out; returns ``None`` when all three are. Each panel's
    title starts with ``"retries"``, ``"ejected hosts"`` or ``"circuit-breaker
    overflows"``; fault windows are shaded on each.
    """
    d = run_data(data)
    width = _bin_width(d.end_s)
    n_bins = max(1, math.ceil(d.end_s / width))
    centers = (np.arange(n_bins) + 0.5) * width
    services = _services(d)
    panels: list[tuple[str, str, dict[str, np.ndarray]]] = []
    att = d.attempts
    if att is not None and len(att):
        for title, ylabel, mask in (
                ("retries", "retries per second", att["attempt"].to_numpy() > 1),
                ("circuit-breaker overflows (UO)", "overflows per second",
                 att["flags"].str.split(",").apply(lambda fl: "UO" in fl).to_numpy(dtype=bool))):
            rows = att[mask]
            if not len(rows):
                continue
            lines = {}
            for s, grp in rows.groupby("service", sort=False):
                b = np.minimum((grp["start_s"].to_numpy() // width).astype(np.int64), n_bins - 1)
                lines[str(s)] = np.bincount(b, minlength=n_bins) / width
            panels.append((title, ylabel, dict(sorted(lines.items(), key=lambda kv: list(services).index(kv[0])
                                                        if kv[0] in services else len(services)))))
    _, ejected, _ = _timeseries_bins(d, "ejected")
    eject_lines = {_label(s, v, services.get(s, [v])): n / width for (s, v), n in ejected.items() if n.any()}
    if eject_lines:
        panels.insert(1 if panels and panels[0][0] == "retries" else 0,
                      ("ejected hosts (outlier detection)", "hosts ejected", eject_lines))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.8 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, ylabel, lines) in zip(axes[:, 0], panels, strict=True):
        for label, y in lines.items():
            ax.plot(centers, y, label=label, linewidth=1.4)
        ax.set_title(f"{title} ({width}s bins)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0.0, d.end_s)
        ax.grid(True, alpha=0.3)
        shade_faults(ax, d.faults)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- the report
@dataclass
class _Block:
    kind: str  # "h2" | "p" | "table" | "figure" | "list"
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    name: str = ""
    png: bytes = b""
    items: list[str] = field(default_factory=list)
    align: list[str] | None = None


@dataclass
class RunReport:
    """A run report: a title and blocks (headings, paragraphs, tables, PNG figures), written as Markdown or HTML.

    Build it with :func:`build_run_report`; write it with :meth:`write`, or
    take the text from :meth:`markdown` and :meth:`html`.
    """

    title: str
    blocks: list[_Block]

    @property
    def figures(self) -> dict[str, bytes]:
        """Figure file name -> PNG bytes, in report order."""
        return {b.name: b.png for b in self.blocks if b.kind == "figure"}

    def markdown(self, *, plots_dir: str = "plots", embed: bool = False) -> str:
        """The report as GitHub-flavoured Markdown.

        Parameters
        ----------
        plots_dir
            Where the image links point, relative to the Markdown file
            (:meth:`write` puts the PNGs there).
        embed
            Embed each PNG as a data URI instead (one file, but not shown by
            every Markdown viewer).
        """
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "h2":
                out += [f"## {b.text}", ""]
            elif b.kind == "p":
                out += [b.text, ""]
            elif b.kind == "list":
                out += [f"- {item}" for item in b.items] + [""]
            elif b.kind == "table":
                out += [markdown_table(b.headers, b.rows, align=b.align), ""]
            elif b.kind == "figure":
                src = _data_uri(b.png) if embed else f"{plots_dir}/{b.name}"
                out += [f"![{b.text}]({src})", ""]
        return "\n".join(out).rstrip("\n") + "\n"

    def html(self) -> str:
        """The report as one self-contained HTML page: inline CSS, PNGs as data URIs, no scripts."""
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind == "h2":
                body.append(f"<h2>{esc(b.text)}</h2>")
            elif b.kind == "p":
                body.append(f"<p>{esc(b.text)}</p>")
            elif b.kind == "list":
                body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>")
            elif b.kind == "table":
                head = "".join(f"<th>{esc(h)}</th>" for h in b.headers)
                rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in b.rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b.kind == "figure":
                body.append(f'<figure><img src="{_data_uri(b.png)}" alt="{esc(b.text)}">'
                            f"<figcaption>{esc(b.text)}</figcaption></figure>")
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{esc(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
                + "\n".join(body) + "\n</body>\n</html>\n")

    def write(self, *, html: str | os.PathLike[str] | None = None,
              markdown: str | os.PathLike[str] | None = None, embed: bool = False) -> list[Path]:
        """Write the HTML file and/or the Markdown file (its PNGs into ``plots/`` beside it, unless ``embed``).

        Each file is written atomically. Returns the paths written.
        """
        written: list[Path] = []
        if markdown is not None:
            md = Path(markdown)
            if not embed:
                plots = md.parent / "plots"
                for name, png in self.figures.items():
                    written.append(_atomic_write(plots / name, png))
            written.append(_atomic_write(md, self.markdown(embed=embed).encode("utf-8")))
        if html is not None:
            written.append(_atomic_write(Path(html), self.html().encode("utf-8")))
        return written


_CSS = (
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;"
    "padding:0 1em;color:#222;line-height:1.45}"
    "h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em}"
    "h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #eee}"
    "table{border-collapse:collapse;font-size:.85em;margin:.6em 0}"
    "th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}th{background:#f4f6f8}"
    "tbody tr:nth-child(even){background:#fafbfc}"
    "figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}"
)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _atomic_write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def _deterministic_style() -> Iterator[None]:
    """matplotlib's default style, whatever the user's matplotlibrc says, with fixed hash salts."""
    plt = _pyplot()
    with plt.style.context("default"), plt.rc_context({"svg.hashsalt": "meshsim", "figure.dpi": 100}):
        yield


def _png(fig: Any, dpi: int = 96) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def build_run_report(source: Any, *, title: str | None = None) -> RunReport:
    """Build the report of a run: a run directory, a ``RunResult``/``RunSet`` or a :class:`RunData`.

    Parameters
    ----------
    source
        Where the run is.
    title
        The heading; default ``"Run report: <scenario>"``.

    Returns
    -------
    RunReport
        Tables and rendered PNGs; write it with :meth:`RunReport.write`.
    """
    d = run_data(source)
    s = d.summary
    blocks: list[_Block] = []
    blocks.append(_Block("p", _title(s).replace(" · latency in ms", "") + "."))
    if d.note:
        blocks.append(_Block("p", d.note))
    if s.get("warnings"):
        blocks.append(_Block("list", items=[f"warning: {w}" for w in s["warnings"]]))

    blocks.append(_Block("h2", "Summary"))
    rows = summary_rows(s)
    if rows:
        keep = [j for j, (_, always) in enumerate(SUMMARY_COLUMNS) if always or any(r[0][j] for r in rows)]
        headers = ["" if j == 0 else SUMMARY_COLUMNS[j][0] for j in keep]
        headers[0] = "latency in ms"
        blocks.append(_Block("table", headers=headers,
                             rows=[[cells[j].replace("  ", "\u2003", 1) if j == 0 else cells[j] for j in keep]
                                   for cells, _ in rows]))
        if s.get("ci"):
            blocks.append(_Block("p", f"x ± h: {round(100 * _num(s.get('confidence'), 0.95))}% confidence "
                                      f"interval over {s.get('replications')} replications."))
    else:
        blocks.append(_Block("p", "No requests in the measured window."))

    faults = s.get("faults") or []
    if faults:
        blocks.append(_Block("h2", "Faults (chaos)"))
        blocks.append(_Block("table", headers=["fault", "kind", "target", "settings", "from", "to", "requests"],
                             rows=[[str(f.get("name", "")), str(f.get("kind", "")), str(f.get("target", "")),
                                    str(f.get("detail", "")), _when(f.get("start_s")), _when(f.get("end_s")),
                                    fmt_number(f.get("requests", 0))] for f in faults],
                             align=["l", "l", "l", "l", "r", "r", "r"]))

    with _deterministic_style():
        blocks.append(_Block("h2", "Service graph"))
        fig = service_graph_figure(d)
        if fig is None:
            blocks.append(_Block("p", "No attempt rows (record: summary): the service graph needs them."))
        else:
            blocks.append(_figure("service-graph.png", "Service graph with attempts/s and error rates", fig))

        blocks.append(_Block("h2", "Latency"))
        fig = latency_cdf_figure(d)
        if fig is None:
            blocks.append(_Block("p", "No request or attempt rows (record: summary): no latency plots."))
        else:
            blocks.append(_figure("latency-cdf.png", "Latency CDFs per service and version", fig))
            for i, service in enumerate(_services(d)):
                fig = percentiles_figure(d, service)
                if fig is not None:
                    blocks.append(_figure(f"latency-{i:02d}-{_slug(service)}.png",
                                          f"{service}: p50 and p99 over time", fig))

        blocks.append(_Block("h2", "Success rate and throughput"))
        blocks.append(_figure("success-rate.png", "Success rate over time", success_figure(d)))
        blocks.append(_figure("throughput.png", "Throughput over time", throughput_figure(d)))

        blocks.append(_Block("h2", "Retries, ejections and overflows"))
        fig = resilience_figure(d)
        if fig is None:
            blocks.append(_Block("p", "No retries, outlier ejections or circuit-breaker overflows in this run."))
        else:
            blocks.append(_figure("resilience.png", "Retries, ejected hosts and overflows over time", fig))

    stats = _nonzero_stats(s.get("stats") or {})
    if stats:
        blocks.append(_Block("h2", "Envoy stats (non-zero)"))
        blocks.append(_Block("table", headers=["cluster", "stat", "value"],
                             rows=[[cluster, stat, f"{value:,}" if isinstance(value, int) else fmt_number(value, 4)]
                                   for cluster, counters in stats.items() for stat, value in counters.items()],
                             align=["l", "l", "r"]))
    return RunReport(title=title or f"Run report: {s.get('scenario', 'run')}", blocks=blocks)


def _figure(name: str, caption: str, fig: Any) -> _Block:
    return _Block("figure", text=caption, name=name, png=_png(fig))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def write_run_report(source: Any, *, html: str | os.PathLike[str] | None = None,
                     markdown: str | os.PathLike[str] | None = None, title: str | None = None,
                     embed: bool = False) -> list[Path]:
    """Build the report of ``source`` (see :func:`build_run_report`) and write it; returns the paths written.

    Examples
    --------
    >>> from meshsim.report import write_run_report
    >>> write_run_report("out/", html="out/report.html", markdown="out/report.md")  # doctest: +SKIP
    """
    if html is None and markdown is None:
        raise ConfigError("write_run_report needs `html` or `markdown` (or both)")
    return build_run_report(source, title=title).write(html=html, markdown=markdown, embed=embed)
