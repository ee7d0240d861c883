"""The Flagger-style judge: fixed thresholds on the canary alone, checked every interval.

What Flagger (its progressive canary strategy) would have done with the same
data, for users comparing tools and as the benchmark's competitor:

* A check runs every ``interval`` (default 1 min) on the **canary's** values
  over the last minute (Flagger's default metric window ``1m``); the baseline
  is not looked at. Each metric with a ``flagger: {min, max}`` range is read
  in Flagger's units: latency quantiles in **milliseconds** (Flagger's
  ``request-duration`` is the P99), error-rate metrics as
  ``request-success-rate`` in **percent** (``100 * (1 - errors/requests)``),
  throughput in requests per second, gauges as they are. A value outside its
  range fails the check; so does **no value** (a minute without canary
  traffic gives NaN, which Flagger reports as "no values found" and counts as
  a failure).
* A failed check halts the ramp and adds one to ``failed checks``, which is
  cumulative over the whole analysis (passing checks do not reset it). At the
  first tick that finds ``failed checks >= threshold`` the canary is rolled
  back.
* A passing check advances the canary weight by ``step_weight`` (or to the
  next entry of ``step_weights``) until ``max_weight`` (with
  ``step_weights``: their last entry); a passing check at ``max_weight``
  promotes.
* The first tick (minute 0) only routes the first step of traffic to the
  canary; checks start one interval later.

So the earliest promotion is at ``interval * (max_weight / step_weight + 1)``
(25 checks for 2 % steps to 50 %), and a canary failing every check is rolled
back at ``interval * (threshold + 1)``.

:class:`FlaggerRollout` is the engine-free state machine (the benchmark drives
it minute by minute to set the canary's traffic share);
:func:`replay_flagger` runs it over recorded data; :func:`judge_flagger` gives
its final :class:`~meshsim.canary.Judgement`.

Where meshsim departs from Flagger: webhooks, the progress deadline,
mirroring, A/B and blue/green strategies and the promotion's traffic shift
back are not modelled; the replay cannot change the traffic the recorded
canary got, so ``weight`` in the looks is what Flagger would have set.

References
----------
Flagger ``pkg/controller/scheduler.go`` (``advanceCanary``, ``nextStepWeight``,
``runCanary``), ``pkg/controller/scheduler_metrics.go``
(``runBuiltinMetricChecks``), ``pkg/metrics/observers/istio.go``,
``pkg/metrics/providers/prometheus.go`` (NaN is "no values found").
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from meshsim._exceptions import CanaryError
from meshsim.canary._model import ArmData, Decision, Judgement, MetricResult, WatchResult

__all__ = [
    "judge_flagger",
    "replay_flagger",
    "FlaggerRollout",
    "FlaggerAction",
    "FlaggerCheck",
    "flagger_checks",
    "check_canary",
]


class FlaggerAction(str, enum.Enum):
    """What one tick of the rollout did."""

    START = "start"  # routed the first traffic step to the canary (no check)
    ADVANCE = "advance"  # check passed, weight increased
    HALT = "halt"  # check failed, weight kept, failed checks + 1
    PROMOTE = "promote"  # check passed at max weight
    ROLLBACK = "rollback"  # failed checks reached the threshold


class FlaggerRollout:
    """Flagger's progressive-canary state machine, one :meth:`tick` per analysis interval.

    Parameters
    ----------
    threshold
        Failed checks (cumulative) that roll the canary back (Flagger's
        ``analysis.threshold``).
    step_weight, max_weight
        Linear ramp (``analysis.stepWeight``/``maxWeight``), in percent.
    step_weights
        Explicit ramp (``analysis.stepWeights``); used when ``step_weight`` is
        ``None``; its last entry is the maximum weight.

    Examples
    --------
    >>> r = FlaggerRollout(threshold=2, step_weight=25, max_weight=50)
    >>> r.start(), r.weight
    (<FlaggerAction.START: 'start'>, 25.0)
    >>> [r.tick(ok).value for ok in (True, False, True)], r.weight, r.failed_checks
    (['advance', 'halt', 'promote'], 50.0, 1)
    """

    TOTAL_WEIGHT = 100.0

    def __init__(self, *, threshold: int = 1, step_weight: float | None = None, max_weight: float | None = None,
                 step_weights: tuple[float, ...] | list[float] = ()) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.threshold = int(threshold)
        self.step_weights = tuple(float(w) for w in step_weights)
        if step_weight is None and not self.step_weights:
            raise ValueError("give step_weight or step_weights")
        self.step_weight = None if step_weight is None else float(step_weight)
        if self.step_weight is None:
            self.max_weight = min(self.TOTAL_WEIGHT, self.step_weights[-1])
        else:
            self.max_weight = float(max_weight) if max_weight else self.TOTAL_WEIGHT
        self.weight = 0.0
        self.failed_checks = 0
        self.ticks = 0
        self.done: FlaggerAction | None = None

    @classmethod
    def from_config(cls, flagger: Any) -> FlaggerRollout:
        """From a :class:`meshsim.canary.config.FlaggerConfig`; ``step_weights`` win unless ``step_weight``
        was written explicitly (Flagger uses ``stepWeight`` when it is set)."""
        explicit = "step_weight" in getattr(flagger, "model_fields_set", set())
        use_steps = bool(flagger.step_weights) and not explicit
        return cls(threshold=flagger.threshold, step_weight=None if use_steps else flagger.step_weight,
                   max_weight=flagger.max_weight, step_weights=flagger.step_weights)

    def _next_step(self) -> float:
        if self.step_weight is not None and self.step_weight > 0:
            return self.step_weight
        max_step = self.TOTAL_WEIGHT - self.weight
        if max_step == 0:
            return 1.0
        if self.weight == 0:
            return min(max_step, self.step_weights[0])
        for i in range(len(self.step_weights) - 1):
            if self.step_weights[i] == self.weight:
                return min(max_step, self.step_weights[i + 1] - self.weight)
        return max_step

    @property
    def rollback_due(self) -> bool:
        """True when the next tick rolls back whatever the check says."""
        return self.failed_checks >= self.threshold

    def start(self) -> FlaggerAction:
        """The first tick: route the first traffic step to the canary."""
        if self.ticks:
            raise RuntimeError("the rollout has already started")
        self.ticks = 1
        self.weight = min(self.weight + self._next_step(), self.TOTAL_WEIGHT)
        return FlaggerAction.START

    def tick(self, check_passed: bool) -> FlaggerAction:
        """One analysis interval: roll back if due, else count the check and advance or promote."""
        if self.done is not None:
            raise RuntimeError(f"the rollout has ended ({self.done.value})")
        if not self.ticks:
            raise RuntimeError("call start() first")
        self.ticks += 1
        if self.rollback_due:
            self.done = FlaggerAction.ROLLBACK
            return self.done
        if not check_passed:
            self.failed_checks += 1
            return FlaggerAction.HALT
        if self.weight < self.max_weight:
            self.weight = min(self.weight + self._next_step(), self.TOTAL_WEIGHT)
            return FlaggerAction.ADVANCE
        self.done = FlaggerAction.PROMOTE
        return self.done


@dataclass(frozen=True)
class FlaggerCheck:
    """One thresholded value of a check: the metric, its canary value (Flagger's units) and its range."""

    name: str
    kind: str
    unit: str
    series: str  # what it reads: latency_p99_s, success_rate, requests, or a gauge
    quantile: float | None
    min: float | None
    max: float | None


def flagger_checks(config: Any) -> list[FlaggerCheck]:
    """The checks of a judge configuration: one per latency quantile / metric with a ``flagger`` range."""
    from meshsim.canary.config import parse_judge_config, quantile_level

    config = parse_judge_config(config)
    out = []
    for m in config.metrics:
        lo, hi = m.flagger.min, m.flagger.max
        if lo is None and hi is None:
            continue
        if m.kind == "latency":
            for q in m.quantiles:
                out.append(FlaggerCheck(f"{m.name}.{q}", "latency", "ms", f"latency_{q}_s", quantile_level(q), lo, hi))
        elif m.kind == "error_rate":
            out.append(FlaggerCheck(m.name, "error_rate", "%", "success_rate", None, lo, hi))
        elif m.kind == "throughput":
            out.append(FlaggerCheck(m.name, "throughput", "req/s", "requests", None, lo, hi))
        else:
            out.append(FlaggerCheck(m.name, "gauge", "", m.series or m.name, None, lo, hi))
    if not out:
        raise CanaryError("no metric has a flagger range; give at least one, e.g. "
                          "metrics: [{name: errors, flagger: {min: 99}}]")
    return out


def _window_value(arm: ArmData, check: FlaggerCheck, minute: int) -> float:
    """The canary's value of ``check`` over minute ``minute`` (NaN when there is none)."""
    from meshsim.canary.io import histogram_quantile, per_minute

    if check.kind == "latency":
        req = arm.requests
        if req is not None:
            t = req["t"].to_numpy()
            lat = req["latency_s"].to_numpy()[(t >= 60.0 * minute) & (t < 60.0 * (minute + 1))]
            lat = lat[np.isfinite(lat)]
            return float(np.quantile(lat, check.quantile)) * 1000.0 if len(lat) else math.nan
        if arm.histograms is not None:
            h = arm.histograms[arm.histograms["minute"] == minute]
            if not h.empty:
                return histogram_quantile(check.quantile, h["le"].to_numpy(), h["count"].to_numpy()) * 1000.0
        return float(per_minute(arm, check.series, minute + 1)[minute]) * 1000.0
    if check.kind == "error_rate":
        return float(per_minute(arm, "success_rate", minute + 1)[minute]) * 100.0
    if check.kind == "throughput":
        return float(per_minute(arm, "requests", minute + 1)[minute]) / 60.0
    return float(per_minute(arm, check.series, minute + 1)[minute])


def check_canary(canary: ArmData, checks: list[FlaggerCheck], minute: int) -> list[tuple[FlaggerCheck, float, str]]:
    """Every check on the canary's minute ``minute``: (check, value, failure message or "")."""
    out = []
    for ch in checks:
        v = _window_value(canary, ch, minute)
        if math.isnan(v):
            why = "no values found (no canary traffic?)"
        elif ch.min is not None and v < ch.min:
            why = f"{v:.4g}{ch.unit} < min {ch.min:g}{ch.unit}"
        elif ch.max is not None and v > ch.max:
            why = f"{v:.4g}{ch.unit} > max {ch.max:g}{ch.unit}"
        else:
            why = ""
        out.append((ch, v, why))
    return out


def _n_minutes(arm: ArmData) -> int:
    if arm.minutes is not None and not arm.minutes.empty:
        return int(arm.minutes["minute"].max()) + 1
    if arm.requests is not None and not arm.requests.empty:
        return int(arm.requests["t"].max() // 60) + 1
    return 0


def replay_flagger(baseline: ArmData, canary: ArmData, config: Any) -> WatchResult:
    """Run Flagger's analysis over the recorded canary: one look per check, until promotion or rollback.

    Parameters
    ----------
    baseline
        Not used (Flagger looks at the canary alone); accepted so that every
        judge has the same signature.
    canary
        The canary arm.
    config
        A :class:`meshsim.canary.config.JudgeConfig` (or a mapping of one): its
        ``flagger`` settings and each metric's ``flagger`` range.

    Returns
    -------
    WatchResult
        ``decision`` ROLLBACK or PROMOTE at ``decided_at`` (minutes), or
        INCONCLUSIVE when the data ends first (Flagger would still be
        analysing).
    """
    from meshsim.canary.config import parse_judge_config

    config = parse_judge_config(config)
    checks = flagger_checks(config)
    fc = config.flagger
    rollout = FlaggerRollout.from_config(fc)
    step = fc.interval_s / 60.0
    n = max(_n_minutes(canary), _n_minutes(baseline))
    if n == 0:
        raise CanaryError("no data in the canary arm; nothing to check")
    rollout.start()
    looks: list[tuple[float, Judgement]] = []
    decision, decided_at = Decision.INCONCLUSIVE, None
    k = 1
    while True:
        at = k * step
        window = int(math.floor(at + 1e-9)) - 1  # the minute before the tick
        due = rollout.rollback_due
        if not due and window >= n:
            break
        weight = rollout.weight
        results = check_canary(canary, checks, window) if window < n else []
        failures = [f"{ch.name} {why}" for ch, _, why in results if why]
        action = rollout.tick(not failures)
        n_req = _requests_in(canary, window) if window < n else 0
        metrics = tuple(_metric_result(ch, v, why, n_req) for ch, v, why in results)
        if action is FlaggerAction.ROLLBACK:
            dec = Decision.ROLLBACK
            reason = (f"ROLLBACK at minute {at:g}: {rollout.failed_checks} failed checks >= threshold "
                      f"{rollout.threshold} (weight {weight:g}%)")
        elif action is FlaggerAction.PROMOTE:
            dec = Decision.PROMOTE
            reason = (f"PROMOTE at minute {at:g}: check passed at max weight {rollout.max_weight:g}% "
                      f"({rollout.failed_checks} failed checks of {rollout.threshold} allowed)")
        elif action is FlaggerAction.HALT:
            dec = Decision.INCONCLUSIVE
            reason = (f"halt at weight {weight:g}%: {'; '.join(failures)} "
                      f"(failed checks {rollout.failed_checks}/{rollout.threshold})")
        else:
            dec = Decision.INCONCLUSIVE
            reason = f"advance to weight {rollout.weight:g}% (failed checks {rollout.failed_checks}/{rollout.threshold})"
        judgement = Judgement(
            decision=dec, metrics=metrics, reason=reason, mode="flagger", minutes=float(at),
            details={"action": action.value, "weight": weight, "next_weight": rollout.weight,
                     "failed_checks": rollout.failed_checks, "threshold": rollout.threshold,
                     "max_weight": rollout.max_weight, "window_minute": window},
        )
        looks.append((float(at), judgement))
        if dec is not Decision.INCONCLUSIVE:
            decision, decided_at = dec, float(at)
            break
        k += 1
    if not looks:
        raise CanaryError(f"the data ({n} min) ends before Flagger's first check at minute {step:g}")
    if decision is Decision.INCONCLUSIVE:
        at, last = looks[-1]
        reason = (f"INCONCLUSIVE: the data ends at minute {n} with the canary at weight {rollout.weight:g}% "
                  f"(max {rollout.max_weight:g}%) and {rollout.failed_checks} of {rollout.threshold} failed checks; "
                  f"last check: {last.reason}")
        looks = [*looks[:-1], (at, Judgement(decision=Decision.INCONCLUSIVE, metrics=last.metrics, reason=reason,
                                              mode="flagger", minutes=last.minutes, details=last.details))]
    return WatchResult(looks=tuple(looks), decision=decision, decided_at=decided_at)


def _requests_in(arm: ArmData, minute: int) -> int:
    from meshsim.canary.io import per_minute

    v = float(per_minute(arm, "requests", minute + 1)[minute])
    return int(v) if math.isfinite(v) else 0


def _metric_result(ch: FlaggerCheck, value: float, why: str, n_canary: int = 0) -> MetricResult:
    bound = ch.max if ch.max is not None else ch.min if ch.min is not None else math.nan
    rng = f"[{'-inf' if ch.min is None else f'{ch.min:g}'}, {'inf' if ch.max is None else f'{ch.max:g}'}]{ch.unit}"
    return MetricResult(
        name=ch.name, kind=ch.kind, decision=Decision.ROLLBACK if why else Decision.PROMOTE, effect=value,
        ci_low=math.nan, ci_high=math.nan, margin=bound, effect_kind="value", test="threshold",
        canary=value, n_canary=n_canary, reason=why or f"{value:.4g}{ch.unit} within {rng}",
        details={"min": ch.min, "max": ch.max, "unit": ch.unit, "series": ch.series},
    )


def judge_flagger(baseline: ArmData, canary: ArmData, config: Any) -> Judgement:
    """What Flagger would have decided on this data: the last look of :func:`replay_flagger`."""
    return replay_flagger(baseline, canary, config).final
