"""Canary verdicts for people and CI systems: terminal tables, JSON, JUnit XML, Markdown and plots.

Every writer reads a :class:`~meshsim.canary.Judgement` (and, for a replay, a
:class:`~meshsim.canary.WatchResult`); the plots and the data-volume line of
the Markdown summary also read the two :class:`~meshsim.canary.ArmData`.
Files are written atomically (a temporary file beside the target, then
``os.replace``), and the same input gives the same bytes: no timestamps, no
host names, keys in a fixed order, PNGs without a creation date.

Effects are shown in their metric's terms: a ratio as a percentage change
(``+12.3%``), an error-rate difference in percentage points (``+0.45pp``), a
latency difference in milliseconds, a Flagger check as the value it checked.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from meshsim._files import atomic_write_bytes
from meshsim.canary._model import EXIT_CODES, ArmData, Decision, Judgement, MetricResult, WatchResult

__all__ = [
    "render_judgement",
    "render_watch",
    "judgement_json",
    "junit_xml",
    "markdown",
    "write_plots",
    "write_json",
    "write_junit",
    "write_markdown",
    "format_effect",
    "format_interval",
    "atomic_write",
]

_DASH = "–"
_ICON = {Decision.PROMOTE: "✅", Decision.ROLLBACK: "❌", Decision.INCONCLUSIVE: "⏸️"}
_STYLE = {Decision.PROMOTE: "bold green", Decision.ROLLBACK: "bold red", Decision.INCONCLUSIVE: "bold yellow"}


# ------------------------------------------------------------------------------------------ formatting


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: float, digits: int = 3) -> str:
    if not _finite(x):
        return _DASH
    return f"{x:.{digits}g}"


def _latency_ms(x: float) -> str:
    return f"{_num(x * 1000.0)} ms" if _finite(x) else _DASH


def _is_rate_metric(m: MetricResult) -> bool:
    return m.kind == "error_rate"


def format_value(m: MetricResult, x: float) -> str:
    """A baseline or canary value of ``m`` in readable units (ms for latency, % for error rates)."""
    if not _finite(x):
        return _DASH
    if m.effect_kind == "value":
        return f"{_num(x, 4)}{m.details.get('unit', '') if isinstance(m.details, Mapping) else ''}"
    if m.kind == "latency":
        return _latency_ms(x)
    if _is_rate_metric(m):
        return f"{_num(x * 100.0)}%"
    return _num(x, 4)


def format_effect(m: MetricResult, x: float | None = None) -> str:
    """The effect (or one bound of it, ``x``) as it reads: ``+12.3%``, ``+0.45pp``, ``+13.6 ms``."""
    v = m.effect if x is None else x
    if not _finite(v):
        return _DASH
    if m.effect_kind == "ratio":
        return f"{(v - 1.0) * 100.0:+.3g}%" if abs(v - 1.0) >= 5e-4 else "+0%"
    if m.effect_kind == "value":
        return format_value(m, v)
    if _is_rate_metric(m):
        return f"{v * 100.0:+.3g}pp"
    if m.kind == "latency":
        return f"{v * 1000.0:+.3g} ms"
    return f"{v:+.4g}"


def format_interval(m: MetricResult) -> str:
    """``[low, high]`` of the effect in the same terms as :func:`format_effect`; ``–`` when there is none."""
    if not (_finite(m.ci_low) or _finite(m.ci_high)):
        return _DASH
    lo = format_effect(m, m.ci_low) if _finite(m.ci_low) else "-inf"
    hi = format_effect(m, m.ci_high) if _finite(m.ci_high) else "+inf"
    return f"[{lo}, {hi}]"


def format_margin(m: MetricResult) -> str:
    """The allowed change (or Flagger's bound) in the effect's terms."""
    if not _finite(m.margin):
        return _DASH
    if m.effect_kind == "ratio":
        return f"{(m.margin - 1.0) * 100.0:+.3g}%"
    if m.effect_kind == "value":
        d = m.details if isinstance(m.details, Mapping) else {}
        lo, hi, unit = d.get("min"), d.get("max"), d.get("unit", "")
        parts = ([f">= {lo:g}{unit}"] if lo is not None else []) + ([f"<= {hi:g}{unit}"] if hi is not None else [])
        return ", ".join(parts) or _DASH
    if _is_rate_metric(m):
        return f"{m.margin * 100.0:.3g}pp"
    if m.kind == "latency":
        return f"{m.margin * 1000.0:.3g} ms"
    return _num(m.margin, 4)


def _count(n: Any) -> str:
    return f"{int(n):,}" if _finite(n) else _DASH


def _mode_title(j: Judgement) -> str:
    return {"kayenta": "Kayenta-compatible judge", "flagger": "Flagger-style thresholds"}.get(j.mode, "meshsim judge")


# ------------------------------------------------------------------------------------------ terminal


def render_judgement(judgement: Judgement, console: Any, *, title: str | None = None) -> None:
    """Print the verdict and one row per metric as a rich table.

    Columns: metric, decision, baseline and canary values, effect, its
    interval, the margin, the data behind it (points or requests per arm) and
    the reason. The verdict, its reason and (Kayenta mode) the score head it.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    j = judgement
    head = Text()
    head.append(f"{j.decision.value}", style=_STYLE[j.decision])
    head.append(f"  (exit {j.exit_code})  {_mode_title(j)}")
    if j.score is not None:
        head.append(f"  score {j.score:g}")
    if _finite(j.minutes):
        head.append(f"  over {j.minutes:g} min")
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for col, justify in (("metric", "left"), ("decision", "left"), ("baseline", "right"), ("canary", "right"),
                         ("effect", "right"), ("interval", "right"), ("margin", "right"), ("n (b/c)", "right"),
                         ("reason", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for m in j.metrics:
        table.add_row(
            m.name + (" *" if m.critical else ""),
            Text(m.decision.value, style=_STYLE[m.decision].replace("bold ", "")),
            format_value(m, m.baseline), format_value(m, m.canary), format_effect(m), format_interval(m),
            format_margin(m), f"{_count(m.n_baseline)}/{_count(m.n_canary)}", m.reason or _DASH,
        )
    console.print(head)
    console.print(Text(j.reason))
    if j.metrics:
        console.print(table)
    if any(m.critical for m in j.metrics):
        console.print(Text("* critical metric", style="dim"))


def render_watch(watch: WatchResult, console: Any, *, every: int = 1) -> None:
    """Print a replay: one row per look (minute, decision, score, worst metric, reason), then the outcome.

    ``every`` keeps one look in ``every`` (the decisive look is always shown).
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    has_score = any(j.score is not None for _, j in watch.looks)
    cols = ["minute", "decision"] + (["score"] if has_score else []) + ["reason"]
    for c in cols:
        table.add_column(c, justify="right" if c in ("minute", "score") else "left", overflow="fold")
    last = len(watch.looks) - 1
    for i, (minute, j) in enumerate(watch.looks):
        if every > 1 and i % every and i != last and j.decision is Decision.INCONCLUSIVE:
            continue
        row: list[Any] = [f"{minute:g}", Text(j.decision.value, style=_STYLE[j.decision].replace("bold ", ""))]
        if has_score:
            row.append(_DASH if j.score is None else f"{j.score:g}")
        row.append(j.reason)
        table.add_row(*row)
    console.print(table)
    out = Text()
    out.append(watch.decision.value, style=_STYLE[watch.decision])
    if watch.decided_at is not None:
        out.append(f" reached at minute {watch.decided_at:g}")
    else:
        end = watch.looks[-1][0] if watch.looks else float("nan")
        out.append(f": no decision by minute {end:g}")
    out.append(f"  (exit {EXIT_CODES[watch.decision]})")
    console.print(out)


# ------------------------------------------------------------------------------------------ JSON


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value)
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return [_jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if hasattr(obj, "model_dump"):
        return _jsonable(obj.model_dump())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def _metric_dict(m: MetricResult) -> dict[str, Any]:
    return {
        "name": m.name, "kind": m.kind, "decision": m.decision.value, "effect": m.effect,
        "effect_kind": m.effect_kind, "ci_low": m.ci_low, "ci_high": m.ci_high, "margin": m.margin,
        "p_value": m.p_value, "e_value": m.e_value, "test": m.test, "baseline": m.baseline, "canary": m.canary,
        "n_baseline": m.n_baseline, "n_canary": m.n_canary, "critical": m.critical, "sequential": m.sequential,
        "reason": m.reason, "details": m.details,
    }


def _judgement_dict(j: Judgement) -> dict[str, Any]:
    return {
        "decision": j.decision.value, "exit_code": j.exit_code, "mode": j.mode, "score": j.score,
        "reason": j.reason, "minutes": j.minutes, "metrics": [_metric_dict(m) for m in j.metrics],
        "details": j.details,
    }


def judgement_json(judgement: Judgement, watch: WatchResult | None = None) -> str:
    """The verdict as JSON text (indent 2, NaN as ``null``, newline-terminated).

    With ``watch``, a ``watch`` object holds the decision, the minute it was
    reached and every look (minute, decision, score, reason, per-metric decisions).
    """
    out: dict[str, Any] = {"format": "meshsim.canary/1", **_judgement_dict(judgement)}
    if watch is not None:
        out["watch"] = {
            "decision": watch.decision.value,
            "exit_code": EXIT_CODES[watch.decision],
            "decided_at": watch.decided_at,
            "looks": [
                {"minute": minute, "decision": j.decision.value, "score": j.score, "reason": j.reason,
                 "metrics": {m.name: m.decision.value for m in j.metrics}}
                for minute, j in watch.looks
            ],
        }
    return json.dumps(_jsonable(out), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------------ JUnit


def junit_xml(judgement: Judgement, *, suite: str = "meshsim canary", watch: WatchResult | None = None) -> str:
    """JUnit XML: one ``<testcase>`` per metric plus one for the verdict.

    A ROLLBACK is a ``<failure>``, an INCONCLUSIVE a ``<skipped>`` (CI shows it
    as neither passed nor failed), a PROMOTE passes. The failure message is
    the metric's reason; its body lists the effect, interval, margin and
    data. Properties carry the decision, mode, score and exit code.
    """
    j = judgement
    cases: list[tuple[str, str, Decision, str, str]] = []
    classname = f"canary.{j.mode}"
    for m in j.metrics:
        body = "\n".join([
            f"decision: {m.decision.value}",
            f"baseline: {format_value(m, m.baseline)}  canary: {format_value(m, m.canary)}",
            f"effect: {format_effect(m)}  interval: {format_interval(m)}  margin: {format_margin(m)}",
            f"test: {m.test or _DASH}  p-value: {_num(m.p_value) if m.p_value is not None else _DASH}  "
            f"e-value: {_num(m.e_value) if m.e_value is not None else _DASH}",
            f"data: {_count(m.n_baseline)} baseline / {_count(m.n_canary)} canary",
            f"reason: {m.reason}",
        ])
        cases.append((classname, m.name, m.decision, m.reason or m.decision.value, body))
    cases.append((classname, "verdict", j.decision, j.reason, j.reason))
    failures = sum(1 for c in cases if c[2] is Decision.ROLLBACK)
    skipped = sum(1 for c in cases if c[2] is Decision.INCONCLUSIVE)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": str(skipped),
              "time": "0"}
    root = ET.Element("testsuites", {"name": suite, **counts})
    ts = ET.SubElement(root, "testsuite", {"name": f"{suite} ({j.mode})", **counts})
    props = ET.SubElement(ts, "properties")
    prop = {"decision": j.decision.value, "exit_code": str(j.exit_code), "mode": j.mode,
            "score": "" if j.score is None else f"{j.score:g}",
            "minutes": f"{j.minutes:g}" if _finite(j.minutes) else ""}
    if watch is not None:
        prop["decided_at"] = "" if watch.decided_at is None else f"{watch.decided_at:g}"
    for k, v in prop.items():
        ET.SubElement(props, "property", {"name": k, "value": v})
    for cls, name, dec, message, body in cases:
        tc = ET.SubElement(ts, "testcase", {"classname": cls, "name": name, "time": "0"})
        if dec is Decision.ROLLBACK:
            f = ET.SubElement(tc, "failure", {"message": _one_line(message), "type": "ROLLBACK"})
            f.text = body
        elif dec is Decision.INCONCLUSIVE:
            ET.SubElement(tc, "skipped", {"message": _one_line(f"INCONCLUSIVE: {message}")})
        out = ET.SubElement(tc, "system-out")
        out.text = body
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------------------ Markdown


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _arm_volume(arm: ArmData | None) -> str:
    if arm is None:
        return ""
    parts = []
    if arm.requests is not None:
        parts.append(f"{len(arm.requests):,} requests")
    elif arm.minutes is not None and not arm.minutes.empty:
        req = arm.minutes[arm.minutes["metric"] == "requests"]["value"].to_numpy(dtype=float)
        if np.isfinite(req).any():
            parts.append(f"{int(np.nansum(req)):,} requests")
    if arm.minutes is not None and not arm.minutes.empty:
        has = arm.minutes.groupby("minute")["value"].apply(lambda v: bool(np.isfinite(v.to_numpy(float)).any()))
        parts.append(f"{int(has.sum())} minutes with data")
    return ", ".join(parts)


def markdown(judgement: Judgement, *, baseline: ArmData | None = None, canary: ArmData | None = None,
             watch: WatchResult | None = None, title: str = "Canary analysis") -> str:
    """A PR-comment-ready summary: the decision and why, a per-metric table, the data behind it.

    The table has the decision, baseline and canary values, effect, interval,
    margin, data points per arm and the reason of every metric; a replay
    adds when the decision was reached.
    """
    j = judgement
    lines = [f"### {title}: {_ICON[j.decision]} **{j.decision.value}**", ""]
    facts = [_mode_title(j), f"exit code {j.exit_code}"]
    if j.score is not None:
        facts.append(f"score **{j.score:g}**")
        if "pass" in j.details and "marginal" in j.details:
            facts.append(f"pass {j.details['pass']:g} / marginal {j.details['marginal']:g}")
    if _finite(j.minutes):
        facts.append(f"{j.minutes:g} min analysed")
    if watch is not None:
        facts.append(f"decided at minute {watch.decided_at:g}" if watch.decided_at is not None
                     else "no decision reached")
    lines.append(" · ".join(facts))
    lines += ["", f"> {_md(j.reason)}", ""]
    if j.metrics:
        lines.append("| metric | decision | baseline | canary | effect | interval | margin | n (baseline / canary) | reason |")
        lines.append("|---|---|--:|--:|--:|--:|--:|--:|---|")
        for m in j.metrics:
            lines.append(
                f"| {_md(m.name)}{' (critical)' if m.critical else ''} | {_ICON[m.decision]} {m.decision.value} "
                f"| {_md(format_value(m, m.baseline))} | {_md(format_value(m, m.canary))} | {_md(format_effect(m))} "
                f"| {_md(format_interval(m))} | {_md(format_margin(m))} | {_count(m.n_baseline)} / {_count(m.n_canary)} "
                f"| {_md(m.reason or _DASH)} |"
            )
        lines.append("")
    volume = [(name, _arm_volume(arm)) for name, arm in (("baseline", baseline), ("canary", canary))]
    volume = [(n, v) for n, v in volume if v]
    if volume:
        lines.append("**Data:** " + "; ".join(f"{n}: {v}" for n, v in volume) + ".")
        lines.append("")
    if j.mode == "meshsim":
        lines.append("<sub>Intervals are anytime-valid where marked sequential; PROMOTE needs every bound inside "
                     "its margin.</sub>")
    elif j.mode == "kayenta":
        lines.append("<sub>Kayenta-compatible: effect = Hodges-Lehmann shift canary − baseline of the per-minute "
                     "series, interval = Mann-Whitney interval; margin = the tolerance bound.</sub>")
    else:
        lines.append("<sub>Flagger-style: fixed thresholds on the canary's last minute; the baseline is not "
                     "compared.</sub>")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ files


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(p, data.encode("utf-8") if isinstance(data, str) else data)


def write_json(path: str | os.PathLike[str], judgement: Judgement, watch: WatchResult | None = None) -> Path:
    """Write :func:`judgement_json` to ``path`` atomically."""
    return atomic_write(path, judgement_json(judgement, watch))


def write_junit(path: str | os.PathLike[str], judgement: Judgement, watch: WatchResult | None = None) -> Path:
    """Write :func:`junit_xml` to ``path`` atomically."""
    return atomic_write(path, junit_xml(judgement, watch=watch))


def write_markdown(path: str | os.PathLike[str], judgement: Judgement, **kwargs: Any) -> Path:
    """Write :func:`markdown` to ``path`` atomically."""
    return atomic_write(path, markdown(judgement, **kwargs))


# ------------------------------------------------------------------------------------------ plots


_COLORS = {"baseline": "#1f77b4", "canary": "#d62728"}


def _series_name(m: MetricResult) -> str | None:
    d = m.details if isinstance(m.details, Mapping) else {}
    if isinstance(d.get("series"), str) and d["series"] not in ("success_rate",):
        return d["series"]
    if m.kind == "latency":
        q = m.name.rsplit(".", 1)[-1]
        return f"latency_{q}_s" if q.startswith("p") else "latency_p99_s"
    if m.kind == "error_rate":
        return "error_rate"
    if m.kind == "throughput":
        return "requests"
    return m.name


def _latencies(arm: ArmData) -> np.ndarray:
    if arm.requests is not None:
        lat = arm.requests["latency_s"].to_numpy(dtype=float)
        return np.sort(lat[np.isfinite(lat)])
    return np.empty(0)


def _savefig(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return atomic_write(path, buf.getvalue())


def write_plots(outdir: str | os.PathLike[str], baseline: ArmData, canary: ArmData, judgement: Judgement,
                watch: WatchResult | None = None) -> list[Path]:
    """Write ``ecdf.png``, ``series.png`` and ``qq.png`` into ``outdir``.

    ``ecdf.png``: the empirical CDF of both arms' latencies (raw requests; with
    per-minute data only, of the per-minute values of the first latency
    metric), log-scaled. ``series.png``: each judged metric per minute for both
    arms, with a vertical line where the decision was reached (or the end of
    the analysis). ``qq.png``: canary latency quantiles against the
    baseline's, with the line of no change.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from meshsim.canary.io import per_minute

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    series = list(dict.fromkeys(s for s in (_series_name(m) for m in judgement.metrics) if s))
    lat_series = next((s for s in series if s.startswith("latency_")), "latency_p99_s")
    b_lat, c_lat = _latencies(baseline), _latencies(canary)
    label = "request latency"
    if not len(b_lat) or not len(c_lat):
        b_lat = np.sort(per_minute(baseline, lat_series)[np.isfinite(per_minute(baseline, lat_series))])
        c_lat = np.sort(per_minute(canary, lat_series)[np.isfinite(per_minute(canary, lat_series))])
        label = f"per-minute {lat_series}"
    decided = watch.decided_at if watch is not None and watch.decided_at is not None else judgement.minutes
    title = f"{judgement.decision.value} ({_mode_title(judgement)})"

    with plt.rc_context({"figure.dpi": 100, "svg.hashsalt": "meshsim", "axes.grid": True, "grid.alpha": 0.3}):
        # ECDF
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, lat in (("baseline", b_lat), ("canary", c_lat)):
            if len(lat):
                ms = lat * 1000.0
                ax.step(ms, np.arange(1, len(ms) + 1) / len(ms), where="post", color=_COLORS[name],
                        label=f"{name} (n={len(ms):,})")
        if len(b_lat) and len(c_lat) and min(b_lat[0], c_lat[0]) > 0:
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylabel("fraction of requests ≤ x" if label == "request latency" else "fraction of minutes ≤ x")
        ax.set_title(f"ECDF — {title}")
        ax.legend(loc="lower right")
        fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12)
        written.append(_savefig(fig, out / "ecdf.png"))
        plt.close(fig)

        # per-minute series
        shown = series[:6] or ["requests"]
        fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown) + 0.6), sharex=True, squeeze=False)
        for ax, s in zip(axes[:, 0], shown, strict=True):
            for name, arm in (("baseline", baseline), ("canary", canary)):
                v = per_minute(arm, s)
                scale, unit = (1000.0, " (ms)") if s.startswith("latency_") else (100.0, " (%)") \
                    if s in ("error_rate", "success_rate") else (1.0, "")
                ax.plot(np.arange(len(v)) + 0.5, v * scale, marker=".", ms=3, lw=1, color=_COLORS[name], label=name)
            ax.set_ylabel(s + unit, fontsize=8)
            if _finite(decided):
                ax.axvline(decided, color="black", ls="--", lw=1)
        axes[0, 0].legend(loc="upper left", fontsize=8)
        axes[0, 0].set_title(f"per-minute series — {title}"
                             + (f", decided at minute {decided:g}" if _finite(decided) else ""))
        axes[-1, 0].set_xlabel("minute")
        fig.subplots_adjust(left=0.1, right=0.97, top=1 - 0.45 / fig.get_figheight(),
                            bottom=0.5 / fig.get_figheight(), hspace=0.15)
        written.append(_savefig(fig, out / "series.png"))
        plt.close(fig)

        # QQ
        fig, ax = plt.subplots(figsize=(5, 5))
        if len(b_lat) and len(c_lat):
            ps = np.linspace(0.01, 0.99, 99)
            qb, qc = np.quantile(b_lat, ps) * 1000.0, np.quantile(c_lat, ps) * 1000.0
            ax.plot(qb, qc, ".", color=_COLORS["canary"], label="p1 … p99")
            for p, mark in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
                i = int(round(p * 100)) - 1
                ax.annotate(mark, (qb[i], qc[i]), fontsize=8, xytext=(4, -10), textcoords="offset points")
            lo, hi = float(min(qb[0], qc[0])), float(max(qb[-1], qc[-1]))
            ax.plot([lo, hi], [lo, hi], color="gray", lw=1, label="no change")
            ax.legend(loc="upper left", fontsize=8)
        ax.set_xlabel(f"baseline {label} quantile (ms)")
        ax.set_ylabel(f"canary {label} quantile (ms)")
        ax.set_title("QQ: canary vs baseline")
        fig.subplots_adjust(left=0.15, right=0.96, top=0.93, bottom=0.11)
        written.append(_savefig(fig, out / "qq.png"))
        plt.close(fig)
    return written
