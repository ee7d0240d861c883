"""Reading canary input: two arms of metrics as :class:`~meshsim.canary.ArmData`.

Four input formats, detected from the file (``fmt="auto"``) or named:

``requests``
    CSV or Parquet of raw samples, one row per request: a timestamp (ISO
    datetime, or epoch/relative seconds), a latency (``latency_ms``,
    ``latency_s``, ``latency_us`` or ``latency`` with ``latency_unit``) and an
    HTTP ``status`` (``0`` = no response).
``minutes``
    CSV or Parquet of per-minute aggregates in long form: ``timestamp`` (or
    ``minute``), ``metric``, ``value`` and optionally ``count``.
``prometheus``
    Prometheus ``query_range`` JSON (``resultType: matrix``): one file, a
    directory of files (one per query, the file name naming the metric), or a
    mapping metric name -> file. Counters (``*_total``, ``*_count``,
    ``*_sum``) become per-minute increments with counter resets undone;
    ``istio_requests_total``-style counters with a ``response_code`` label
    give ``requests`` and ``errors`` (5xx); histogram buckets
    (``*_bucket{le=...}``) give per-minute histograms and p50/p90/p99;
    anything else is a gauge, averaged over the minute and over its series.
``run``
    A meshsim run directory (``meshsim run -o DIR``): the attempts to one
    version of one service are that arm's requests.

Alignment: minute 0 starts at the earlier first timestamp of the two arms,
and both arms share one minute grid. Every arm gets per-minute aggregates
(``ArmData.minutes``: ``requests``, ``errors``, ``latency_p50_s``,
``latency_p90_s``, ``latency_p99_s``, ``latency_mean_s``, plus any gauges);
raw samples are kept in ``ArmData.requests`` as well.

A request is an error when its status is 5xx or 0 (no response); 4xx answers
are the client's fault and count as successes, as in Istio's success rate.

Bad input raises :class:`meshsim.CanaryError` with one line naming the file,
the column or field, the offending value and what is allowed.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meshsim._exceptions import CanaryError
from meshsim.canary._model import ArmData

__all__ = [
    "read_arms",
    "read_arm",
    "arms_from_attempts",
    "detect_format",
    "per_minute",
    "is_error",
    "histogram_quantile",
    "minutes_from_requests",
    "FORMATS",
    "LATENCY_UNITS",
    "QUANTILES",
    "STANDARD_METRICS",
]

#: accepted values of ``fmt``
FORMATS = ("auto", "requests", "minutes", "prometheus", "run")
#: seconds per latency unit
LATENCY_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
#: per-minute quantile metrics and their probabilities
QUANTILES: dict[str, float] = {"latency_p50_s": 0.5, "latency_p90_s": 0.9, "latency_p99_s": 0.99}
#: the per-minute metrics every reader fills when its input has them
STANDARD_METRICS = ("requests", "errors", *QUANTILES, "latency_mean_s")
#: metrics that are counts per minute (summed, never averaged)
_COUNT_METRICS = ("requests", "errors")

_UNIT_WORDS = {"seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns",
               "s": "s", "ms": "ms", "us": "us", "ns": "ns", "sec": "s", "millis": "ms"}
_TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "start_s", "start", "t")
_STATUS_COLUMNS = ("status", "status_code", "response_code", "code")
_LATENCY_RE = re.compile(r"^(?:latency|duration|response_time|elapsed)(?:_(seconds|milliseconds|microseconds|"
                         r"nanoseconds|sec|millis|s|ms|us|ns))?$")
_AGG_LATENCY_RE = re.compile(r"^latency_(p\d+(?:\.\d+)?|mean|avg)(?:_(seconds|milliseconds|microseconds|"
                             r"nanoseconds|s|ms|us|ns))?$")
_CODE_LABELS = ("response_code", "code", "status_code", "status")
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".csv.gz")


def _fail(source: object, message: str) -> CanaryError:
    prefix = f"{source}: " if source else ""
    return CanaryError(prefix + message)


def is_error(status: Any) -> Any:
    """True where a status is a failure: 5xx, or 0 (no response). Works on scalars and arrays."""
    s = np.asarray(status)
    out = (s >= 500) | (s == 0)
    return bool(out) if out.ndim == 0 else out


# ------------------------------------------------------------------------------------------ public API


def read_arms(
    baseline: str | os.PathLike[str] | Mapping[str, Any],
    canary: str | os.PathLike[str] | Mapping[str, Any],
    *,
    fmt: str = "auto",
    latency_unit: str | None = None,
    service: str | None = None,
    baseline_version: str | None = None,
    canary_version: str | None = None,
) -> tuple[ArmData, ArmData]:
    """Read both arms and align them on one minute grid.

    Parameters
    ----------
    baseline, canary
        A file or directory, or (Prometheus only) a mapping metric name ->
        ``query_range`` JSON file. For a meshsim run directory both may be the
        same directory.
    fmt
        One of ``{"auto", "requests", "minutes", "prometheus", "run"}``;
        ``"auto"`` (the default) looks at the file (see :func:`detect_format`).
    latency_unit
        Unit of a latency column or metric whose name carries none
        (``latency``, ``latency_p99``): one of ``{"s", "ms", "us", "ns"}``.
    service, baseline_version, canary_version
        For a run directory: the service and its two versions to compare.
        Without ``service`` the one service that has two or more versions is
        taken; without versions, a service with exactly two versions gives its
        first as the baseline and its second as the canary.

    Returns
    -------
    (ArmData, ArmData)
        Baseline and canary; minute 0 starts at the earlier of their first
        timestamps, and both have the same number of minutes.

    Raises
    ------
    CanaryError
        Unreadable, empty or invalid input, an arm with no usable value, or
        arms whose time ranges do not overlap.
    """
    fmt = _check_choice("--format", fmt, FORMATS)
    if latency_unit is not None:
        latency_unit = _check_choice("--latency-unit", latency_unit, tuple(LATENCY_UNITS))
    versions = {"baseline": baseline_version, "canary": canary_version}
    if fmt == "run" or (fmt == "auto" and _is_run_dir(baseline) and _is_run_dir(canary)):
        if not (_is_run_dir(baseline) and _is_run_dir(canary)):
            which = baseline if not _is_run_dir(baseline) else canary
            raise _fail(which, "not a meshsim run directory (expected summary.json and an attempts table)")
        b_ver, c_ver, service = _pick_versions(Path(canary), service, baseline_version, canary_version)
        versions = {"baseline": b_ver, "canary": c_ver}
    raws = []
    for name, src in (("baseline", baseline), ("canary", canary)):
        raws.append(_read_raw(src, name=name, fmt=fmt, latency_unit=latency_unit, service=service,
                              version=versions[name]))
    return _align(raws[0], raws[1])


def read_arm(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    name: str = "arm",
    fmt: str = "auto",
    latency_unit: str | None = None,
    service: str | None = None,
    version: str | None = None,
) -> ArmData:
    """Read one arm on its own (minute 0 at its first timestamp); see :func:`read_arms`."""
    fmt = _check_choice("--format", fmt, FORMATS)
    raw = _read_raw(source, name=name, fmt=fmt, latency_unit=latency_unit, service=service, version=version)
    n = _n_minutes(raw.first, raw.last, raw.first)
    return raw.build(raw.first, n)


def detect_format(source: str | os.PathLike[str] | Mapping[str, Any]) -> str:
    """The input format of ``source``: ``"requests"``, ``"minutes"``, ``"prometheus"`` or ``"run"``.

    A mapping is a set of Prometheus files; a directory is a run directory
    when it holds ``summary.json`` or an attempts table, else a directory of
    Prometheus JSON files; a ``.json`` file is Prometheus; a table with
    ``metric`` and ``value`` columns holds per-minute aggregates, any other
    table raw requests.
    """
    if isinstance(source, Mapping):
        return "prometheus"
    path = Path(source)
    if not path.exists():
        raise _fail(path, "no such file or directory")
    if path.is_dir():
        if _is_run_dir(path):
            return "run"
        if any(path.glob("*.json")):
            return "prometheus"
        raise _fail(path, "directory is neither a meshsim run directory (summary.json, attempts table) "
                          "nor a directory of Prometheus query_range *.json files")
    if path.name.lower().endswith((".json", ".yaml", ".yml")):
        return "prometheus"
    if not path.name.lower().endswith(_TABLE_SUFFIXES):
        raise _fail(path, f"unknown file type {path.suffix!r}; expected .csv, .tsv, .parquet, .json, or a .yaml "
                          "mapping of Prometheus files (or pass --format)")
    columns = {c.strip().lower() for c in _read_table(path, nrows=5).columns}
    return "minutes" if {"metric", "value"} <= columns else "requests"


def per_minute(arm: ArmData, metric: str, minutes: int | None = None) -> np.ndarray:
    """One metric of ``arm`` as a float array indexed by minute (NaN where there is no value).

    ``error_rate`` (errors / requests) and ``success_rate`` (1 - error_rate)
    are derived from the counts. ``minutes`` sets the length (default: up to
    the arm's last minute).
    """
    mins = arm.minutes
    if mins is None or mins.empty:
        n = 0 if minutes is None else int(minutes)
        return np.full(n, np.nan)
    n = int(mins["minute"].max()) + 1 if minutes is None else int(minutes)
    if metric in ("error_rate", "success_rate"):
        req = per_minute(arm, "requests", n)
        err = per_minute(arm, "errors", n)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(req > 0, err / np.where(req > 0, req, 1.0), np.nan)
        return rate if metric == "error_rate" else 1.0 - rate
    out = np.full(n, np.nan)
    table = _pivot(mins).get(metric)
    if table is not None:
        k = min(n, len(table))
        out[:k] = table[:k]
    return out


#: per-minute tables already split by metric: id(frame) -> (weak reference, fingerprint, metric -> values)
_PIVOTS: dict[int, tuple[Any, tuple[int, float], dict[str, np.ndarray]]] = {}


def _pivot(mins: pd.DataFrame) -> dict[str, np.ndarray]:
    """``mins`` as metric -> array indexed by minute, cached per frame (judges read one arm many times)."""
    import weakref

    value = mins["value"].to_numpy(dtype=float)
    finger = (len(mins), float(np.nansum(value)))
    hit = _PIVOTS.get(id(mins))
    if hit is not None and hit[0]() is mins and hit[1] == finger:
        return hit[2]
    minute = mins["minute"].to_numpy(dtype=np.int64)
    n = int(minute.max()) + 1 if len(minute) else 0
    codes, names = pd.factorize(mins["metric"].to_numpy(dtype=object))
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        sel = codes == i
        arr = np.full(n, np.nan)
        arr[minute[sel]] = value[sel]
        out[str(name)] = arr
    if len(_PIVOTS) >= 256:
        _PIVOTS.clear()
    _PIVOTS[id(mins)] = (weakref.ref(mins), finger, out)
    return out


def histogram_quantile(q: float, le: np.ndarray, cumulative: np.ndarray) -> float:
    """The ``q`` quantile of one cumulative histogram, as Prometheus's ``histogram_quantile`` computes it.

    Linear interpolation inside the bucket holding rank ``q * total``; the
    first bucket starts at 0; a rank in the ``+Inf`` bucket returns the
    highest finite bound. NaN without observations or without a ``+Inf`` bucket.

    Examples
    --------
    >>> histogram_quantile(0.5, [0.1, 0.2, float("inf")], [10, 20, 20])
    0.1
    >>> histogram_quantile(0.99, [0.1, 0.2, float("inf")], [10, 20, 20])
    0.198
    """
    le = np.asarray(le, dtype=float)
    cum = np.maximum.accumulate(np.asarray(cumulative, dtype=float))  # Prometheus fixes non-monotone buckets
    if len(le) < 2 or not math.isinf(le[-1]) or not cum[-1] > 0 or not 0.0 <= q <= 1.0:
        return math.nan
    rank = q * float(cum[-1])
    b = int(np.searchsorted(cum, rank, side="left"))
    if b >= len(le) - 1:
        return float(le[-2])
    if b == 0 and le[0] <= 0:
        return float(le[0])
    start = 0.0 if b == 0 else float(le[b - 1])
    below = 0.0 if b == 0 else float(cum[b - 1])
    count = float(cum[b]) - below
    if count <= 0:
        return float(le[b])
    return start + (float(le[b]) - start) * ((rank - below) / count)


def minutes_from_requests(requests: pd.DataFrame, n_minutes: int, lo: int = 0, hi: int | None = None) -> pd.DataFrame:
    """Per-minute aggregates of raw requests (``t`` seconds since the start, ``latency_s``, ``status``).

    Minutes ``lo`` to ``hi - 1`` (the span the arm was observed) get
    ``requests`` and ``errors`` counts (0 in a minute without requests); the
    latency metrics are NaN in a minute without a latency. Minutes outside
    that span are NaN throughout: nothing is known about them.
    """
    hi = n_minutes if hi is None else hi
    minute = np.floor(requests["t"].to_numpy(dtype=float) / 60.0).astype(np.int64)
    status = requests["status"].to_numpy()
    lat = requests["latency_s"].to_numpy(dtype=float)
    grid = np.arange(n_minutes)
    inside = (grid >= lo) & (grid < hi)
    counts = np.bincount(minute, minlength=n_minutes)[:n_minutes].astype(float)
    errors = np.bincount(minute, weights=is_error(status).astype(float), minlength=n_minutes)[:n_minutes]
    cols: dict[str, np.ndarray] = {
        "requests": np.where(inside, counts, np.nan),
        "errors": np.where(inside, errors, np.nan),
    }
    ok = np.isfinite(lat)
    lm, lv = minute[ok], lat[ok]
    nlat = np.bincount(lm, minlength=n_minutes)[:n_minutes].astype(float)
    qs = {name: np.full(n_minutes, np.nan) for name in QUANTILES}
    mean = np.full(n_minutes, np.nan)
    if len(lv):
        order = np.lexsort((lv, lm))
        lm, lv = lm[order], lv[order]
        bounds = np.searchsorted(lm, np.arange(n_minutes + 1))
        for m in np.flatnonzero(nlat):
            chunk = lv[bounds[m]:bounds[m + 1]]
            mean[m] = chunk.mean()
            for name, p in QUANTILES.items():
                qs[name][m] = _sorted_quantile(chunk, p)
    cols.update(qs)
    cols["latency_mean_s"] = mean
    frames = []
    for metric, values in cols.items():
        count = counts if metric in _COUNT_METRICS else nlat
        frames.append(pd.DataFrame({"minute": grid, "metric": metric, "value": values,
                                    "count": np.where(inside, count, np.nan)}))
    return _minutes_frame(pd.concat(frames, ignore_index=True))


# ------------------------------------------------------------------------------------------ internals


@dataclass
class _Raw:
    """One arm read, before alignment: its time span (absolute seconds) and how to build it on a grid."""

    name: str
    source: str
    first: float
    last: float
    build: Callable[[float, int], ArmData]


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise CanaryError(f"{option} {value!r} is not one of {', '.join(allowed)}")
    return value


def _n_minutes(first: float, last: float, start: float) -> int:
    return max(int(math.floor((last - start) / 60.0)) + 1, 1)


def _align(b: _Raw, c: _Raw) -> tuple[ArmData, ArmData]:
    lo, hi = max(b.first, c.first), min(b.last, c.last)
    if hi < lo - 60.0:
        raise CanaryError(
            f"{b.source} and {c.source}: time ranges do not overlap (baseline {_span(b)}, canary {_span(c)}); "
            "both arms must cover the same period (same clock and timestamp unit)")
    start = min(b.first, c.first)
    n = _n_minutes(start, max(b.last, c.last), start)
    return b.build(start, n), c.build(start, n)


def _span(r: _Raw) -> str:
    def fmt(x: float) -> str:
        if x > 1e8:  # epoch seconds
            return pd.Timestamp(x, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{x:g}s"

    return f"{fmt(r.first)}..{fmt(r.last)}"


def _read_raw(source: Any, *, name: str, fmt: str, latency_unit: str | None, service: str | None,
              version: str | None) -> _Raw:
    kind = detect_format(source) if fmt == "auto" else fmt
    if not isinstance(source, Mapping):
        path = Path(source)
        if not path.exists():
            raise _fail(path, "no such file or directory")
    if kind == "prometheus":
        return _read_prometheus(source, name=name, latency_unit=latency_unit)
    if isinstance(source, Mapping):
        raise CanaryError(f"a mapping of files is only accepted for Prometheus input, not --format {kind}")
    if kind == "run":
        return _read_run(Path(source), name=name, service=service, version=version)
    path = Path(source)
    if path.is_dir():
        raise _fail(path, f"is a directory; --format {kind} expects a CSV or Parquet file")
    df = _read_table(path)
    if kind == "minutes":
        return _read_minutes(df, path, name=name, latency_unit=latency_unit)
    return _read_requests(df, path, name=name, latency_unit=latency_unit)


def _read_table(path: Path, nrows: int | None = None) -> pd.DataFrame:
    lower = path.name.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
            if nrows is not None:
                df = df.head(nrows)
        else:
            sep = "\t" if lower.endswith(".tsv") else ","
            df = pd.read_csv(path, sep=sep, nrows=nrows, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise _fail(path, "file is empty; expected a header row and at least one data row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        raise _fail(path, f"cannot read as {'Parquet' if lower.endswith(('.parquet', '.pq')) else 'CSV'}: "
                          f"{message}") from None
    except ImportError as exc:
        raise _fail(path, f"reading Parquet needs pyarrow (pip install 'meshsim[parquet]'): {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise _fail(path, "no data rows (only a header); an arm needs at least one row")
    return df


def _find_column(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in df.columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _timestamps(series: pd.Series, path: Path, column: str) -> np.ndarray:
    """Seconds (epoch for datetimes) from numbers or ISO datetimes; one-line error at the first bad row."""
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        values = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
    else:
        text = series.astype(str).str.strip()
        numeric = pd.to_numeric(text, errors="coerce")
        if numeric.notna().all():
            values = numeric.to_numpy(dtype=float)
            bad = np.flatnonzero(~np.isfinite(values))
        else:
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
            values = np.where(parsed.isna(), np.nan,
                              (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float))
            bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise _fail(path, f"column {column!r}, row {i + 2}: {_show(series.iloc[i])} is not a timestamp; "
                          "expected an ISO 8601 datetime (2024-05-01T12:00:00Z) or seconds (epoch or relative)")
    return values


def _show(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return "empty value"
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


def _latency_column(df: pd.DataFrame, path: Path, latency_unit: str | None) -> tuple[str, float]:
    matches = [(c, _LATENCY_RE.match(c.lower())) for c in df.columns]
    found = [(c, m) for c, m in matches if m]
    if not found:
        raise _fail(path, f"no latency column; expected one of latency_ms, latency_s, latency_us, or latency with "
                          f"--latency-unit (columns: {', '.join(df.columns)})")
    col, m = found[0]
    unit = _UNIT_WORDS[m.group(1)] if m.group(1) else latency_unit
    if unit is None:
        raise _fail(path, f"column {col!r} has no unit; name it {col}_ms / {col}_s, or pass --latency-unit "
                          "s|ms|us|ns")
    return col, LATENCY_UNITS[unit]


def _read_requests(df: pd.DataFrame, path: Path, *, name: str, latency_unit: str | None) -> _Raw:
    tcol = _find_column(df, _TIME_COLUMNS)
    if tcol is None:
        raise _fail(path, f"no timestamp column; expected one of {', '.join(_TIME_COLUMNS)} "
                          f"(columns: {', '.join(df.columns)})")
    lcol, scale = _latency_column(df, path, latency_unit)
    scol = _find_column(df, _STATUS_COLUMNS)
    if scol is None:
        raise _fail(path, f"no status column; expected one of {', '.join(_STATUS_COLUMNS)} with HTTP status codes "
                          f"(columns: {', '.join(df.columns)})")
    ts = _timestamps(df[tcol], path, tcol)
    lat_raw = pd.to_numeric(df[lcol], errors="coerce")
    bad = np.flatnonzero(lat_raw.isna().to_numpy() & df[lcol].notna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise _fail(path, f"column {lcol!r}, row {i + 2}: {_show(df[lcol].iloc[i])} is not a number; "
                          "latencies are numbers >= 0 (empty = unknown)")
    lat = lat_raw.to_numpy(dtype=float) * scale
    neg = np.flatnonzero(lat < 0)
    if len(neg):
        i = int(neg[0])
        raise _fail(path, f"column {lcol!r}, row {i + 2}: {_show(df[lcol].iloc[i])} is negative; "
                          "latencies must be >= 0")
    st_raw = pd.to_numeric(df[scol], errors="coerce")
    st = st_raw.to_numpy(dtype=float)
    badst = np.flatnonzero(~np.isfinite(st) | (st != np.round(st)) | (st < 0) | (st > 999))
    if len(badst):
        i = int(badst[0])
        raise _fail(path, f"column {scol!r}, row {i + 2}: {_show(df[scol].iloc[i])} is not an HTTP status; "
                          "expected an integer 100-599 (0 = no response)")
    if not np.isfinite(lat).any():
        raise _fail(path, f"column {lcol!r}: every latency is empty or NaN; an arm needs at least one latency")
    return _requests_raw(ts, lat, st.astype(np.int64), name=name, source=str(path))


def _requests_raw(ts: np.ndarray, lat: np.ndarray, status: np.ndarray, *, name: str, source: str) -> _Raw:
    order = np.argsort(ts, kind="stable")
    ts, lat, status = ts[order], lat[order], status[order]
    first, last = float(ts[0]), float(ts[-1])

    def build(start: float, n: int) -> ArmData:
        t = ts - start
        req = pd.DataFrame({"t": t, "latency_s": lat, "status": status.astype(np.int64)})
        lo = int(math.floor((first - start) / 60.0))
        hi = int(math.floor((last - start) / 60.0)) + 1
        return ArmData(name, requests=req, minutes=minutes_from_requests(req, n, lo, hi), source=source)

    return _Raw(name, source, first, last, build)


def _normalize_metric(metric: str, latency_unit: str | None, path: Path) -> tuple[str, float]:
    """``latency_p99_ms`` -> (``latency_p99_s``, 1e-3); other names unchanged."""
    m = _AGG_LATENCY_RE.match(metric)
    if not m:
        return metric, 1.0
    stat = "mean" if m.group(1) == "avg" else m.group(1)
    unit = _UNIT_WORDS[m.group(2)] if m.group(2) else latency_unit
    if unit is None:
        raise _fail(path, f"column 'metric': {metric!r} has no unit; name it latency_{stat}_ms or latency_{stat}_s, "
                          "or pass --latency-unit s|ms|us|ns")
    return f"latency_{stat}_s", LATENCY_UNITS[unit]


def _read_minutes(df: pd.DataFrame, path: Path, *, name: str, latency_unit: str | None) -> _Raw:
    cols = {c.lower(): c for c in df.columns}
    mcol = cols.get("minute")
    tcol = _find_column(df, _TIME_COLUMNS)
    if tcol is None and mcol is None:
        raise _fail(path, f"no timestamp column; per-minute aggregates need timestamp (or minute), metric, value "
                          f"[, count] (columns: {', '.join(df.columns)})")
    for need in ("metric", "value"):
        if need not in cols:
            raise _fail(path, f"no {need!r} column; per-minute aggregates need timestamp, metric, value [, count] "
                              f"(columns: {', '.join(df.columns)})")
    if tcol is not None:
        ts = _timestamps(df[tcol], path, tcol)
    else:
        minute = pd.to_numeric(df[mcol], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(minute) | (minute < 0) | (minute != np.round(minute)))
        if len(bad):
            i = int(bad[0])
            raise _fail(path, f"column {mcol!r}, row {i + 2}: {_show(df[mcol].iloc[i])} is not a minute; "
                              "expected an integer >= 0")
        ts = minute * 60.0
    metrics = df[cols["metric"]].astype(str).str.strip().to_numpy()
    value = pd.to_numeric(df[cols["value"]], errors="coerce")
    vcol = cols["value"]
    bad = np.flatnonzero(value.isna().to_numpy() & df[vcol].notna().to_numpy()
                         & ~df[vcol].astype(str).str.strip().str.lower().isin(["nan", ""]).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise _fail(path, f"column {vcol!r}, row {i + 2}: {_show(df[vcol].iloc[i])} is not a number "
                          "(empty or NaN = no data that minute)")
    values = value.to_numpy(dtype=float).copy()
    if "count" in cols:
        count = pd.to_numeric(df[cols["count"]], errors="coerce").to_numpy(dtype=float)
        negc = np.flatnonzero(count < 0)
        if len(negc):
            i = int(negc[0])
            raise _fail(path, f"column 'count', row {i + 2}: {count[i]:g} is negative; counts must be >= 0")
    else:
        count = np.full(len(df), np.nan)
    names = np.empty(len(metrics), dtype=object)
    cache: dict[str, tuple[str, float]] = {}
    for i, raw in enumerate(metrics):
        if raw not in cache:
            if not raw or raw.lower() == "nan":
                raise _fail(path, f"column 'metric', row {i + 2}: empty metric name")
            cache[raw] = _normalize_metric(raw, latency_unit, path)
        names[i], scale = cache[raw]
        values[i] *= scale
    neg = np.flatnonzero((values < 0) & np.array([n in _COUNT_METRICS or n.startswith("latency_") for n in names]))
    if len(neg):
        i = int(neg[0])
        raise _fail(path, f"column {vcol!r}, row {i + 2}: {metrics[i]} = {_show(df[vcol].iloc[i])} is negative; "
                          "counts and latencies must be >= 0")
    if not np.isfinite(values).any():
        raise _fail(path, f"column {vcol!r}: every value is empty or NaN; an arm needs at least one value")
    first, last = float(np.min(ts)), float(np.max(ts))
    source = str(path)
    raw_names = metrics

    def build(start: float, n: int) -> ArmData:
        minute = np.floor((ts - start) / 60.0 + 1e-9).astype(np.int64)
        frame = pd.DataFrame({"minute": minute, "metric": names.astype(str), "value": values, "count": count})
        dup = frame.duplicated(["minute", "metric"], keep=False).to_numpy()
        if dup.any():
            rows = np.flatnonzero(dup)[:2]
            raise _fail(source, f"rows {rows[0] + 2} and {rows[1] + 2}: two values of {raw_names[rows[0]]!r} for "
                                f"minute {int(minute[rows[0]])}; aggregates must have one row per minute and metric")
        _check_errors_le_requests(frame, source)
        return ArmData(name, minutes=_complete_grid(frame, n), source=source)

    return _Raw(name, source, first, last, build)


def _check_errors_le_requests(frame: pd.DataFrame, source: str) -> None:
    wide = frame.pivot(index="minute", columns="metric", values="value")
    if "errors" in wide and "requests" in wide:
        over = wide.index[(wide["errors"] > wide["requests"]).to_numpy()]
        if len(over):
            m = int(over[0])
            raise _fail(source, f"minute {m}: errors {wide.loc[m, 'errors']:g} > requests {wide.loc[m, 'requests']:g}; "
                                "errors are the failed requests among requests")


def _complete_grid(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Every (minute, metric) of the grid: NaN value where the input has none (aggregates say nothing
    about a minute they leave out, so a missing count is NaN, not 0)."""
    metrics = list(dict.fromkeys(frame["metric"].tolist()))
    ordered = [m for m in STANDARD_METRICS if m in metrics] + sorted(m for m in metrics if m not in STANDARD_METRICS)
    full = pd.MultiIndex.from_product([np.arange(n), ordered], names=["minute", "metric"])
    out = frame.set_index(["minute", "metric"]).reindex(full).reset_index()
    return _minutes_frame(out)


def _minutes_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The canonical minutes table: minute (int64), metric (str), value, count (float); sorted by metric order."""
    order = {m: i for i, m in enumerate(STANDARD_METRICS)}
    df = df.copy()
    df["minute"] = df["minute"].astype(np.int64)
    df["metric"] = df["metric"].astype(str)
    df["value"] = df["value"].astype(float)
    df["count"] = df["count"].astype(float)
    rank = df["metric"].map(lambda m: order.get(m, len(order)))
    df = df.assign(_rank=rank).sort_values(["_rank", "metric", "minute"], kind="stable")
    return df.drop(columns="_rank").reset_index(drop=True)[["minute", "metric", "value", "count"]]


# ------------------------------------------------------------------------------------------ Prometheus


@dataclass
class _Series:
    name: str  # __name__, or the mapping key / file stem for expressions
    labels: dict[str, str]
    t: np.ndarray
    v: np.ndarray
    source: str
    key: str  # mapping key or file stem


def _load_prom_file(path: Path, key: str) -> list[_Series]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        raise _fail(path, "file is empty; expected a Prometheus query_range JSON response")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); expected a Prometheus "
                          "query_range response") from None
    if isinstance(doc, dict) and doc.get("status") == "error":
        raise _fail(path, f"Prometheus returned an error: {doc.get('errorType', '')} {doc.get('error', '')}".strip())
    data = doc.get("data", doc) if isinstance(doc, dict) else {"resultType": "matrix", "result": doc}
    if not isinstance(data, dict) or "result" not in data:
        raise _fail(path, "field 'data.result' missing; expected a Prometheus query_range response "
                          '{"status": "success", "data": {"resultType": "matrix", "result": [...]}}')
    rtype = data.get("resultType", "matrix")
    if rtype != "matrix":
        raise _fail(path, f"field 'data.resultType': {rtype!r} is not allowed; expected 'matrix' "
                          "(use /api/v1/query_range, not /api/v1/query)")
    result = data["result"]
    if not isinstance(result, list):
        raise _fail(path, "field 'data.result' must be a list of series")
    out = []
    for i, series in enumerate(result):
        if not isinstance(series, dict) or not isinstance(series.get("values"), list):
            raise _fail(path, f"field 'data.result[{i}].values' missing; a matrix series has 'metric' and 'values'")
        labels = {str(k): str(v) for k, v in (series.get("metric") or {}).items()}
        try:
            pts = np.array([(float(p[0]), float(p[1])) for p in series["values"]], dtype=float).reshape(-1, 2)
        except (TypeError, ValueError, IndexError):
            bad = next((p for p in series["values"]
                        if not (isinstance(p, list) and len(p) == 2 and _floatable(p[0]) and _floatable(p[1]))),
                       None)
            raise _fail(path, f"field 'data.result[{i}].values': {bad!r} is not a [timestamp, \"value\"] pair") from None
        if len(pts) == 0:
            continue
        if not np.isfinite(pts[:, 0]).all():
            raise _fail(path, f"field 'data.result[{i}].values': non-finite timestamp; expected epoch seconds")
        order = np.argsort(pts[:, 0], kind="stable")
        pts = pts[order]
        name = labels.pop("__name__", "") or key
        out.append(_Series(name, labels, pts[:, 0], pts[:, 1], str(path), key))
    return out


def _floatable(x: Any) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


def _prom_files(source: Any) -> list[tuple[Path, str]]:
    if isinstance(source, Mapping):
        files = []
        for key, value in source.items():
            p = Path(value)
            if not p.is_file():
                raise _fail(p, f"no such file (Prometheus query {key!r})")
            files.append((p, str(key)))
        if not files:
            raise CanaryError("empty mapping of Prometheus files; give metric name -> query_range JSON file")
        return files
    path = Path(source)
    if path.name.lower().endswith((".yaml", ".yml")):
        return _prom_files(_load_mapping(path))
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise _fail(path, "no *.json files; expected Prometheus query_range responses, one per query")
        return [(f, f.stem) for f in files]
    return [(path, path.stem)]


def _load_mapping(path: Path) -> dict[str, Path]:
    """A YAML mapping metric name -> Prometheus file (paths relative to the YAML file)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(path, f"cannot read the mapping of Prometheus files: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, Mapping) or not doc or not all(isinstance(v, str) for v in doc.values()):
        raise _fail(path, "expected a mapping metric name -> Prometheus query_range JSON file, e.g. "
                          "{requests: requests.json, latency: latency_bucket.json}")
    return {str(k): (path.parent / v) for k, v in doc.items()}


def _unit_of(name: str, latency_unit: str | None, source: str) -> float:
    for word, unit in (("_nanoseconds", "ns"), ("_microseconds", "us"), ("_milliseconds", "ms"), ("_seconds", "s"),
                       ("_ms", "ms"), ("_us", "us")):
        if word in name:
            return LATENCY_UNITS[unit]
    if latency_unit is None:
        raise _fail(source, f"series {name!r}: its unit is not in its name (_seconds, _milliseconds); "
                            "pass --latency-unit s|ms|us|ns")
    return LATENCY_UNITS[latency_unit]


def _counter_increments(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(end time, increment) of each sample interval, counter resets undone as Prometheus's ``increase`` does."""
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    if len(v) < 2:
        return np.empty(0), np.empty(0)
    dv = np.diff(v)
    dv = np.where(dv < 0, v[1:], dv)  # a reset: the counter restarted from 0
    return t[1:], dv


def _bin_increments(t_end: np.ndarray, inc: np.ndarray, start: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum increments into minutes (an interval ending at t belongs to the minute containing t - 0);
    returns (sums, covered) where covered marks minutes some interval ended in."""
    minute = np.ceil((t_end - start) / 60.0 - 1e-9).astype(np.int64) - 1
    minute = np.clip(minute, 0, n - 1)
    sums = np.bincount(minute, weights=inc, minlength=n)[:n]
    covered = np.bincount(minute, minlength=n)[:n] > 0
    return sums, covered


def _read_prometheus(source: Any, *, name: str, latency_unit: str | None) -> _Raw:
    files = _prom_files(source)
    series: list[_Series] = []
    for path, key in files:
        series.extend(_load_prom_file(path, key))
    label = str(source) if not isinstance(source, Mapping) else ", ".join(str(p) for p, _ in files)
    if not series:
        raise _fail(label, "no series with samples; an arm needs at least one")
    first = min(float(s.t[0]) for s in series)
    # a counter's last sample closes the minute before it: (t - 60, t] belongs to the earlier minute
    last = max(float(s.t[-1]) for s in series) - 1e-6
    if not any(np.isfinite(s.v).any() for s in series):
        raise _fail(label, "every sample is NaN; an arm needs at least one value")

    buckets = [s for s in series if "le" in s.labels]
    coded = [s for s in series if "le" not in s.labels and any(k in s.labels for k in _CODE_LABELS)
             and s.name.endswith(("_total", "_count"))]
    rest = [s for s in series if s not in buckets and s not in coded]
    for s in buckets:
        try:
            float(s.labels["le"])
        except ValueError:
            raise _fail(s.source, f"series {s.name!r}: label le={s.labels['le']!r} is not a number") from None

    def build(start: float, n: int) -> ArmData:
        rows: list[pd.DataFrame] = []
        have: set[str] = set()

        def add(metric: str, values: np.ndarray, count: np.ndarray | None = None) -> None:
            have.add(metric)
            rows.append(pd.DataFrame({"minute": np.arange(n), "metric": metric, "value": values,
                                      "count": np.full(n, np.nan) if count is None else count}))

        if coded:
            req, err, cov = np.zeros(n), np.zeros(n), np.zeros(n, bool)
            for s in coded:
                code = next(s.labels[k] for k in _CODE_LABELS if k in s.labels)
                te, inc = _counter_increments(s.t, s.v)
                sums, c = _bin_increments(te, inc, start, n)
                req += sums
                cov |= c
                if code.startswith("5") or code == "0":
                    err += sums
            add("requests", np.where(cov, req, np.nan), np.where(cov, req, np.nan))
            add("errors", np.where(cov, err, np.nan), np.where(cov, req, np.nan))
        hist = None
        if buckets:
            hist, total = _histograms(buckets, start, n, latency_unit)
            counts = total
            for metric, p in QUANTILES.items():
                vals = np.full(n, np.nan)
                for m, g in hist.groupby("minute", sort=True):
                    vals[int(m)] = histogram_quantile(p, g["le"].to_numpy(), g["count"].to_numpy())
                add(metric, vals, counts)
            if "requests" not in have:
                add("requests", total, total)
        sums = {s.name[: -len("_sum")]: s for s in rest if s.name.endswith("_sum")}
        cnts = {s.name[: -len("_count")]: s for s in rest if s.name.endswith("_count")}
        used: set[int] = set()
        for base in sorted(set(sums) & set(cnts)):
            if not any(w in base for w in ("duration", "latency", "seconds", "milliseconds")):
                continue
            s_sum = [s for s in rest if s.name == base + "_sum"]
            s_cnt = [s for s in rest if s.name == base + "_count"]
            tot_s = _counter_total(s_sum, start, n)
            tot_c = _counter_total(s_cnt, start, n)
            scale = _unit_of(base, latency_unit, s_sum[0].source)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(tot_c > 0, tot_s * scale / np.where(tot_c > 0, tot_c, 1), np.nan)
            add("latency_mean_s", mean, tot_c)
            if "requests" not in have:
                add("requests", tot_c, tot_c)
            used.update(id(s) for s in s_sum + s_cnt)
        groups: dict[str, list[_Series]] = {}
        for s in rest:
            if id(s) in used:
                continue
            groups.setdefault(_metric_name(s), []).append(s)
        for metric in sorted(groups):
            members = groups[metric]
            if metric in have:
                continue
            if members[0].name.endswith(("_total", "_count", "_sum")):
                add(metric, _counter_total(members, start, n))
            else:
                add(metric, _gauge_mean(members, start, n))
        frame = pd.concat(rows, ignore_index=True)
        return ArmData(name, minutes=_complete_grid(frame, n), histograms=hist, source=label)

    return _Raw(name, label, first, last, build)


def _metric_name(s: _Series) -> str:
    """The minutes-table name of a non-histogram series: the mapping key or file stem wins for expressions."""
    lowered = s.name.lower()
    if s.name.endswith("_total") and "request" in lowered and "error" not in lowered:
        return "requests"
    if s.name.endswith("_total") and "error" in lowered:
        return "errors"
    return s.key if s.name == s.key else s.name


def _counter_total(members: list[_Series], start: float, n: int) -> np.ndarray:
    total, cov = np.zeros(n), np.zeros(n, bool)
    for s in members:
        te, inc = _counter_increments(s.t, s.v)
        sums, c = _bin_increments(te, inc, start, n)
        total += sums
        cov |= c
    return np.where(cov, total, np.nan)


def _gauge_mean(members: list[_Series], start: float, n: int) -> np.ndarray:
    """Mean of each series over the minute, then the mean over series (as Kayenta's ``avg()`` wrapper)."""
    acc, k = np.zeros(n), np.zeros(n)
    for s in members:
        ok = np.isfinite(s.v)
        if not ok.any():
            continue
        minute = np.clip(np.floor((s.t[ok] - start) / 60.0 + 1e-9).astype(np.int64), 0, n - 1)
        sums = np.bincount(minute, weights=s.v[ok], minlength=n)[:n]
        cnt = np.bincount(minute, minlength=n)[:n]
        has = cnt > 0
        acc[has] += sums[has] / cnt[has]
        k[has] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, acc / np.where(k > 0, k, 1), np.nan)


def _histograms(buckets: list[_Series], start: float, n: int, latency_unit: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-minute histograms (minute, le seconds, cumulative count) summed over series by ``le``; and the
    per-minute total (the ``+Inf`` bucket), NaN for a minute no sample covers."""
    per_le: dict[float, np.ndarray] = {}
    covered = np.zeros(n, bool)
    for s in buckets:
        scale = _unit_of(s.name, latency_unit, s.source)
        le = float(s.labels["le"]) * scale
        te, inc = _counter_increments(s.t, s.v)
        sums, cov = _bin_increments(te, inc, start, n)
        covered |= cov
        per_le[le] = per_le.get(le, np.zeros(n)) + sums
    les = sorted(per_le)
    if not math.isinf(les[-1]):
        raise _fail(buckets[0].source, f"histogram {buckets[0].name!r} has no le=\"+Inf\" bucket; "
                                       "export every bucket of the histogram")
    mat = np.vstack([per_le[le] for le in les])  # le x minute, cumulative over le
    mat = np.maximum.accumulate(mat, axis=0)
    minute = np.repeat(np.arange(n), len(les))
    hist = pd.DataFrame({"minute": minute.astype(np.int64), "le": np.tile(les, n), "count": mat.T.reshape(-1)})
    hist = hist[np.repeat(covered, len(les))].reset_index(drop=True)
    total = np.where(covered, mat[-1], np.nan)
    return hist, total


# ------------------------------------------------------------------------------------------ run directories


def _is_run_dir(source: Any) -> bool:
    if isinstance(source, Mapping):
        return False
    p = Path(source)
    return p.is_dir() and ((p / "summary.json").is_file() or any(p.glob("attempts.*")))


def _run_summary(path: Path) -> dict[str, Any]:
    f = path / "summary.json"
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(f, f"cannot read the run summary: {exc}") from None


def _run_table(path: Path, table: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        f = path / f"{table}{suffix}"
        if f.is_file():
            return f
    return None


def _pick_versions(path: Path, service: str | None, b: str | None, c: str | None) -> tuple[str, str, str]:
    """Fill in the service and versions to compare from the run summary when not given."""
    summary = _run_summary(path)
    services = {name: list((s.get("versions") or {}).keys()) for name, s in (summary.get("services") or {}).items()}
    if not services:
        if service is None or b is None or c is None:
            raise _fail(path, "no summary.json services; pass --service, --baseline-version and --canary-version")
        return b, c, service
    if service is None:
        multi = [s for s, vs in services.items() if len(vs) >= 2]
        if len(multi) != 1:
            listing = ", ".join(f"{s} ({'/'.join(v)})" for s, v in services.items())
            raise _fail(path, f"--service is needed: pick the service whose versions to compare ({listing})")
        service = multi[0]
    if service not in services:
        raise _fail(path, f"--service {service!r} is not a service of this run; allowed: {', '.join(services)}")
    vs = services[service]
    for opt, v in (("--baseline-version", b), ("--canary-version", c)):
        if v is not None and v not in vs:
            raise _fail(path, f"{opt} {v!r} is not a version of {service}; allowed: {', '.join(vs)}")
    if b is None and c is None:
        if len(vs) != 2:
            raise _fail(path, f"service {service} has versions {', '.join(vs)}; pass --baseline-version and "
                              "--canary-version")
        b, c = vs
    elif b is None or c is None:
        given = b if b is not None else c
        others = [v for v in vs if v != given]
        if len(others) != 1:
            opt = "--baseline-version" if b is None else "--canary-version"
            raise _fail(path, f"{opt} is needed; versions of {service}: {', '.join(vs)}")
        b, c = (others[0], c) if b is None else (b, others[0])
    if b == c:
        raise _fail(path, f"--baseline-version and --canary-version are both {b!r}; compare two versions")
    return b, c, service


def _read_run(path: Path, *, name: str, service: str | None, version: str | None) -> _Raw:
    if service is None or version is None:
        b, c, service = _pick_versions(path, service, None, None)
        version = b if name == "baseline" else c
    summary = _run_summary(path)
    warmup = float(summary.get("warmup_s") or 0.0)
    att = _run_table(path, "attempts")
    if att is not None:
        return _attempts_raw(_read_table(att), att, name=name, service=service, version=version, warmup=warmup,
                             source=f"{path} ({service} {version})")
    ts_file = _run_table(path, "timeseries")
    if ts_file is None:
        raise _fail(path, "no attempts or timeseries table; run `meshsim run SCENARIO -o DIR` (--record full for "
                          "latencies)")
    df = _read_table(ts_file)
    rows = df[(df["service"].astype(str) == service) & (df["version"].astype(str) == version)]
    rows = rows[rows["t_s"].to_numpy(dtype=float) >= warmup]
    if rows.empty:
        raise _fail(ts_file, f"no rows for {service} version {version!r}")
    t = rows["t_s"].to_numpy(dtype=float)
    done = rows["completions"].to_numpy(dtype=float)
    errs = rows["errors"].to_numpy(dtype=float)
    first, last = float(t[0]), float(t[-1])
    source = f"{path} ({service} {version})"

    def build(start: float, n: int) -> ArmData:
        minute = np.clip(np.floor((t - start) / 60.0).astype(np.int64), 0, n - 1)
        req = np.bincount(minute, weights=done, minlength=n)[:n]
        err = np.bincount(minute, weights=errs, minlength=n)[:n]
        cov = np.bincount(minute, minlength=n)[:n] > 0
        frame = pd.concat([
            pd.DataFrame({"minute": np.arange(n), "metric": "requests", "value": np.where(cov, req, np.nan),
                          "count": np.where(cov, req, np.nan)}),
            pd.DataFrame({"minute": np.arange(n), "metric": "errors", "value": np.where(cov, err, np.nan),
                          "count": np.where(cov, req, np.nan)}),
        ], ignore_index=True)
        return ArmData(name, minutes=_complete_grid(frame, n), source=source)

    return _Raw(name, source, first, last, build)


def _attempts_raw(df: pd.DataFrame, where: Any, *, name: str, service: str, version: str, warmup: float,
                  source: str) -> _Raw:
    """One version's attempts of a meshsim attempts table (``RunResult.attempts``) as an arm's raw requests."""
    missing = [c for c in ("service", "version", "start_s", "latency_s", "status") if c not in df.columns]
    if missing:
        raise _fail(where, f"missing column(s) {', '.join(missing)}; not an attempts table of meshsim run -o")
    rows = df[(df["service"].astype(str) == service) & (df["version"].astype(str) == version)]
    if rows.empty:
        present = sorted({f"{s}/{v}" for s, v in zip(df["service"].astype(str), df["version"].astype(str),
                                                      strict=True)})
        raise _fail(where, f"no attempts to {service} version {version!r}; present: {', '.join(present)}")
    start_s = rows["start_s"].to_numpy(dtype=float)
    lat = rows["latency_s"].to_numpy(dtype=float)
    status = rows["status"].to_numpy(dtype=np.int64)
    keep = (start_s >= warmup) & ~((status == 0) & ~np.isfinite(lat))  # unfinished at the end: censored
    if not keep.any():
        raise _fail(where, f"no finished attempts to {service} version {version!r} after the warm-up")
    return _requests_raw(start_s[keep], lat[keep], status[keep], name=name, source=source)


def arms_from_attempts(
    attempts: pd.DataFrame,
    *,
    service: str,
    baseline_version: str,
    canary_version: str,
    start: float = 0.0,
    until: float | None = None,
    source: str = "run",
) -> tuple[ArmData, ArmData]:
    """Both arms from an in-memory meshsim attempts table (``RunResult.attempts``).

    The same path as a run directory read by :func:`read_arms` (``fmt="run"``):
    the attempts to each version of ``service`` that started at or after
    ``start`` (the warm-up; unfinished attempts are censored) are that arm's
    requests, and minute 0 starts **at** ``start`` (not at the first attempt),
    so minute ``k`` is ``[start + 60 k, start + 60 (k + 1))`` of the run.

    Parameters
    ----------
    attempts
        A ``RunResult.attempts`` frame (columns ``service``, ``version``,
        ``start_s``, ``latency_s``, ``status``).
    service, baseline_version, canary_version
        The service and its two versions to compare.
    start
        Run time (s) of minute 0; earlier attempts are dropped.
    until
        Run time (s) the grid ends at (default: the last attempt).
    source
        Where the table came from, for messages.
    """
    raws = [_attempts_raw(attempts, source, name=name, service=service, version=version, warmup=start,
                          source=f"{source} ({service} {version})")
            for name, version in (("baseline", baseline_version), ("canary", canary_version))]
    last = max(r.last for r in raws) if until is None else float(until) - 1e-9
    n = _n_minutes(start, last, start)
    return raws[0].build(start, n), raws[1].build(start, n)


def _sorted_quantile(sorted_values: np.ndarray, p: float) -> float:
    """numpy's default (linear, R-7) quantile of an already sorted array."""
    n = len(sorted_values)
    h = (n - 1) * p
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo]))
