"""Synthetic baseline/canary runs with known ground truth, for the judge's tests and benchmark.

One run is two arms observed minute by minute for ``minutes`` minutes:

* **traffic** -- requests per minute per arm ``Poisson(rate_per_arm * L(t))``, where the load factor
  ``L(t)`` (a slow swing plus random bursts) is shared by both arms; with ``canary_share`` other
  than 0.5 the total ``2 * rate_per_arm`` is split unequally: the canary gets
  ``Poisson(canary_share * 2 * rate_per_arm * L(t))`` and the baseline the rest (e.g.
  ``rate_per_arm=300, canary_share=0.1``: 540 and 60 requests/min);
* **latency** -- per request a lognormal body (median ``median_s``, log-sd ``sigma``) with a
  Pareto tail (probability ``tail_prob``, shape ``tail_shape``), times ``L(t)^load_beta`` (load
  slows both arms), times the arm's **cluster effect** ``exp(u_arm(t))``: an AR(1) on the log
  scale (``ar_rho``, stationary sd ``ar_sd``). In regime ``R1`` (randomised requests on a
  shared fleet) both arms share one ``u``; in ``R2`` (separate instances per arm) each arm
  has its own, so two identical versions differ in any finite run;
* **errors** -- per request Bernoulli with the arm's rate times a shared factor (occasional
  bursts hitting both arms) times the arm's overdispersion ``exp(v_arm(t))`` (same AR family,
  sd ``error_ar_sd``; shared in R1, per arm in R2).

The canary may carry a regression from minute ``onset_min``: ``scale`` (every latency times
``effect``), ``tail`` (latencies above the baseline's p90 stretched so that p99 is
``effect`` times higher, median unchanged), ``spread`` (log-latencies spread around the median
so that p99 is ``effect`` times higher), ``intermittent`` (+200 ms on 10 % of requests),
``errors`` (canary error rate ``canary_error_rate``), ``gauge`` (the canary's gauge
``effect_gauge`` times ``effect``; needs ``extra_gauges``).

Pathologies: ``missing_frac`` of minutes lose one arm's scrape (NaN), ``idle_frac`` of minutes
have no traffic at all in the canary.

Multi-metric variant (protocol 6.2): ``extra_gauges`` (default 0: none) adds that many per-minute
gauge series to each arm's table, from :data:`GAUGES` in order (``cpu_seconds``, ``memory_bytes``,
``gc_pause_s``, ``queue_depth``, ``active_connections``, ``threadpool_busy``, ``disk_io_s``,
``cache_miss_ratio``). Each is ``base * L(t)^load_exp`` (``cpu_seconds`` and
``active_connections`` follow the arm's own request count instead) times
``exp(u_load * u_arm(t) + v_load * v_arm(t))`` -- the arm's latency and error cluster factors,
shared by both arms in R1, the arm's own in R2 -- times the gauge's own per-arm lognormal noise
(white, log-sd ``noise``). The gauges carry no version effect (they are for A/A runs) and come
from their own random streams, so every other series of a run is the same with or without them.

:func:`generate` returns both input tracks through :class:`~meshsim.canary.ArmData`:
``minutes`` (T1, per-minute aggregates as Prometheus gives them) always, ``requests`` (T2,
raw) when asked. Everything is drawn from one ``numpy.random.SeedSequence``: same spec and
seed, same run; the baseline's streams do not depend on the canary's regression, so a
regression run and its A/A twin share the baseline exactly (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from meshsim.canary._model import ArmData

__all__ = ["SyntheticSpec", "Run", "generate", "true_quantiles", "minute_table", "GAUGES", "Gauge"]

Effect = Literal["none", "scale", "tail", "spread", "intermittent", "errors", "gauge"]


@dataclass(frozen=True)
class Gauge:
    """One synthetic per-minute gauge of the multi-metric variant (see the module docstring)."""

    name: str
    base: float  # level at load 1 (per request for ``per_request``)
    load_exp: float  # exponent of the shared load factor L(t)
    u_load: float  # loading on the arm's latency cluster factor u (log scale)
    v_load: float  # loading on the arm's error cluster factor v (log scale)
    noise: float  # log-sd of the gauge's own white per-arm noise
    per_request: bool = False  # base * requests + idle instead of base * L^load_exp
    idle: float = 0.0


GAUGES: tuple[Gauge, ...] = (
    Gauge("cpu_seconds", 0.004, 0.0, 0.5, 0.0, 0.05, per_request=True, idle=2.0),
    Gauge("memory_bytes", 512e6, 0.1, 0.2, 0.0, 0.02),
    Gauge("gc_pause_s", 0.05, 0.5, 1.0, 0.0, 0.12),
    Gauge("queue_depth", 4.0, 1.5, 1.5, 0.3, 0.2),
    Gauge("active_connections", 0.15, 0.0, 0.3, 0.0, 0.06, per_request=True, idle=5.0),
    Gauge("threadpool_busy", 0.3, 0.8, 0.7, 0.3, 0.08),
    Gauge("disk_io_s", 1.5, 0.7, 0.3, 0.0, 0.1),
    Gauge("cache_miss_ratio", 0.05, 0.2, 0.0, 0.5, 0.1),
)


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of one synthetic run (see the module docstring)."""

    minutes: int = 180
    rate_per_arm: float = 300.0
    median_s: float = 0.1
    sigma: float = 0.5
    tail_prob: float = 0.015
    tail_shape: float = 2.0
    load_beta: float = 0.3
    load_swing: float = 0.3
    bursts_per_hour: float = 1.0
    regime: Literal["R1", "R2"] = "R1"
    ar_rho: float = 0.7
    ar_sd: float = 0.05
    error_rate: float = 0.001
    error_ar_sd: float = 0.1
    effect: Effect = "none"
    effect_size: float = 1.0
    canary_error_rate: float | None = None
    onset_min: float = 0.0
    missing_frac: float = 0.0
    idle_frac: float = 0.0
    warmup_min: float = 0.0  # both arms slower (x1.5, fading) for the first minutes
    canary_share: float = 0.5  # canary's share of the total traffic 2 * rate_per_arm (0.5: equal arms)
    extra_gauges: int = 0  # multi-metric variant: this many gauges of GAUGES per arm (0: none)
    effect_gauge: str = "cpu_seconds"  # effect "gauge": the canary's gauge that is multiplied by effect_size

    def __post_init__(self) -> None:
        if not 0.0 < self.canary_share < 1.0:
            raise ValueError(f"canary_share: {self.canary_share!r} is not in (0, 1)")
        if not 0 <= self.extra_gauges <= len(GAUGES):
            raise ValueError(f"extra_gauges: {self.extra_gauges!r} is not in 0..{len(GAUGES)}")
        if self.effect == "gauge" and self.effect_gauge not in [g.name for g in GAUGES[:self.extra_gauges]]:
            raise ValueError(f"effect_gauge: {self.effect_gauge!r} is not among the run's "
                             f"{self.extra_gauges} extra gauges")

    def arm_rate(self, canary: bool) -> float:
        """Mean requests per minute of one arm (before the load factor)."""
        if self.canary_share == 0.5:
            return self.rate_per_arm
        return 2.0 * self.rate_per_arm * (self.canary_share if canary else 1.0 - self.canary_share)

    def with_(self, **kw: object) -> SyntheticSpec:
        return replace(self, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Run:
    """One generated run: the two arms and the truth."""

    baseline: ArmData
    canary: ArmData
    spec: SyntheticSpec
    seed: int
    bad_per_minute: np.ndarray  # canary requests per minute affected by the regression (exposure)


def _body_and_tail(rng: np.random.Generator, n: int, spec: SyntheticSpec) -> np.ndarray:
    x = spec.median_s * np.exp(spec.sigma * rng.standard_normal(n))
    tail = rng.random(n) < spec.tail_prob
    k = int(tail.sum())
    if k:
        xm = spec.median_s * math.exp(2.0 * spec.sigma)
        x[tail] = xm * rng.random(k) ** (-1.0 / spec.tail_shape)
    return x


@lru_cache(maxsize=64)
def true_quantiles(median_s: float, sigma: float, tail_prob: float, tail_shape: float) -> dict[float, float]:
    """Quantiles of the service-time mixture (no load, no cluster effect), by a fixed 2e6-draw sample."""
    spec = SyntheticSpec(median_s=median_s, sigma=sigma, tail_prob=tail_prob, tail_shape=tail_shape)
    x = _body_and_tail(np.random.default_rng(20240601), 2_000_000, spec)
    qs = (0.5, 0.9, 0.99)
    return dict(zip(qs, np.quantile(x, qs).tolist(), strict=True))


def _ar1(rng: np.random.Generator, T: int, rho: float, sd: float) -> np.ndarray:
    if sd <= 0:
        return np.zeros(T)
    e = rng.standard_normal(T) * sd * math.sqrt(max(1 - rho * rho, 0.0))
    u = np.empty(T)
    u[0] = rng.standard_normal() * sd
    for t in range(1, T):
        u[t] = rho * u[t - 1] + e[t]
    return u


def _load(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    T = spec.minutes
    t = np.arange(T)
    phase = rng.random() * 2 * math.pi
    swing = 1.0 + spec.load_swing * np.sin(2 * math.pi * t / 240.0 + phase)
    burst = np.ones(T)
    n_b = rng.poisson(spec.bursts_per_hour * T / 60.0)
    for _ in range(n_b):
        s = int(rng.integers(0, T))
        d = int(rng.integers(1, 6))
        burst[s:s + d] *= 1.0 + rng.random()
    err = np.ones(T)
    for _ in range(rng.poisson(0.5 * T / 60.0)):  # correlated error bursts hitting both arms
        s = int(rng.integers(0, T))
        err[s:s + int(rng.integers(1, 4))] *= 3.0
    return swing * burst, err


def minute_table(minute: np.ndarray, latency: np.ndarray, error: np.ndarray, T: int) -> pd.DataFrame:
    """Per-minute aggregates (T1 long form) of raw requests: requests, errors, p50/p90/p99, mean latency."""
    order = np.lexsort((latency, minute))
    lat = latency[order]
    mi = minute[order]
    counts = np.bincount(mi, minlength=T)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    errs = np.bincount(minute, weights=error.astype(float), minlength=T)
    sums = np.bincount(minute, weights=latency, minlength=T)
    cols = {"requests": counts.astype(float), "errors": errs}
    has = counts > 0
    for q, name in ((0.5, "latency_p50_s"), (0.9, "latency_p90_s"), (0.99, "latency_p99_s")):
        pos = q * np.maximum(counts - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        i0 = np.minimum(starts + lo, max(lat.size - 1, 0))
        i1 = np.minimum(starts + np.minimum(lo + 1, np.maximum(counts - 1, 0)), max(lat.size - 1, 0))
        v = np.full(T, np.nan)
        if lat.size:
            v[has] = (lat[i0] * (1 - frac) + lat[i1] * frac)[has]
        cols[name] = v
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["latency_mean_s"] = np.where(has, sums / np.maximum(counts, 1), np.nan)
    frames = []
    for name, v in cols.items():
        cnt = counts.astype(float)
        frames.append(pd.DataFrame({"minute": np.arange(T), "metric": name, "value": v, "count": cnt}))
    return pd.concat(frames, ignore_index=True)


def _arm(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    load: np.ndarray,
    err_factor: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    *,
    canary: bool,
    raw: bool,
    name: str,
) -> tuple[ArmData, np.ndarray]:
    T = spec.minutes
    streams = rng.spawn(4)
    n = streams[0].poisson(spec.arm_rate(canary) * load)
    if canary and spec.idle_frac > 0:
        idle = streams[3].random(T) < spec.idle_frac
        n = np.where(idle, 0, n)
    N = int(n.sum())
    minute = np.repeat(np.arange(T), n)
    x = _body_and_tail(streams[1], N, spec)
    bad = np.zeros(T)
    if canary and spec.effect in ("scale", "tail", "spread", "intermittent"):
        on = minute >= spec.onset_min
        f = spec.effect_size
        if spec.effect == "scale":
            x = np.where(on, x * f, x)
        elif spec.effect == "tail":
            q = true_quantiles(spec.median_s, spec.sigma, spec.tail_prob, spec.tail_shape)
            c, p99 = q[0.9], q[0.99]
            k = (f * p99 - c) / (p99 - c)
            x = np.where(on & (x > c), c + k * (x - c), x)
        elif spec.effect == "spread":
            q = true_quantiles(spec.median_s, spec.sigma, spec.tail_prob, spec.tail_shape)
            m, p99 = q[0.5], q[0.99]
            s = 1.0 + math.log(f) / math.log(p99 / m)
            x = np.where(on, m * np.exp(s * np.log(x / m)), x)
        else:
            hit = streams[3].random(N) < 0.10
            x = np.where(on & hit, x + 0.2, x)
        bad = np.bincount(minute, weights=on.astype(float), minlength=T)
        if spec.effect == "intermittent":
            bad = np.bincount(minute, weights=(on & hit).astype(float), minlength=T)
    warm = np.ones(T)
    if spec.warmup_min > 0:
        tt = np.arange(T)
        warm = 1.0 + 0.5 * np.clip(1 - tt / spec.warmup_min, 0, None)
    x = x * (load ** spec.load_beta * np.exp(u) * warm)[minute]
    rate = spec.error_rate
    if canary and spec.canary_error_rate is not None:
        rate_t = np.where(np.arange(T) >= spec.onset_min, spec.canary_error_rate, spec.error_rate)
        if spec.canary_error_rate > spec.error_rate:
            bad = bad + (spec.canary_error_rate - spec.error_rate) * n * (np.arange(T) >= spec.onset_min)
    else:
        rate_t = np.full(T, rate)
    p_t = np.clip(rate_t * err_factor * np.exp(v), 0.0, 1.0)
    err = streams[2].random(N) < p_t[minute]
    mins = minute_table(minute, x, err, T)
    if spec.missing_frac > 0:
        miss = streams[3].random(T) < spec.missing_frac
        mins.loc[mins["minute"].isin(np.flatnonzero(miss)), ["value", "count"]] = np.nan
    req = None
    if raw:
        t = (minute + streams[3].random(N)) * 60.0
        order = np.argsort(t, kind="stable")
        req = pd.DataFrame({"t": t[order], "latency_s": x[order], "status": np.where(err, 500, 200)[order]})
    return ArmData(name, requests=req, minutes=mins, source="synthetic"), bad


def generate(spec: SyntheticSpec, seed: int, *, raw: bool = False) -> Run:
    """Generate one run (both arms) from ``spec`` and ``seed``.

    Parameters
    ----------
    raw
        Also build the raw per-request tables (T2); the per-minute tables (T1) are always built.
    """
    ss = np.random.SeedSequence([int(seed), 0xCA7A])
    shared, arm_b, arm_c, noise_b, noise_c = (np.random.default_rng(s) for s in ss.spawn(5))
    load, err_factor = _load(shared, spec)
    T = spec.minutes
    if spec.regime == "R1":
        u = _ar1(noise_b, T, spec.ar_rho, spec.ar_sd)
        v = _ar1(noise_b, T, spec.ar_rho, spec.error_ar_sd)
        ub, vb, uc, vc = u, v, u, v
    else:
        ub, vb = _ar1(noise_b, T, spec.ar_rho, spec.ar_sd), _ar1(noise_b, T, spec.ar_rho, spec.error_ar_sd)
        uc, vc = _ar1(noise_c, T, spec.ar_rho, spec.ar_sd), _ar1(noise_c, T, spec.ar_rho, spec.error_ar_sd)
    base, _ = _arm(arm_b, spec, load, err_factor, ub, vb, canary=False, raw=raw, name="baseline")
    can, bad = _arm(arm_c, spec, load, err_factor, uc, vc, canary=True, raw=raw, name="canary")
    if spec.extra_gauges:
        # spawned after the five streams above, so they (and every other series) do not change
        g_b, g_c = (np.random.default_rng(s) for s in ss.spawn(2))
        base = _with_gauges(base, spec, load, ub, vb, g_b)
        can = _with_gauges(can, spec, load, uc, vc, g_c, canary=True)
        if spec.effect == "gauge":  # every canary request from the onset ran on the regressed version
            n_c = can.minutes[can.minutes["metric"] == "requests"].sort_values("minute")["value"].to_numpy(float)
            bad = np.where(np.arange(T) >= spec.onset_min, np.nan_to_num(n_c), 0.0)
    return Run(base, can, spec, int(seed), bad)


def _with_gauges(arm: ArmData, spec: SyntheticSpec, load: np.ndarray, u: np.ndarray, v: np.ndarray,
                 rng: np.random.Generator, canary: bool = False) -> ArmData:
    """``arm`` with the first ``spec.extra_gauges`` gauges of :data:`GAUGES` appended to its minute table
    (on the canary, effect ``gauge`` multiplies ``spec.effect_gauge`` by ``effect_size`` from the onset)."""
    mins = arm.minutes
    assert mins is not None
    req = mins[mins["metric"] == "requests"].sort_values("minute")
    n = req["value"].to_numpy(float)  # NaN where the scrape is missing: the gauges miss it too
    T = spec.minutes
    frames = [mins]
    for g in GAUGES[:spec.extra_gauges]:
        level = g.idle + g.base * n if g.per_request else g.base * load ** g.load_exp
        val = level * np.exp(g.u_load * u + g.v_load * v + g.noise * rng.standard_normal(T))
        if canary and spec.effect == "gauge" and g.name == spec.effect_gauge:
            val = np.where(np.arange(T) >= spec.onset_min, val * spec.effect_size, val)
        val = np.where(np.isfinite(n), val, np.nan)
        frames.append(pd.DataFrame({"minute": np.arange(T), "metric": g.name, "value": val,
                                    "count": req["count"].to_numpy(float)}))
    return replace(arm, minutes=pd.concat(frames, ignore_index=True))
