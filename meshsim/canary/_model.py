"""The canary analyzer's data model: what every reader produces and every judge returns.

This module is the contract between the parts of ``meshsim.canary``: the
input readers (CSV/Parquet/Prometheus/run directories) build :class:`ArmData`;
the judges (meshsim's own, the Kayenta-compatible one, the Flagger-style one
used by the benchmark) take two of them and a judge configuration and return
a :class:`Judgement`; the report writers (terminal, JSON, JUnit, Markdown,
plots) read only :class:`Judgement` and :class:`WatchResult`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["ArmData", "Decision", "Judgement", "MetricResult", "WatchResult", "EXIT_CODES"]


class Decision(str, enum.Enum):
    """A verdict, for one metric or for the whole canary."""

    PROMOTE = "PROMOTE"
    ROLLBACK = "ROLLBACK"
    INCONCLUSIVE = "INCONCLUSIVE"


#: process exit code per decision (2 is bad input)
EXIT_CODES = {Decision.PROMOTE: 0, Decision.ROLLBACK: 1, Decision.INCONCLUSIVE: 3}


@dataclass(frozen=True)
class ArmData:
    """One arm (baseline or canary) as the judges see it. At least one table is present.

    requests
        Raw samples, one row per request: ``t`` (float seconds since the start of the
        analysis, sorted ascending), ``latency_s`` (float, seconds; NaN when unknown),
        ``status`` (int HTTP status; 0 = no response).
    minutes
        Per-minute aggregates in long form: ``minute`` (int, minutes since the start),
        ``metric`` (str: ``requests``, ``errors``, ``latency_p50_s``, ``latency_p90_s``,
        ``latency_p99_s``, ``latency_mean_s``, or any user gauge name), ``value`` (float; NaN
        for a minute with no data), ``count`` (float: requests behind the value, NaN when
        unknown). Counters are per-minute increments (readers undo counter resets).
    histograms
        Optional per-minute latency histograms: ``minute``, ``le`` (float upper bound,
        seconds, ``inf`` last), ``count`` (per-minute increment, non-cumulative over time,
        cumulative over ``le`` as Prometheus gives it).
    """

    name: str
    requests: pd.DataFrame | None = None
    minutes: pd.DataFrame | None = None
    histograms: pd.DataFrame | None = None
    source: str = ""  # where it came from, for messages

    def until(self, minute: float) -> ArmData:
        """The data seen up to ``minute`` minutes after the start (for sequential replays)."""
        t = 60.0 * minute
        req = None if self.requests is None else self.requests[self.requests["t"] < t]
        mins = None if self.minutes is None else self.minutes[self.minutes["minute"] < minute]
        hist = None if self.histograms is None else self.histograms[self.histograms["minute"] < minute]
        return ArmData(self.name, req, mins, hist, self.source)


@dataclass(frozen=True)
class MetricResult:
    """One metric's comparison.

    ``effect`` is the canary relative to the baseline in the metric's own terms
    (a ratio for latency quantiles and rates, e.g. 1.12 = 12 % higher; a
    difference in percentage points for error rates when ``effect_kind`` says
    so); ``ci_low``/``ci_high`` bound it at the configured confidence (anytime-
    valid when ``sequential``). ``p_value`` or ``e_value`` is the evidence of a
    harmful change; ``margin`` the allowed change in the same units as ``effect``.
    """

    name: str
    kind: str  # latency | error_rate | throughput | gauge
    decision: Decision
    effect: float
    ci_low: float
    ci_high: float
    margin: float
    effect_kind: str = "ratio"  # ratio | difference
    p_value: float | None = None
    e_value: float | None = None
    test: str = ""  # which statistic decided, e.g. "mann-whitney", "conditional-binomial", "cs-quantile"
    baseline: float = float("nan")  # the baseline's value of the statistic (e.g. its p99, its error rate)
    canary: float = float("nan")
    n_baseline: int = 0
    n_canary: int = 0
    critical: bool = False
    sequential: bool = False
    reason: str = ""  # one line a person reads: why this decision
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    """The whole canary's verdict and its per-metric results."""

    decision: Decision
    metrics: tuple[MetricResult, ...]
    reason: str
    score: float | None = None  # Kayenta-compatible mode: the weighted score (0-100)
    mode: str = "meshsim"  # meshsim | kayenta | flagger
    minutes: float = float("nan")  # analysis length the judgement covers
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]


@dataclass(frozen=True)
class WatchResult:
    """A sequential replay: the judgement after each look and when the decision was reached."""

    looks: tuple[tuple[float, Judgement], ...]  # (minute, judgement at that look)
    decision: Decision
    decided_at: float | None  # minute of the first final decision (None: never, INCONCLUSIVE at the end)

    @property
    def final(self) -> Judgement:
        return self.looks[-1][1]
