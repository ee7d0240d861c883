"""Capacity sweeps: a scenario run over a grid of field values, replicated, as a tidy table.

Public API
----------
parse_values(spec) -> list
    ``"2..12"``, ``"2..12:2"``, ``"500/s..2k/s:500/s"``, ``"500/s,1k/s,2k/s"`` -> the values.
parse_grid(["services.reviews.replicas=2..12", ...], scenario=None) -> {path: [values]}
    Every ``--set``, each value checked against the scenario model.
grid_points(grid) -> [{path: value, ...}, ...]
    The cartesian product, the last path varying fastest.
sweep(scenario, grid, *, replications=None, ...) -> SweepResult
    Run every grid point's replications (serial, process pool or Dask) and
    tabulate them: ``SweepResult.table`` has one row per grid point and
    metric scope (end to end, each service, each version of a service that
    has several).

Seeds
-----
By default every grid point runs on **common random numbers**: replication
``r`` of every point uses the same seed (``seed=`` or the point's scenario
seed) and index ``r``, so points differ by the swept values and not by
their draws (the curve across points is smooth, and a difference between
two points is mostly the change, not noise). ``seeds="independent"`` derives
a seed from the base seed and the point's values instead. Either way the
seed depends on what is run, never on the order tasks are run in, so
serial, pool and Dask give byte-identical tables.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from meshsim._exceptions import ConfigError
from meshsim.experiments._executor import Executor, SimTask

__all__ = [
    "parse_values",
    "parse_set",
    "parse_grid",
    "check_effective",
    "grid_points",
    "point_seed",
    "sweep",
    "SweepResult",
    "tabulate",
    "write_table",
    "LATENCY_METRICS",
    "COUNTERS",
]

#: the ``latency_s`` quantiles (and mean) a table row carries, each with a CI
LATENCY_METRICS: tuple[str, ...] = ("mean", "p50", "p90", "p99")
#: the Envoy counters a service row carries (mean per replication over the window)
COUNTERS: tuple[str, ...] = (
    "upstream_rq_total",
    "upstream_rq_5xx",
    "upstream_rq_retry",
    "upstream_rq_retry_overflow",
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "upstream_rq_pending_overflow",
    "upstream_cx_overflow",
    "outlier_detection.ejections_enforced_total",
)
#: most values one ``--set`` may expand to
MAX_VALUES = 10_000

_ALLOWED = "allowed: a list a,b,c; a range a..b or a..b:step (both ends the same unit, e.g. 500/s..2k/s:500/s)"
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE_RE = re.compile(rf"^\s*({_NUM})(\S*?)\s*\.\.\s*({_NUM})(\S*?)\s*(?::\s*({_NUM})(\S*?))?\s*$")


# ---------------------------------------------------------------------------- grid parsing
def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes (``[1, 2],3`` -> two items)."""
    items: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur))
    return items


