"""The run summary as rich tables on a terminal."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from meshsim.units import format_duration

__all__ = ["render_summary", "summary_rows", "SUMMARY_COLUMNS"]

_DASH = "–"


def render_summary(summary: Mapping[str, Any], console: Console) -> None:
    """Print a run summary (the dict ``meshsim.sim.run(...).summary``) as rich tables.

    The first table has one row for the end-to-end view, one per traffic source
    when there are several, one per service and, for services with more than
    one version, one per version: requests, throughput, success rate, latency
    quantiles (p50, p90, p99, p99.9) in milliseconds, utilisation,
    replicas × workers and the non-2xx status counts. Columns that are empty
    in every row are left out. When the summary carries confidence intervals
    (``summary["ci"]``, keyed by dotted path such as
    ``"services.reviews.versions.v1.latency_s.p99"``) a value is shown as
    ``value ± half-width``, rounded to two significant digits of the
    half-width, or as ``value [low, high]`` when the interval is not centred
    on the value. A table of the chaos faults follows when the run had any
    (name, kind, target, settings, start, end, requests acted on), then a
    table of the non-zero Envoy stats, when there are any.

    Parameters
    ----------
    summary
        The run summary; missing sections and ``None``/NaN values are shown as ``–``.
    console
        Where to print.
    """
    ci: Mapping[str, Any] = summary.get("ci") or {}
    rows = summary_rows(summary)

    console.print(Text(_title(summary), style="bold"))
    if rows:
        keep = [j for j, (_, always) in enumerate(_COLUMNS) if always or any(r[0][j] for r in rows)]
        table = _summary_table(rows, keep, _caption(summary, ci), gap=1)
        if Measurement.get(console, console.options.update_width(10_000), table).maximum > console.width:
            table = _summary_table(rows, keep, _caption(summary, ci), gap=0)  # a narrow terminal
        console.print(table)
    else:
        console.print("no requests in the measured window")
    _render_faults_and_stats(summary, console)


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[list[str], str]]:
    """The cells of the summary table, one ``(cells, style)`` per row, as :func:`render_summary` shows them.

    ``cells`` follow :data:`SUMMARY_COLUMNS` (label, requests, rps, ok, p50,
    p90, p99, p99.9 in ms, util, replicas×workers, non-2xx); ``style`` is
    ``"bold"`` (end to end), ``"section"`` (the first service), ``"dim"`` (a
    version under its service) or ``""``. A Markdown or HTML report builds
    its table from the same rows.
    """
    ci: Mapping[str, Any] = summary.get("ci") or {}
    rows: list[tuple[list[str], str]] = []
    if summary.get("end_to_end"):
        rows.append((_cells("end-to-end", summary["end_to_end"], "end_to_end", ci), "bold"))
    sources = summary.get("sources") or {}
    if len(sources) > 1:
        for name, row in sources.items():
            rows.append((_cells(f"  source {name}", row, f"sources.{name}", ci), ""))
    services = summary.get("services") or {}
    for i, (name, row) in enumerate(services.items()):
        versions = row.get("versions") or {}
        only = next(iter(versions.values())) if len(versions) == 1 else None
        rows.append((_cells(name, row, f"services.{name}", ci, replicas_from=only), "section" if i == 0 else ""))
        if len(versions) > 1:
            for vname, vrow in versions.items():
                path = f"services.{name}.versions.{vname}"
                rows.append((_cells(f"  {vname}", vrow, path, ci, replicas_from=vrow), "dim"))
    return rows


def _render_faults_and_stats(summary: Mapping[str, Any], console: Console) -> None:
    faults = summary.get("faults") or []
    if faults:
        console.print()
        ft = Table(title="Faults (chaos)", title_justify="left", title_style="bold", **_STYLE)
        for header in ("fault", "kind", "target", "settings", "from", "to", "requests"):
            ft.add_column(header, no_wrap=header in ("fault", "target"),
                          justify="right" if header in ("from", "to", "requests") else "left")
        for f in faults:
            ft.add_row(Text(str(f.get("name", ""))), Text(str(f.get("kind", ""))), Text(str(f.get("target", ""))),
                       Text(str(f.get("detail", ""))), Text(_when(f.get("start_s"))), Text(_when(f.get("end_s"))),
                       _number(f.get("requests", 0)))
        console.print(ft)

    stats = _nonzero_stats(summary.get("stats") or {})
    if stats:
        console.print()
        st = Table(title="Envoy stats (non-zero)", title_justify="left", title_style="bold", **_STYLE)
        st.add_column("cluster", no_wrap=True)
        st.add_column("stat", no_wrap=True)
        st.add_column("value", justify="right")
        for cluster, counters in stats.items():
            for i, (stat, value) in enumerate(counters.items()):
                st.add_row(Text(cluster if i == 0 else ""), Text(stat), _number(value))
        console.print(st)


_STYLE: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "padding": (0, 1, 0, 0)}


def _summary_table(rows: list[tuple[list[str], str]], keep: list[int], caption: Text | None, gap: int) -> Table:
    """The table of ``rows`` showing columns ``keep``; ``gap`` spaces of padding between columns (plus one)."""
    table = Table(caption=caption, caption_justify="left", **{**_STYLE, "padding": (0, gap, 0, 0)})
    for j in keep:
        table.add_column(_COLUMNS[j][0], justify="left" if j in (0, len(_COLUMNS) - 1) else "right", no_wrap=j == 0)
    for cells, style in rows:
        if style == "section" and table.rows:
            table.add_section()
        table.add_row(*(Text(cells[j]) for j in keep), style=None if style == "section" else style)
    return table


# (header, shown even when empty); short headers keep the table whole on an 80-column terminal
_COLUMNS = (
    ("", True), ("requests", True), ("rps", True), ("ok", True),
    ("p50", True), ("p90", True), ("p99", True), ("p99.9", True),
    ("util", False), ("repl", False), ("non-2xx", False),
)
_QUANTILES = ("p50", "p90", "p99", "p999")
#: the column headers of :func:`summary_rows` and whether each is shown when empty in every row
SUMMARY_COLUMNS = _COLUMNS


def _title(s: Mapping[str, Any]) -> str:
    parts = [str(s.get("scenario", "run"))]
    if s.get("seed") is not None:
        parts.append(f"seed {s['seed']}")
    reps = s.get("replications")
    if reps is not None:
        parts.append(f"{reps} replication{'s' if reps != 1 else ''}")
    if _finite(s.get("window_s")):
        window = f"window {format_duration(s['window_s'])}"
        if _finite(s.get("warmup_s")) and s["warmup_s"] > 0:
            window += f" after {format_duration(s['warmup_s'])} warm-up"
        parts.append(window)
    return " · ".join(parts) + " · latency in ms"


def _caption(s: Mapping[str, Any], ci: Mapping[str, Any]) -> Text | None:
    if not ci:
        return None
    reps = s.get("replications")
    over = f" over {reps} replications" if reps else ""
    return Text(f"x ± h: 95% confidence interval{over}; x [lo, hi] where it is not centred on x")


def _cells(label: str, row: Mapping[str, Any], path: str, ci: Mapping[str, Any],
           replicas_from: Mapping[str, Any] | None = None) -> list[str]:
    lat = row.get("latency_s") or {}

    def cell(value: Any, key: str, fmt: Callable[[float], str], scale: float, unit: str) -> str:
        return _with_ci(value, ci.get(f"{path}.{key}"), fmt, scale, unit)

    return [
        label,
        cell(row.get("requests"), "requests", _count, 1.0, ""),
        cell(row.get("throughput_rps"), "throughput_rps", _rps, 1.0, ""),
        cell(row.get("success_rate"), "success_rate", _success, 100.0, "%"),
        *(cell(lat.get(q), f"latency_s.{q}", _ms, 1e3, "") for q in _QUANTILES),
        cell(row.get("utilization"), "utilization", _util, 100.0, "%"),
        _replicas(replicas_from),
        _non_2xx(row.get("status") or {}),
    ]


def _with_ci(value: Any, interval: Any, fmt: Callable[[float], str], scale: float, unit: str) -> str:
    """``fmt(value)``, or with a CI: value and interval rounded to 2 significant digits of the half-width."""
    if not _finite(value):
        return _DASH if value is None or isinstance(value, (int, float)) else str(value)
    try:
        lo, hi = (float(b) for b in interval)
    except (TypeError, ValueError):
        return fmt(value)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return fmt(value)
    v, lo, hi = value * scale, lo * scale, hi * scale
    half = (hi - lo) / 2.0
    if half <= 0:
        return f"{fmt(value)} ± 0"
    d = min(6, max(0, 1 - math.floor(math.log10(half))))
    if abs((lo + hi) / 2.0 - v) <= 0.01 * half:
        return f"{v:,.{d}f} ± {half:,.{d}f}{unit}"
    return f"{v:,.{d}f} [{lo:,.{d}f}, {hi:,.{d}f}]{unit}"


def _when(seconds: Any) -> str:
    return format_duration(float(seconds)) if _finite(seconds) else _DASH


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _count(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


def _rps(x: float) -> str:
    return f"{x:,.1f}" if x >= 0.1 or x == 0 else f"{x:.2g}"


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    a = abs(ms)
    if a >= 100 or a == 0:
        return f"{ms:,.0f}"
    if a >= 10:
        return f"{ms:.1f}"
    if a >= 0.01:
        return f"{ms:.2f}"
    return f"{ms:.2g}"


def _util(frac: float) -> str:
    return f"{frac * 100:.1f}%"


def _success(frac: float) -> str:
    """A percentage with as many decimals as it takes not to round a failure away (99.999% stays)."""
    if frac >= 1.0:
        return "100%"
    for digits in range(2, 7):
        text = f"{frac * 100:.{digits}f}"
        if not text.startswith("100"):
            return text + "%"
    return "99.9999+%"


def _replicas(version: Mapping[str, Any] | None) -> str:
    if not version or version.get("replicas") is None:
        return ""
    workers = version.get("workers")
    return f"{version['replicas']}×{workers}" if workers is not None else str(version["replicas"])


def _non_2xx(status: Mapping[str, Any]) -> str:
    return " ".join(f"{code}×{n:,}" for code, n in status.items() if not str(code).startswith("2") and n)


def _number(x: Any) -> str:
    if isinstance(x, float) and not x.is_integer():
        return f"{x:.4g}"
    return f"{x:,.0f}" if isinstance(x, (int, float)) else str(x)


def _nonzero_stats(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for cluster, counters in stats.items():
        nz = {k: v for k, v in (counters or {}).items() if v}
        if nz:
            out[cluster] = nz
    return out
