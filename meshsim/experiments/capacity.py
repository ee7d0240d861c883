"""SLO search: the fewest replicas (or the highest rate) that meets an SLO with a stated confidence.

Public API
----------
parse_slo("p99<=200ms") -> SLO
    An objective on one metric of one scope.
find_capacity(scenario, vary, values, slos, *, maximize=False, ...) -> CapacityResult
    The search; ``CapacityResult.render()`` is the text the CLI prints.
knee(xs, ys) -> index | None
    The knee of a latency curve (maximum distance below the chord).

When a point meets the SLOs
---------------------------
Each SLO is judged on the mean over replications of its metric (the p99 of
a replication is that replication's p99) with a **one-sided t bound** at
``confidence``: ``p99<=200ms`` is *met* when ``mean + t * s / sqrt(n) <=
200 ms``, *violated* when ``mean - t * s / sqrt(n) > 200 ms``, and
*undecided* otherwise. A point passes when every SLO is met, fails when one
is violated. An undecided point gets more replications (doubling from
``min_replications`` up to ``max_replications``); still undecided there, it
counts as failing: the answer is a value that was *shown* to meet the SLO.

The search
----------
The varied values are taken in the given order and the SLO is assumed
monotone along them: more replicas never hurt, a higher rate never helps.
With ``maximize=False`` the answer is the first value that passes, with
``maximize=True`` the last value before the first failure. Galloping from
the start (values 0, 1, 3, 7, 15, ... by index) brackets the boundary in
``log2`` probes, bisection narrows the bracket, and replications are added
only where the bound is undecided, i.e. near the boundary. Far from it,
``min_replications`` runs decide a point. The result reports the runs used
next to the ``len(values) * max_replications`` runs of the full grid, and
notes any evaluated point that contradicts monotonicity.

Replication ``r`` of every point runs on the same seed and index (common
random numbers, as in :func:`meshsim.experiments.sweep.sweep`), so the
answer does not depend on the executor or on the order of probes.

The knee
--------
The knee of the latency curve is the varied value at which the curve bends
most: with ``x`` and the latency scaled to ``[0, 1]`` over the stable
evaluated points (busiest service's utilization below 0.95), the point
farthest below the chord joining the first and the last (a convex curve lies
below its chord; this is the Kneedle "difference curve" maximum). Past the
knee, extra capacity buys little latency; before it, latency climbs steeply.
A few extra points (``knee_points``, at ``min_replications``) are evaluated
across the range so the curve has a shape; they are counted separately.

References
----------
.. [1] V. Satopää, J. Albrecht, D. Irwin, B. Raghavan, "Finding a 'Kneedle' in a
       haystack: detecting knee points in system behavior", ICDCS Workshops, 2011.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from meshsim._exceptions import ConfigError
from meshsim.experiments._executor import Executor, SimTask
from meshsim.experiments.sweep import _normalize, _strip_source, check_effective, parse_values
from meshsim.report._curves import knee

__all__ = ["SLO", "parse_slo", "find_capacity", "CapacityResult", "knee", "METRICS", "STABLE_UTILIZATION"]

#: metric name -> (where in a summary scope block, kind); kinds: latency (seconds), fraction, rate
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "mean": (("latency_s", "mean"), "latency"),
    "p50": (("latency_s", "p50"), "latency"),
    "p90": (("latency_s", "p90"), "latency"),
    "p99": (("latency_s", "p99"), "latency"),
    "p999": (("latency_s", "p999"), "latency"),
    "success": (("success_rate",), "fraction"),
    "utilization": (("utilization",), "fraction"),
    "rps": (("throughput_rps",), "rate"),
}
#: points whose busiest service is at least this busy are left out of the knee's curve (unstable)
STABLE_UTILIZATION = 0.95

_SLO_RE = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*(.+?)\s*$")


@dataclass(frozen=True)
class SLO:
    """An objective: ``metric op target`` (``p99 <= 0.2``), target in seconds, a fraction or per second.

    ``<`` and ``>`` are read as ``<=`` and ``>=`` (the bound is continuous).
    """

    metric: str
    op: str
    target: float
    text: str

    @property
    def upper(self) -> bool:
        """True for ``<=`` (the metric must stay below the target)."""
        return self.op.startswith("<")

    def value(self, block: dict) -> float:
        """The metric in one scope block of a summary (NaN when absent)."""
        node: Any = block
        for key in METRICS[self.metric][0]:
            node = node.get(key) if isinstance(node, dict) else None
        return float(node) if isinstance(node, (int, float)) else math.nan

    def __str__(self) -> str:
        return self.text


def parse_slo(text: str) -> SLO:
    """``"p99<=200ms"``, ``"success>=99.9%"``, ``"utilization<=80%"``, ``"rps>=1k/s"``.

    Examples
    --------
    >>> parse_slo("p99<=200ms").target
    0.2
    >>> round(parse_slo("success>=99.9%").target, 6)
    0.999
    """
    from meshsim.units import parse_duration, parse_fraction, parse_rate

    allowed = (f"allowed: METRIC<=TARGET or METRIC>=TARGET, METRIC one of {{{', '.join(METRICS)}}}, "
               "e.g. p99<=200ms, success>=99.9%")
    m = _SLO_RE.match(str(text))
    if not m:
        raise ConfigError(f"--slo {text!r}: not an objective ({allowed})")
    metric, op, target = m.groups()
    if metric not in METRICS:
        raise ConfigError(f"--slo {text!r}: unknown metric {metric!r} ({allowed})")
    kind = METRICS[metric][1]
    try:
        value = {"latency": parse_duration, "fraction": parse_fraction, "rate": parse_rate}[kind](target)
    except ValueError as exc:
        raise ConfigError(f"--slo {text!r}: {exc}") from None
    return SLO(metric, op, float(value), str(text).strip())


def _scope_block(summary: dict, scope: str) -> dict:
    if scope == "end_to_end":
        return summary["end_to_end"]
    service, _, version = scope.partition("/")
    block = summary["services"][service]
    return block["versions"][version] if version else block


def _check_scope(scenario, scope: str, slos: Sequence[SLO]) -> None:
    if scope == "end_to_end":
        for s in slos:
            if s.metric == "utilization":
                raise ConfigError(f"--slo {s.text}: utilization is per service; give --scope SERVICE[/VERSION]")
        return
    service, _, version = scope.partition("/")
    if service not in scenario.services:
        raise ConfigError(f"--scope {scope!r}: no service {service!r} (allowed: end_to_end, "
                          f"{', '.join(scenario.services)}, or SERVICE/VERSION)")
    if version:
        names = scenario.services[service].version_names()
        if version not in names:
            raise ConfigError(f"--scope {scope!r}: service {service!r} has no version {version!r} "
                              f"(allowed: {', '.join(names)})")


# ---------------------------------------------------------------------------- judging a point
@dataclass
class _Point:
    index: int
    value: Any
    scenario: Any
    summaries: list[dict] = field(default_factory=list)
    verdict: str = ""  # pass | fail | undecided
    reason: str = ""
    phase: str = "search"


def _bound(values: list[float], confidence: float) -> tuple[float, float, float]:
    """(mean, half width of the one-sided bound) — half is inf with fewer than 2 finite values."""
    vals = np.asarray(values, dtype=float)
    if len(vals) == 0 or not np.isfinite(vals).all():
        return math.nan, math.inf, len(vals)
    m = float(vals.mean())
    if len(vals) < 2:
        return m, math.inf, 1
    half = float(_st.t.ppf(confidence, len(vals) - 1)) * float(vals.std(ddof=1)) / math.sqrt(len(vals))
    return m, half, len(vals)


def _judge(summaries: list[dict], slos: Sequence[SLO], scope: str, confidence: float) -> tuple[str, str]:
    verdict, reasons = "pass", []
    for slo in slos:
        vals = [slo.value(_scope_block(s, scope)) for s in summaries]
        m, half, _ = _bound(vals, confidence)
        if not math.isfinite(m):
            verdict = "fail"  # no answered request: nothing meets a latency or success objective
            reasons.append(f"{slo.metric} has no value")
            continue
        lo, hi = m - half, m + half
        met = hi <= slo.target if slo.upper else lo >= slo.target
        violated = lo > slo.target if slo.upper else hi < slo.target
        if violated:
            verdict = "fail"
        elif not met and verdict == "pass":
            verdict = "undecided"
        reasons.append(f"{slo.metric} {m:.4g} [{lo:.4g}, {hi:.4g}]")
    return verdict, "; ".join(reasons)


# ---------------------------------------------------------------------------- the knee
def _numeric(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    from meshsim.units import parse_duration, parse_fraction, parse_rate

    for parse in (parse_rate, parse_duration, parse_fraction):
        try:
            return float(parse(value))
        except (ValueError, TypeError):
            continue
    raise ConfigError(f"--vary value {value!r}: not a number, rate or duration; the search needs ordered values")


# ---------------------------------------------------------------------------- the result
@dataclass
class CapacityResult:
    """What :func:`find_capacity` found.

    Attributes
    ----------
    answer
        The smallest passing value (the largest with ``maximize``), or None
        when no value in the range passed.
    evaluations
        One row per evaluated value: ``value``, ``phase`` (search or knee),
        ``replications``, ``verdict``, each SLO metric's mean and bound, the
        busiest service and its utilization.
    runs, search_runs, knee_runs
        Simulations run: all, by the search, for the knee curve.
    grid_runs
        What the full grid would cost: ``len(values) * max_replications``.
    knee_value, knee_utilization
        The knee of the latency curve (see the module docstring) and the
        busiest service's utilization there; None when the curve is too short.
    utilization
        At the answer: ``{service: utilization}`` and ``{service/version: ...}``.
    summary
        The mean summary at the answer (its replications combined, with CIs).
    notes
        Anything the reader should know: monotonicity contradicted, the
        range's end reached, undecided points counted as failing.
    """

    vary: str
    values: list[Any]
    slos: list[SLO]
    scope: str
    maximize: bool
    confidence: float
    answer: Any
    evaluations: pd.DataFrame
    search_runs: int
    knee_runs: int
    grid_runs: int
    min_replications: int
    max_replications: int
    knee_value: Any = None
    knee_metric: str = "p99"
    knee_utilization: float | None = None
    utilization: dict[str, float] = field(default_factory=dict)
    summary: dict | None = None
    notes: list[str] = field(default_factory=list)
    executor: str = "serial"

    @property
    def runs(self) -> int:
        return self.search_runs + self.knee_runs

    def render(self) -> str:
        """A short report for a terminal."""
        goal = "largest" if self.maximize else "smallest"
        slos = " and ".join(s.text for s in self.slos)
        lines = [f"{goal} {self.vary} meeting {slos} at {self.scope} "
                 f"({self.confidence:.0%} one-sided confidence):"]
        lines.append(f"  answer: {self.answer}" if self.answer is not None else "  answer: none in the range")
        lines.append(f"  runs: {self.search_runs} by the search (+{self.knee_runs} for the knee) vs "
                     f"{self.grid_runs} for the full grid ({len(self.values)} values x {self.max_replications} "
                     f"replications)")
        if self.knee_value is not None:
            u = f", busiest service at {self.knee_utilization:.0%} utilization" if self.knee_utilization else ""
            lines.append(f"  knee of the {self.knee_metric} curve: {self.vary}={self.knee_value}{u}")
        if self.utilization:
            lines.append("  utilization at the answer: " + ", ".join(
                f"{k} {v:.0%}" for k, v in self.utilization.items() if "/" not in k))
        lines.append("")
        ev = self.evaluations.drop(columns=["index"], errors="ignore").copy()
        for s in self.slos:  # latencies in milliseconds for a person
            if METRICS[s.metric][1] == "latency":
                for col in (s.metric, f"{s.metric}_bound"):
                    ev[col] = ev[col] * 1e3
                ev = ev.rename(columns={s.metric: f"{s.metric}_ms", f"{s.metric}_bound": f"{s.metric}_bound_ms"})
        lines.append(ev.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the search
def find_capacity(scenario, vary: str, values: Sequence[Any] | str, slos: Sequence[SLO | str], *,
                  maximize: bool = False, scope: str = "end_to_end", confidence: float = 0.95,
                  min_replications: int = 3, max_replications: int = 12, seed: int | None = None,
                  knee_points: int = 4, workers: int | None = None, scheduler: str | None = None,
                  progress: Callable[[int, int], Any] | bool | None = None,
                  overrides: dict[str, Any] | None = None) -> CapacityResult:
    """Search ``values`` of the field ``vary`` for the SLO boundary (see the module docstring).

    Parameters
    ----------
    scenario
        A validated ``meshsim.config.Scenario``.
    vary
        A field path (``services.reviews.replicas``, ``traffic.users.rate``).
    values
        The candidates in order, or a spec (``"1..32"``, ``"500/s..5k/s:500/s"``).
    slos
        ``SLO`` objects or strings (``"p99<=200ms"``, ``"success>=99.9%"``).
    maximize
        False: the smallest passing value (replicas); True: the largest (rate).
    scope
        ``end_to_end``, ``SERVICE`` or ``SERVICE/VERSION``.
    confidence
        Level of the one-sided t bound, in (0, 1).
    min_replications, max_replications
        Replications a point starts with, and the most it may get (>= 2).
    seed
        The seed of every point (default: the scenario's).
    knee_points
        Extra points evaluated for the knee curve (0: none, no knee).
    workers, scheduler, progress
        Where to run (see :mod:`meshsim.experiments._executor`).
    overrides
        Fields set at every point (``{"record": "summary"}``).

    Returns
    -------
    CapacityResult
    """
    from meshsim.config import apply_overrides
    from meshsim.sim import combine_summaries

    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence {confidence!r}: must be in (0, 1)")
    if min_replications < 2 or max_replications < min_replications:
        raise ConfigError(f"replications {min_replications}..{max_replications}: need 2 <= min <= max "
                          "(a bound needs two replications)")
    objectives: list[SLO] = [parse_slo(s) if isinstance(s, str) else s for s in slos]
    if not objectives:
        raise ConfigError("no --slo given: the search needs an objective such as p99<=200ms")
    if isinstance(values, str):
        try:
            values = parse_values(values)
        except ValueError as exc:
            raise ConfigError(f"--vary {vary}={values}: {exc}") from None
    values = _normalize(list(values))
    if len(values) < 1:
        raise ConfigError(f"--vary {vary}: no values")
    base = apply_overrides(scenario, dict(overrides)) if overrides else scenario
    _check_scope(base, scope, objectives)
    check_effective(base, vary, values, option="--vary")
    xs = [_numeric(v) for v in values]
    if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
        raise ConfigError(f"--vary {vary}: values must increase (got {', '.join(map(str, values))})")

    points: dict[int, _Point] = {}

    def point(i: int) -> _Point:
        if i not in points:
            try:
                scn = apply_overrides(base, {vary: values[i]})
            except ConfigError as exc:
                raise ConfigError(f"--vary {vary}={values[i]}: {_strip_source(str(exc), base)}") from None
            points[i] = _Point(i, values[i], scn)
        return points[i]

    with Executor(workers=workers, scheduler=scheduler, progress=progress, label="capacity") as ex:

        def grow(pts: list[_Point], target: int) -> None:
            tasks, owners = [], []
            for p in pts:
                s = int(seed if seed is not None else p.scenario.seed)
                for r in range(len(p.summaries), target):
                    tasks.append(SimTask(p.scenario, s, r))
                    owners.append(p)
            for p, summary in zip(owners, ex.map(tasks), strict=True):
                p.summaries.append(summary)

        def evaluate(i: int) -> bool:
            """True when the point is past the boundary (passes when minimizing, fails when maximizing)."""
            p = point(i)
            n = max(min_replications, len(p.summaries))
            while True:
                grow([p], n)
                p.verdict, p.reason = _judge(p.summaries, objectives, scope, confidence)
                if p.verdict != "undecided" or n >= max_replications:
                    break
                n = min(max_replications, 2 * n)
            passed = p.verdict == "pass"
            return passed if not maximize else not passed

        # gallop: 0, 1, 3, 7, ... until past the boundary, then bisect (lo: before, hi: past)
        n = len(values)
        hi: int | None = None
        lo, step, i = -1, 1, 0
        while True:
            if evaluate(i):
                hi = i
                break
            lo = i
            if i == n - 1:
                break
            i = min(n - 1, i + step)
            step *= 2
        if hi is not None:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if evaluate(mid):
                    hi = mid
                else:
                    lo = mid
        search_runs = ex.tasks_run
        notes: list[str] = []
        ans_i: int | None
        if maximize:
            ans_i = (hi - 1) if hi is not None else n - 1
            if ans_i < 0:
                ans_i = None
            elif hi is None:
                notes.append(f"every value up to the end of the range ({values[-1]}) passed: the limit may be higher")
        else:
            ans_i = hi
            if hi is None:
                notes.append(f"no value up to {values[-1]} met the SLO: extend the range")

        # the knee: a few more points so the curve has a shape
        knee_runs = 0
        extra: list[int] = []
        if knee_points > 0 and n >= 3:
            for j in np.unique(np.round(np.geomspace(1, n, num=knee_points + 2)).astype(int) - 1):
                if int(j) not in points:
                    extra.append(int(j))
            extra = extra[:knee_points]
            if extra:
                for j in extra:
                    point(j).phase = "knee"
                grow([points[j] for j in extra], min_replications)
                for j in extra:
                    p = points[j]
                    p.verdict, p.reason = _judge(p.summaries, objectives, scope, confidence)
                knee_runs = ex.tasks_run - search_runs
        kind = ex.kind

    # monotonicity: a passing point on the failing side (or the reverse) contradicts the assumption
    if ans_i is not None or hi is not None:
        for p in points.values():
            if p.verdict == "undecided" and p.phase == "search":
                notes.append(f"{vary}={p.value}: undecided after {len(p.summaries)} replications; counted as failing")
        for p in points.values():
            if maximize:
                wrong = (p.verdict == "pass" and hi is not None and p.index >= hi) or \
                        (p.verdict == "fail" and ans_i is not None and p.index <= ans_i)
            else:
                wrong = (p.verdict == "pass" and hi is not None and p.index < hi) or \
                        (p.verdict == "fail" and hi is not None and p.index >= hi)
            if wrong:
                notes.append(f"{vary}={p.value} {p.verdict}s but lies on the other side of the answer: "
                             "the SLO is not monotone here; check with a sweep")

    knee_metric = next((s.metric for s in objectives if METRICS[s.metric][1] == "latency"), "p99")
    knee_slo = SLO(knee_metric, "<=", math.inf, knee_metric)
    rows, curve = [], []
    for i in sorted(points):
        p = points[i]
        row: dict[str, Any] = {"index": i, "value": p.value, "phase": p.phase, "replications": len(p.summaries),
                               "verdict": p.verdict}
        for s in objectives:
            m, half, _ = _bound([s.value(_scope_block(x, scope)) for x in p.summaries], confidence)
            row[s.metric] = m
            row[f"{s.metric}_bound"] = m + half if s.upper else m - half
        busiest, util = _busiest(p.summaries)
        row["busiest"] = busiest
        row["busiest_utilization"] = util
        rows.append(row)
        if util < STABLE_UTILIZATION:
            curve.append((xs[i], float(np.mean([knee_slo.value(_scope_block(x, scope)) for x in p.summaries])),
                          p.value, util))
    evaluations = pd.DataFrame(rows)
    k = knee([c[0] for c in curve], [c[1] for c in curve]) if knee_points > 0 else None
    summary = None
    utilization: dict[str, float] = {}
    if ans_i is not None:
        summary = combine_summaries(points[ans_i].summaries, confidence)
        for sname, svc in summary["services"].items():
            utilization[sname] = float(svc.get("utilization", math.nan))
            for vname, ver in svc.get("versions", {}).items():
                utilization[f"{sname}/{vname}"] = float(ver.get("utilization", math.nan))
    return CapacityResult(
        vary=vary, values=list(values), slos=objectives, scope=scope, maximize=maximize,
        confidence=confidence,
        answer=values[ans_i] if ans_i is not None else None, evaluations=evaluations,
        search_runs=search_runs, knee_runs=knee_runs, grid_runs=n * max_replications,
        min_replications=min_replications, max_replications=max_replications,
        knee_value=curve[k][2] if k is not None else None, knee_metric=knee_metric,
        knee_utilization=curve[k][3] if k is not None else None,
        utilization=utilization, summary=summary, notes=notes, executor=kind)


def _busiest(summaries: list[dict]) -> tuple[str, float]:
    """The service with the highest mean utilization over the replications, and that utilization."""
    best, best_u = "", -math.inf
    for name in summaries[0].get("services", {}):
        u = float(np.mean([s["services"][name].get("utilization", math.nan) for s in summaries]))
        if u > best_u:
            best, best_u = name, u
    return best, best_u