def _scalar(text: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text.strip()
    return text.strip() if value is None else value


def _range(m: re.Match, spec: str) -> list[Any]:
    a_txt, a_unit, b_txt, b_unit, step_txt, step_unit = m.groups()
    if a_unit != b_unit or (step_txt is not None and step_unit not in ("", a_unit)):
        raise ValueError(f"the range's ends and step must share one unit ({_ALLOWED})")
    try:
        a, b = Decimal(a_txt), Decimal(b_txt)
        step = Decimal(step_txt) if step_txt is not None else Decimal(1)
    except InvalidOperation:  # pragma: no cover - the regex admits numbers only
        raise ValueError(_ALLOWED) from None
    if step <= 0:
        raise ValueError(f"the step must be > 0 ({_ALLOWED})")
    if b < a:
        raise ValueError(f"the range is empty: {a_txt} > {b_txt} ({_ALLOWED})")
    count = int((b - a) / step) + 1
    if count > MAX_VALUES:
        raise ValueError(f"{count} values; at most {MAX_VALUES} per --set")
    nums = [a + i * step for i in range(count)]
    integral = all(x == x.to_integral_value() for x in (a, b, step)) and "." not in a_txt + b_txt
    if a_unit:
        return [f"{_dec_text(x)}{a_unit}" for x in nums]
    return [int(x) if integral else float(x) for x in nums]


def _dec_text(x: Decimal) -> str:
    if x == x.to_integral_value():
        return str(int(x))
    return format(x.normalize(), "f")


def parse_values(spec: str) -> list[Any]:
    """The values of one ``--set`` right-hand side.

    ``a..b`` is inclusive with step 1, ``a..b:step`` takes a step; the ends
    may carry a unit (the same on both, and on the step if it has one), kept
    as text for the scenario model to validate: ``500/s..2k/s`` is refused
    (two units) but ``1k/s..3k/s`` gives ``1k/s, 2k/s, 3k/s``. A
    comma-separated list gives its items, each read as YAML (``3`` is an
    int, ``500/s`` stays a string, ``[a, b]`` is a list).

    Raises
    ------
    ValueError
        The spec is empty or a range is malformed; the message says what is allowed.

    Examples
    --------
    >>> parse_values("2..6:2")
    [2, 4, 6]
    >>> parse_values("500/s,1k/s")
    ['500/s', '1k/s']
    >>> parse_values("0.1..0.3:0.1")
    [0.1, 0.2, 0.3]
    >>> parse_values("500/s..1500/s:500/s")
    ['500/s', '1000/s', '1500/s']
    """
    if not str(spec).strip():
        raise ValueError(f"no values ({_ALLOWED})")
    out: list[Any] = []
    for item in _split_top(str(spec)):
        if not item.strip():
            raise ValueError(f"an empty item in {spec!r} ({_ALLOWED})")
        m = _RANGE_RE.match(item)
        if m:
            out.extend(_range(m, item))
        elif ".." in item and not item.strip().startswith(("[", "{", "'", '"')):
            raise ValueError(f"{item.strip()!r} is not a range ({_ALLOWED})")
        else:
            out.append(_scalar(item))
    if len(out) > MAX_VALUES:
        raise ValueError(f"{len(out)} values; at most {MAX_VALUES} per --set")
    return out


def parse_set(text: str) -> tuple[str, list[Any]]:
    """``"services.reviews.replicas=2..12"`` -> ``("services.reviews.replicas", [2, ..., 12])``."""
    path, sep, spec = str(text).partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set {text!r}: expected PATH=VALUES, e.g. services.reviews.replicas=2..12 ({_ALLOWED})")
    try:
        values = parse_values(spec)
    except ValueError as exc:
        raise ConfigError(f"--set {text!r}: {exc}") from None
    return path.strip(), values


def _strip_source(message: str, scenario) -> str:
    src = getattr(scenario, "source", "") or ""
    return message[len(src) + 2:] if src and message.startswith(src + ": ") else message


def parse_grid(sets: Iterable[str] | Mapping[str, Sequence[Any] | str], scenario=None) -> dict[str, list[Any]]:
    """The grid of several ``--set`` options, every value checked against ``scenario``.

    Parameters
    ----------
    sets
        ``["PATH=VALUES", ...]`` as typed, or ``{path: values}`` where values
        is a list or a spec string.
    scenario
        When given, each value is applied alone with ``apply_overrides`` and
        a refusal is reported as ``--set PATH=VALUE: <what is allowed>``.

    Raises
    ------
    ConfigError
        One line naming the ``--set`` and what is allowed.
    """
    from meshsim.config import apply_overrides

    grid: dict[str, list[Any]] = {}
    items: Iterable[tuple[str, Any]]
    if isinstance(sets, Mapping):
        items = sets.items()
    else:
        items = (parse_set(s) for s in sets)
    for path, values in items:
        if isinstance(values, str):
            try:
                values = parse_values(values)
            except ValueError as exc:
                raise ConfigError(f"--set {path}={values}: {exc}") from None
        values = list(values)
        if not values:
            raise ConfigError(f"--set {path}=: no values ({_ALLOWED})")
        if path in grid:
            raise ConfigError(f"--set {path}: given twice; list every value in one --set ({_ALLOWED})")
        grid[path] = _normalize(values)
    if not grid:
        raise ConfigError(f"no --set given: a sweep needs at least one PATH=VALUES ({_ALLOWED})")
    if scenario is not None:
        # the single-valued sets hold at every point: each swept value is checked with them applied
        fixed = {p: v[0] for p, v in grid.items() if len(v) == 1}
        base = scenario
        if fixed:
            try:
                base = apply_overrides(scenario, fixed)
            except ConfigError as exc:
                sets_text = " ".join(f"--set {p}={v}" for p, v in fixed.items())
                raise ConfigError(f"{sets_text}: {_strip_source(str(exc), scenario)}") from None
        for path, values in grid.items():
            if len(values) == 1:
                continue
            for v in values:
                try:
                    apply_overrides(base, {path: v})
                except ConfigError as exc:
                    raise ConfigError(f"--set {path}={v}: {_strip_source(str(exc), scenario)}") from None
            check_effective(base, path, values, option="--set")
    return grid


def check_effective(scenario, path: str, values: Sequence[Any], option: str = "--set") -> None:
    """Refuse a service-level field that every version of the service overrides (it would change nothing).

    ``services.reviews.replicas`` on a service whose versions each set
    ``replicas`` sweeps a value the engine never reads.
    """
    from meshsim.config import apply_overrides

    parts = path.split(".")
    if len(parts) != 3 or parts[0] != "services" or len(values) < 2:
        return
    service = parts[1]
    spec = scenario.services.get(service)
    if spec is None or not getattr(spec, "versions", None):
        return
    first = apply_overrides(scenario, {path: values[0]}).services[service].resolved_versions(service)
    last = apply_overrides(scenario, {path: values[-1]}).services[service].resolved_versions(service)
    if first == last:
        names = ", ".join(first)
        raise ConfigError(f"{option} {path}: every version of {service} ({names}) sets its own {parts[2]}, so "
                          f"this changes nothing; vary services.{service}.versions.<version>.{parts[2]} instead")


def _normalize(values: list[Any]) -> list[Any]:
    """One type per column: all ints, all numbers (floats), or everything as text."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return values
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    if all(isinstance(v, str) for v in values):
        return values
    return [v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            for v in values]


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in order (the last path varies fastest)."""
    paths = list(grid)
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*(grid[p] for p in paths))]


def point_seed(base: int, point: Mapping[str, Any]) -> int:
    """A seed from the base seed and a grid point's values (``seeds="independent"``), order-free."""
    text = json.dumps({"seed": int(base), "point": {k: point[k] for k in sorted(point)}}, sort_keys=True,
                      default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


# ---------------------------------------------------------------------------- results
def _mean_ci(values: Sequence[float], confidence: float) -> tuple[float, float, float]:
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return math.nan, math.nan, math.nan
    m = float(vals.mean())
    if len(vals) < 2:
        return m, math.nan, math.nan
    half = float(_st.t.ppf(0.5 + confidence / 2, len(vals) - 1)) * float(vals.std(ddof=1)) / math.sqrt(len(vals))
    return m, m - half, m + half


def _scopes(summary: dict) -> list[tuple[str, str, str, dict, list[str]]]:
    """(scope, service, version, block, stats keys) for each row of one grid point."""
    out: list[tuple[str, str, str, dict, list[str]]] = [("end_to_end", "", "", summary["end_to_end"], [])]
    stats = summary.get("stats", {})
    for sname, svc in summary.get("services", {}).items():
        versions = svc.get("versions", {})
        # every cluster of the service: one per version, and ``service|*`` when callers do not split by subset
        keys = sorted({k for k in stats if k.split("|", 1)[0] == sname} | {f"{sname}|{v}" for v in versions})
        out.append(("service", sname, "", svc, keys))
        if len(versions) > 1:
            for vname, ver in versions.items():
                out.append(("version", sname, vname, ver, [f"{sname}|{vname}"]))
    return out


def tabulate(points: Sequence[Mapping[str, Any]], summaries: Sequence[Sequence[dict]],
             confidence: float = 0.95) -> pd.DataFrame:
    """The tidy table of a sweep: one row per point and scope.

    Parameters
    ----------
    points
        The grid points (``{path: value}``), in order.
    summaries
        For each point, its replications' summaries (``RunResult.summary``).
    confidence
        Level of the t intervals (``*_low``, ``*_high``; NaN with one replication).

    Returns
    -------
    pandas.DataFrame
        Columns: ``point``, one per swept path, ``scope`` (``end_to_end``,
        ``service``, ``version``), ``service``, ``version``, ``replications``,
        ``requests``, ``rps``, ``success_rate``, ``mean_s``, ``p50_s``,
        ``p90_s``, ``p99_s``, ``utilization`` (the mean over replications;
        each but ``requests`` with ``_low``/``_high``), then the Envoy
        counters of :data:`COUNTERS` (service and version rows; mean per
        replication over the measurement window; a service row adds up all
        its clusters, the whole-service one (``service|*``) included, so it
        can exceed the sum of its version rows).
    """
    rows = []
    paths = list(points[0]) if points else []
    for i, (point, reps) in enumerate(zip(points, summaries, strict=True)):
        scopes_per_rep = [_scopes(s) for s in reps]
        for j, (scope, service, version, _, keys) in enumerate(scopes_per_rep[0]):
            blocks = [sc[j][3] for sc in scopes_per_rep]
            row: dict[str, Any] = {"point": i, **{p: point[p] for p in paths},
                                   "scope": scope, "service": service, "version": version,
                                   "replications": len(reps),
                                   "requests": float(np.mean([b.get("requests", 0) for b in blocks]))}

            def put(name: str, vals: list[float], row: dict = row) -> None:
                m, lo, hi = _mean_ci(vals, confidence)
                row[name], row[f"{name}_low"], row[f"{name}_high"] = m, lo, hi

            put("rps", [b.get("throughput_rps", math.nan) for b in blocks])
            put("success_rate", [b.get("success_rate", math.nan) for b in blocks])
            for q in LATENCY_METRICS:
                put(f"{q}_s", [b.get("latency_s", {}).get(q, math.nan) for b in blocks])
            put("utilization", [b.get("utilization", math.nan) for b in blocks])
            for name in COUNTERS:
                col = name.rsplit(".", 1)[-1]
                if not keys:
                    row[col] = math.nan
                    continue
                row[col] = float(np.mean([sum(s.get("stats", {}).get(k, {}).get(name, 0) for k in keys)
                                          for s in reps]))
            rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class SweepResult:
    """A sweep's outcome.

    Attributes
    ----------
    grid
        ``{path: values}`` as swept.
    points
        The grid points, in table order.
    summaries
        Per point, the summaries of its replications.
    table
        The tidy table (:func:`tabulate`).
    runs
        Simulations run (points x replications).
    executor
        ``"serial"``, ``"processes"`` or ``"dask"``.
    """

    grid: dict[str, list[Any]]
    points: list[dict[str, Any]]
    summaries: list[list[dict]]
    table: pd.DataFrame
    runs: int
    executor: str = "serial"
    confidence: float = 0.95
    seeds: str = "common"
    meta: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | Path) -> Path:
        """Write the table as CSV, or Parquet when the name ends with ``.parquet``."""
        return write_table(self.table, path)

    def __repr__(self) -> str:
        return (f"SweepResult(points={len(self.points)}, runs={self.runs}, rows={len(self.table)}, "
                f"executor={self.executor!r})")


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """CSV (``.csv``, or any other name) or Parquet (``.parquet``/``.pq``, needs pyarrow)."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            table.to_parquet(path, index=False)
        except ImportError as exc:
            raise ConfigError(f"-o {path}: Parquet needs pyarrow (pip install 'meshsim[parquet]')") from exc
    else:
        table.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------- the sweep
def sweep(scenario, grid: Mapping[str, Sequence[Any] | str] | Iterable[str], *, replications: int | None = None,
          seed: int | None = None, seeds: str = "common", confidence: float = 0.95, workers: int | None = None,
          scheduler: str | None = None, progress: Callable[[int, int], Any] | bool | None = None,
          overrides: Mapping[str, Any] | None = None) -> SweepResult:
    """Run ``scenario`` at every grid point, ``replications`` times each, and tabulate.

    Parameters
    ----------
    scenario
        A validated ``meshsim.config.Scenario``.
    grid
        ``{path: values or spec}`` or ``["PATH=SPEC", ...]`` (see :func:`parse_grid`).
    replications
        Per point (default: the scenario's ``replications``); two or more give CIs.
    seed
        Base seed (default: each point's scenario seed).
    seeds
        ``"common"`` (common random numbers across points) or ``"independent"``.
    confidence
        Level of the t intervals.
    workers, scheduler, progress
        Where to run (see :mod:`meshsim.experiments._executor`).
    overrides
        Fields set at every point (``{"record": "summary"}``), before the grid's.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> from meshsim.config import parse_scenario
    >>> scn = parse_scenario({"name": "one", "duration": "2s", "record": "summary",
    ...     "services": {"api": {"latency": {"type": "exponential", "mean": "5ms"}}},
    ...     "traffic": [{"name": "users", "to": "api", "rate": "100/s"}]})
    >>> res = sweep(scn, ["services.api.workers=1,2"], replications=2, workers=1, progress=False)
    >>> res.table[res.table.scope == "end_to_end"]["services.api.workers"].tolist()
    [1, 2]
    """
    from meshsim.config import apply_overrides

    if seeds not in ("common", "independent"):
        raise ConfigError(f"--seeds {seeds!r}: must be one of {{'common', 'independent'}}")
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence {confidence!r}: must be in (0, 1)")
    base = apply_overrides(scenario, dict(overrides)) if overrides else scenario
    grid = parse_grid(grid, base)
    points = grid_points(grid)
    n = int(replications if replications is not None else getattr(base, "replications", 1) or 1)
    if n < 1:
        raise ConfigError(f"--replications {n}: must be >= 1")
    tasks: list[SimTask] = []
    for point in points:
        try:
            scn = apply_overrides(base, point)
        except ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise ConfigError(f"grid point {where}: {_strip_source(str(exc), base)}") from None
        s = int(seed if seed is not None else scn.seed)
        if seeds == "independent":
            s = point_seed(s, point)
        tasks.extend(SimTask(scn, s, r) for r in range(n))
    with Executor(workers=workers, scheduler=scheduler, progress=progress, label="sweep") as ex:
        flat = ex.map(tasks)
        kind = ex.kind
    summaries = [flat[i * n:(i + 1) * n] for i in range(len(points))]
    table = tabulate(points, summaries, confidence)
    return SweepResult(grid=grid, points=points, summaries=summaries, table=table, runs=len(tasks),
                       executor=kind, confidence=confidence, seeds=seeds)
