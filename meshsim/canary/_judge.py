"""meshsim's canary judge: sequential, anytime-valid, family-wise, with practical margins.

For every metric test (each latency quantile is one test) the judge keeps, minute by minute,
an anytime-valid confidence sequence for the canary's change relative to the baseline:

* latency quantiles, throughput and gauges: minute-paired differences (``log canary - log
  baseline`` for relative margins), whose load swings cancel, with a variance that allows
  for autocorrelated per-arm noise (:func:`meshsim.canary.sequential.paired_cs`);
* error rates: the conditional count test (:func:`meshsim.canary.sequential.count_test`) for
  ROLLBACK, and for PROMOTE both a beta-binomial confidence sequence on each arm's rate and
  the paired per-minute rate differences.

At each look (every minute by default):

* a test is **ROLLBACK** when its lower bound (at its share of the family-wise error rate)
  is above ``rollback_above`` (0: any confirmed harm), **PROMOTE** when its upper bound (at
  the configured confidence) is inside the margin, otherwise **INCONCLUSIVE**. PROMOTE is
  judged at a few planned checkpoints (``decision.promote_at``; by default 1/6, 1/3, 2/3
  and all of the horizon) with group-sequential bounds
  (:func:`meshsim.canary.sequential.checkpoint_bounds`), which are narrower than bounds
  valid at every look; ``promote_at: every-look`` uses the latter. A change that the
  every-look bound already places inside the margin is never rolled back (the change is
  real but acceptable): PROMOTE wins, or the test waits for the next checkpoint;
* the canary is ROLLBACK as soon as one test is, PROMOTE when all are, and the first such
  look is final. Before ``min_duration`` (and ``min_requests``) nothing is decided.

The family-wise false-ROLLBACK rate is split across tests by weighted Bonferroni (a
metric's weight shared by its quantiles, halved per side for ``direction: either``); the
sequential boundaries make it hold over all looks. A regression at least as large as a
margin is PROMOTEd with probability at most ``1 - confidence``.

``mode: kayenta`` dispatches to :func:`meshsim.canary.kayenta.judge_kayenta`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from meshsim._exceptions import CanaryError
from meshsim.canary._model import ArmData, Decision, Judgement, MetricResult, WatchResult
from meshsim.canary.config import JudgeConfig, MetricConfig, parse_judge_config, quantile_level
from meshsim.canary.sequential import (
    DriftPosterior,
    checkpoint_bounds,
    count_test,
    drift_posterior,
    drift_quantile,
    paired_cs,
    running_variance,
)

__all__ = ["judge", "watch", "minute_series"]

_EPS = 1e-12


# --------------------------------------------------------------------------------------------------
# input: per-minute series of one arm


def _quantiles_by_minute(minute: np.ndarray, values: np.ndarray, T: int, qs: list[float]) -> dict[float, np.ndarray]:
    order = np.lexsort((values, minute))
    v = values[order]
    counts = np.bincount(minute, minlength=T)[:T]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    has = counts > 0
    out = {}
    for q in qs:
        pos = q * np.maximum(counts - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        last = max(v.size - 1, 0)
        i0 = np.minimum(starts + lo, last)
        i1 = np.minimum(starts + np.minimum(lo + 1, np.maximum(counts - 1, 0)), last)
        r = np.full(T, np.nan)
        if v.size:
            r[has] = (v[i0] * (1 - frac) + v[i1] * frac)[has]
        out[q] = r
    return out


def _hist_quantiles(h: pd.DataFrame, T: int, qs: list[float]) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """Per-minute quantiles from cumulative ``le`` buckets (linear inside a bucket, as Prometheus)."""
    out = {q: np.full(T, np.nan) for q in qs}
    total = np.full(T, np.nan)
    for minute, g in h.groupby("minute", sort=True):
        mi = int(minute)
        if not 0 <= mi < T:
            continue
        g = g.sort_values("le")
        le = g["le"].to_numpy(float)
        cum = np.maximum.accumulate(np.nan_to_num(g["count"].to_numpy(float)))
        if cum.size == 0:
            continue
        n = cum[-1]
        total[mi] = n
        if n <= 0:
            continue
        for q in qs:
            rank = q * n
            i = int(np.searchsorted(cum, rank, side="left"))
            i = min(i, le.size - 1)
            if not np.isfinite(le[i]):
                out[q][mi] = le[i - 1] if i > 0 else np.nan
                continue
            lo_le = le[i - 1] if i > 0 else 0.0
            lo_c = cum[i - 1] if i > 0 else 0.0
            width = cum[i] - lo_c
            out[q][mi] = lo_le + (le[i] - lo_le) * ((rank - lo_c) / width if width > 0 else 1.0)
    return out, total


def _n_minutes(arm: ArmData) -> int:
    m = -1
    if arm.requests is not None and len(arm.requests):
        m = max(m, int(np.nanmax(arm.requests["t"].to_numpy(float)) // 60))
    if arm.minutes is not None and len(arm.minutes):
        m = max(m, int(np.nanmax(arm.minutes["minute"].to_numpy(float))))
    if arm.histograms is not None and len(arm.histograms):
        m = max(m, int(np.nanmax(arm.histograms["minute"].to_numpy(float))))
    return m + 1


# Arms of unequal size: a per-minute p99 of 30 requests reads lower than one of 570 (it is close to
# the sample maximum), so the arms' per-minute quantiles are not comparable. From raw requests the
# larger arm's quantile is the geometric mean over equal-size subsamples of the smaller arm's size
# (interleaved in time order), which has the same small-sample behaviour; from aggregates the judge
# can only refuse the side the bias favours (``_size_bias``).
_MATCH_RATIO = 1.5


def _matched_raw_quantiles(big: ArmData, small_counts: np.ndarray, T: int, qs: list[float]) -> dict[float, np.ndarray]:
    """Per-minute quantiles of ``big`` (raw requests) estimated at the other arm's per-minute size."""
    req = big.requests
    t = req["t"].to_numpy(float)
    lat = req["latency_s"].to_numpy(float)
    ok = np.isfinite(t) & (t >= 0) & np.isfinite(lat)
    minute = (t[ok] // 60).astype(np.int64)
    keep = minute < T
    minute, lat, tt = minute[keep], lat[ok][keep], t[ok][keep]
    order = np.lexsort((tt, minute))
    minute, lat = minute[order], lat[order]
    counts = np.bincount(minute, minlength=T)[:T]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    out = {q: np.full(T, np.nan) for q in qs}
    for mi in np.flatnonzero(counts > 0):
        n_big, n_small = int(counts[mi]), int(np.nan_to_num(small_counts[mi]))
        if n_small <= 0 or n_big < _MATCH_RATIO * n_small:
            continue
        k = n_big // n_small
        x = lat[starts[mi]: starts[mi] + k * n_small].reshape(n_small, k).T  # k interleaved groups
        x = np.sort(x, axis=1)
        for q in qs:
            pos = q * (n_small - 1)
            lo = int(math.floor(pos))
            hi = min(lo + 1, n_small - 1)
            v = x[:, lo] * (1 - (pos - lo)) + x[:, hi] * (pos - lo)
            out[q][mi] = float(np.exp(np.mean(np.log(v)))) if np.all(v > 0) else float(np.mean(v))
    return out


def _match_sizes(baseline: ArmData, canary: ArmData, names: list[str], T: int,
                 sb: dict[str, np.ndarray], sc: dict[str, np.ndarray]) -> bool:
    """Re-estimate the larger raw arm's per-minute latency quantiles at the smaller arm's size, in place.

    Only for series computed from raw requests in both arms (a per-minute table wins in
    :func:`minute_series`). Returns whether any minute was re-estimated.
    """
    if baseline.requests is None or canary.requests is None or not len(baseline.requests) or not len(canary.requests):
        return False
    qnames = [n for n in names if n.startswith("latency_p")]
    have_table = {a: set(map(str, x.minutes["metric"].unique())) if x.minutes is not None and len(x.minutes) else set()
                  for a, x in (("b", baseline), ("c", canary))}
    qnames = [n for n in qnames if n not in have_table["b"] and n not in have_table["c"]]
    if not qnames:
        return False
    nb, nc = np.nan_to_num(sb.get("requests", np.zeros(T))), np.nan_to_num(sc.get("requests", np.zeros(T)))
    qs = {n: quantile_level(n[len("latency_"):-2]) for n in qnames}
    changed = False
    for big, big_s, small_n, big_n in ((baseline, sb, nc, nb), (canary, sc, nb, nc)):
        if not np.any((small_n > 0) & (big_n >= _MATCH_RATIO * small_n)):
            continue
        res = _matched_raw_quantiles(big, small_n, T, sorted(set(qs.values())))
        for n, q in qs.items():
            if n in big_s:
                big_s[n] = np.where(np.isfinite(res[q]), res[q], big_s[n])
        changed = True
    return changed


def _size_bias(q: float, nb: np.ndarray, nc: np.ndarray) -> int:
    """Which arm's aggregated per-minute quantile reads low for lack of requests: -1 canary, +1 baseline, 0 neither.

    Judged on the median minute: the arms differ by at least ``_MATCH_RATIO`` and the smaller
    one expects fewer than 2 requests above the quantile.
    """
    ok = np.isfinite(nb) & np.isfinite(nc) & (nb > 0) & (nc > 0)
    if not ok.any():
        return 0
    b, c = float(np.median(nb[ok])), float(np.median(nc[ok]))
    small, big = min(b, c), max(b, c)
    if big < _MATCH_RATIO * small or small * (1.0 - q) >= 2.0:
        return 0
    return -1 if c < b else 1


def minute_series(arm: ArmData, names: list[str], T: int) -> dict[str, np.ndarray]:
    """The per-minute series ``names`` of one arm, each an array of length ``T`` (NaN = no data).

    Series come from the per-minute table when it has them, else are computed from raw
    requests (``requests``, ``errors``: status >= 500 or 0, ``latency_pNN_s``,
    ``latency_mean_s``), else from histograms (latency quantiles, ``requests``).
    A series the arm does not have at all is absent from the result.
    """
    out: dict[str, np.ndarray] = {}
    mins = arm.minutes
    if mins is not None and len(mins):
        sub = mins[mins["metric"].isin(names)]
        for name, g in sub.groupby("metric", sort=False):
            v = np.full(T, np.nan)
            mi = g["minute"].to_numpy()
            ok = (mi >= 0) & (mi < T)
            vals = g["value"].to_numpy(float)
            # several rows for one minute (e.g. several instances) are summed for counts, averaged otherwise
            if name in ("requests", "errors"):
                v_ok = np.bincount(mi[ok].astype(np.int64), weights=np.nan_to_num(vals[ok]), minlength=T)[:T]
                seen = np.bincount(mi[ok].astype(np.int64), weights=np.isfinite(vals[ok]).astype(float),
                                   minlength=T)[:T]
                v = np.where(seen > 0, v_ok, np.nan)
            else:
                df = pd.DataFrame({"m": mi[ok], "v": vals[ok]}).groupby("m")["v"].mean()
                v[df.index.to_numpy(np.int64)] = df.to_numpy()
            out[str(name)] = v
    missing = [n for n in names if n not in out]
    req = arm.requests
    if missing and req is not None and len(req):
        t = req["t"].to_numpy(float)
        ok = np.isfinite(t) & (t >= 0)
        minute = (t[ok] // 60).astype(np.int64)
        keep = minute < T
        minute = minute[keep]
        status = req["status"].to_numpy()[ok][keep]
        lat = req["latency_s"].to_numpy(float)[ok][keep]
        counts = np.bincount(minute, minlength=T)[:T].astype(float)
        if "requests" in missing:
            out["requests"] = counts
        if "errors" in missing:
            err = (status >= 500) | (status == 0)
            out["errors"] = np.bincount(minute, weights=err.astype(float), minlength=T)[:T]
        qnames = [n for n in missing if n.startswith("latency_p")]
        if qnames or "latency_mean_s" in missing:
            good = np.isfinite(lat)
            qs = {n: quantile_level(n[len("latency_"):-2]) for n in qnames}
            res = _quantiles_by_minute(minute[good], lat[good], T, sorted(set(qs.values())))
            for n, q in qs.items():
                out[n] = res[q]
            if "latency_mean_s" in missing:
                c = np.bincount(minute[good], minlength=T)[:T]
                s = np.bincount(minute[good], weights=lat[good], minlength=T)[:T]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out["latency_mean_s"] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    missing = [n for n in names if n not in out]
    h = arm.histograms
    if missing and h is not None and len(h):
        qnames = [n for n in missing if n.startswith("latency_p")]
        qs = {n: quantile_level(n[len("latency_"):-2]) for n in qnames}
        res, total = _hist_quantiles(h, T, sorted(set(qs.values())))
        for n, q in qs.items():
            out[n] = res[q]
        if "requests" in missing:
            out["requests"] = total
    return out


# --------------------------------------------------------------------------------------------------
# tests


@dataclass
class _Test:
    metric: MetricConfig
    label: str
    kind: str
    relative: bool
    effect_kind: str  # ratio | difference
    alpha: float  # family-wise share for ROLLBACK (whole test, both sides for 'either')
    beta: float
    # per-look arrays (index i = look after minute i+1)
    lower: np.ndarray = field(default_factory=lambda: np.empty(0))  # rollback-side lower bound of the change
    upper: np.ndarray = field(default_factory=lambda: np.empty(0))  # promote-side upper bound
    lower_pr: np.ndarray = field(default_factory=lambda: np.empty(0))  # promote-side lower bound ('either')
    upper_rb: np.ndarray = field(default_factory=lambda: np.empty(0))  # rollback-side upper bound ('either'/'decrease')
    # promote-side bounds valid at every look (= upper/lower_pr without checkpoints); a change they
    # place inside the margin is not rolled back while it waits for a PROMOTE checkpoint
    upper_tu: np.ndarray = field(default_factory=lambda: np.empty(0))
    lower_pr_tu: np.ndarray = field(default_factory=lambda: np.empty(0))
    estimate: np.ndarray = field(default_factory=lambda: np.empty(0))
    base_value: np.ndarray = field(default_factory=lambda: np.empty(0))
    can_value: np.ndarray = field(default_factory=lambda: np.empty(0))
    n_base: np.ndarray = field(default_factory=lambda: np.empty(0))
    n_can: np.ndarray = field(default_factory=lambda: np.empty(0))
    minutes: np.ndarray = field(default_factory=lambda: np.empty(0))
    p_value: np.ndarray | None = None
    e_value: np.ndarray | None = None
    rollback: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    promote: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    no_canary_data: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    test_name: str = ""
    size_note: str = ""  # why one side of the test is refused (arms of unequal size, aggregated input)
    drift_held: np.ndarray | None = None  # per look: ROLLBACK held back by the instance-drift check
    margin_thr: float = 0.0  # on the analysis scale (log for relative)
    rb_thr: float = 0.0


def _tests_of(config: JudgeConfig) -> list[_Test]:
    total_w = sum(m.weight for m in config.metrics)
    alpha = config.decision.family_wise_error_rate
    beta = 1.0 - config.decision.confidence
    out = []
    for m in config.metrics:
        share = alpha * m.weight / total_w
        labels = [f"{m.name}.{q}" for q in m.quantiles] if m.kind == "latency" else [m.name]
        for lab in labels:
            rel = m.margin.relative
            ek = "ratio" if rel else "difference"
            t = _Test(m, lab, m.kind, rel, ek, share / len(labels), beta)
            if rel:
                t.margin_thr = math.log1p(m.margin.value)
                t.rb_thr = math.log1p(m.rollback_threshold.value)
            else:
                t.margin_thr = m.margin.value
                t.rb_thr = m.rollback_threshold.value
            out.append(t)
    return out


def _run_cumsum(a: np.ndarray) -> np.ndarray:
    return np.cumsum(np.nan_to_num(a))


# ROLLBACK side: until the data say otherwise, the long-run variance of the paired minute differences
# of a test is taken as its minute-to-minute variance plus twice that of the metric's best-measured
# quantile (a persistent part: instance drift shifts the whole distribution), with the weight of 10
# minutes of data. Separate instances per arm make per-minute differences autocorrelated; a short
# series cannot show it, and a variance estimated as white made early looks leak. Measured (300
# runs each): A/A ROLLBACK with per-arm AR(1) rho 0.7 sd 5 % 7.7 % -> 3.7 % (latency only); +20 %
# latency on a shared fleet caught at a median 9 min instead of 8; p99-only +20 % within 60 min
# 84 % (78 % with the error metric too) against 85 % (80 %) without the prior.
_RB_RATIO_PRIOR = (3.0, 10.0)


# ROLLBACK side, separate instances: the drift check's level as a share of the test's error rate.
# A change is rolled back only when, besides the confidence sequence, the posterior of the change
# under the instance-drift model (sequential.drift_posterior) puts less than this share of the
# test's alpha below zero. Chosen on A/A and regression runs of the benchmark's generator with seeds
# apart from the report's (1,000 A/A runs with per-arm AR(1) rho 0.95, sd 5 %: false ROLLBACK 16 %
# -> 3 %; 300 runs each on a shared fleet: +10 % caught within 60 min in 97 % (median 35 min instead
# of 15), +20 % at a median 10 min instead of 9, p99-only unchanged). In reports/canary.md (2,000 A/A
# runs, its own seeds): 16.7 % -> 4.8 %, and +10 % within 60 min in 96 %. A smaller share holds the
# A/A rate lower but slows +10 % past the 95 %-within-60-min target: the two sit on one frontier.
_DRIFT_GATE = 1.0 / 3.0


def _bounds(y: np.ndarray, t: _Test, v_opt: float, persistent_sd: float = 0.0,
            checkpoints: tuple[int, ...] | None = None, prior_ref: np.ndarray | None = None,
            drift: DriftPosterior | None = None) -> None:
    """Paired bounds of the change ``y`` (analysis scale), running-intersected.

    ROLLBACK side: confidence sequences valid at every look, widened where the instance-drift
    posterior ``drift`` (one series) is not as sure. PROMOTE side: the same sequences, or, with
    ``checkpoints`` (minutes), group-sequential bounds judged only there.
    """
    d = t.metric.direction
    a_rb = t.alpha / 2 if d == "either" else t.alpha
    cs_rb = paired_cs(y, alpha_lower=a_rb, alpha_upper=a_rb, v_opt=v_opt, persistent_sd=persistent_sd,
                      ratio_prior=_RB_RATIO_PRIOR[0], ratio_prior_minutes=_RB_RATIO_PRIOR[1],
                      ratio_prior_ref=prior_ref)
    lo_rb, up_rb = cs_rb.lower, cs_rb.upper
    if drift is not None:
        a_g = a_rb * _DRIFT_GATE
        if d != "decrease":
            lo_rb = np.fmin(lo_rb, drift_quantile(drift, a_g, cap=lo_rb[None])[0])
        if d != "increase":
            up_rb = np.fmax(up_rb, drift_quantile(drift, 1.0 - a_g, cap=up_rb[None], upper=True)[0])
    t.lower = np.maximum.accumulate(lo_rb)
    t.upper_rb = np.minimum.accumulate(up_rb)
    if drift is not None:  # looks where the confidence sequence alone would roll back
        held = np.zeros(t.lower.size, bool)
        if d != "decrease":
            held |= (np.maximum.accumulate(cs_rb.lower) > t.rb_thr) & ~(t.lower > t.rb_thr)
        if d != "increase":
            held |= (np.minimum.accumulate(cs_rb.upper) < -t.rb_thr) & ~(t.upper_rb < -t.rb_thr)
        t.drift_held = held
    cs_pr = paired_cs(y, alpha_lower=t.beta, alpha_upper=t.beta, v_opt=v_opt, persistent_sd=persistent_sd)
    t.upper_tu = np.minimum.accumulate(cs_pr.upper)
    t.lower_pr_tu = np.maximum.accumulate(cs_pr.lower)
    if checkpoints is None:
        t.upper, t.lower_pr = t.upper_tu, t.lower_pr_tu
    else:
        t.lower_pr, t.upper = checkpoint_bounds(y, checkpoints, alpha_lower=t.beta, alpha_upper=t.beta,
                                                persistent_sd=persistent_sd)
    t.estimate = cs_rb.mean
    t.minutes = cs_rb.n


def _decide_paired(t: _Test) -> None:
    """ROLLBACK / PROMOTE per look; a change shown inside the margin at every-look confidence is never
    rolled back (PROMOTE wins, or, with checkpoints, the test waits for the next one)."""
    d, m = t.metric.direction, t.margin_thr
    if d == "increase":
        t.rollback = (t.lower > t.rb_thr) & ~(t.upper_tu < m)
        t.promote = t.upper < m
    elif d == "decrease":
        t.rollback = (t.upper_rb < -t.rb_thr) & ~(t.lower_pr_tu > -m)
        t.promote = t.lower_pr > -m
    else:
        inside = (t.upper_tu < m) & (t.lower_pr_tu > -m)
        t.rollback = ((t.lower > t.rb_thr) | (t.upper_rb < -t.rb_thr)) & ~inside
        t.promote = (t.upper < m) & (t.lower_pr > -m)


def _betabinom_upper(x: np.ndarray, n: np.ndarray, alpha: float, upper: bool) -> np.ndarray:
    """Anytime-valid bound on a Bernoulli rate from cumulative (errors, requests): Beta(0.5, 0.5) mixture."""
    from scipy import special

    a0, b0 = 0.5, 0.5
    thr = math.log(1.0 / alpha)
    base = special.betaln(a0 + x, b0 + n - x) - special.betaln(a0, b0)
    phat = np.where(n > 0, x / np.maximum(n, 1), 0.5)
    if upper:
        lo, hi = phat.copy(), np.ones_like(phat)
    else:
        lo, hi = np.zeros_like(phat), phat.copy()
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            loge = base - x * np.log(mid) - (n - x) * np.log1p(-mid)
        rejected = loge >= thr
        if upper:
            hi = np.where(rejected, mid, hi)
            lo = np.where(rejected, lo, mid)
        else:
            lo = np.where(rejected, mid, lo)
            hi = np.where(rejected, hi, mid)
    res = hi if upper else lo
    return np.where(n > 0, res, 1.0 if upper else 0.0)


def _series_of(t: _Test) -> str:
    m = t.metric
    return m.series_names[0] if m.kind != "latency" else f"latency_{t.label.rsplit('.', 1)[1]}_s"


def _paired(t: _Test, b: np.ndarray, c: np.ndarray, series: str) -> np.ndarray:
    """The per-minute paired change of a test: log ratio for relative margins, else the difference."""
    m = t.metric
    if not t.relative:
        return c - b
    with np.errstate(invalid="ignore", divide="ignore"):
        okp = (b > 0) & (c > 0)
        if np.any(np.isfinite(b) & np.isfinite(c) & ~okp & ~((b == 0) & (c == 0))) and m.kind == "gauge":
            raise CanaryError(
                f"metric {m.name!r}: the series {series!r} has values <= 0, so a relative margin "
                f"({m.margin}) cannot apply; give an absolute margin (a plain number)"
            )
        return np.where(okp, np.log(np.where(okp, c, 1.0)) - np.log(np.where(okp, b, 1.0)), np.nan)


def _analyze(baseline: ArmData, canary: ArmData, config: JudgeConfig) -> tuple[list[_Test], int, np.ndarray]:
    for arm, what in ((baseline, "baseline"), (canary, "canary")):
        if not isinstance(arm, ArmData):
            raise CanaryError(f"the {what} must be an ArmData, got {type(arm).__name__}")
    T = max(_n_minutes(baseline), _n_minutes(canary))
    if _n_minutes(baseline) <= 0:
        raise CanaryError(f"the baseline arm has no data{_src(baseline)}; nothing to compare the canary with")
    if T <= 0:
        raise CanaryError("neither arm has any data")
    names = sorted({s for m in config.metrics for s in m.series_names} | {"requests"})
    sb = minute_series(baseline, names, T)
    sc = minute_series(canary, names, T)
    for m in config.metrics:
        for s in m.series_names:
            if s not in sb and s not in sc:
                have = sorted(set(_available(baseline)) | set(_available(canary)))
                from meshsim.canary.config import _suggest

                raise CanaryError(
                    f"metric {m.name!r}: neither arm has the series {s!r}{_suggest(s, have)}"
                    f" (available: {', '.join(have) or 'none'})"
                )
    matched = _match_sizes(baseline, canary, names, T, sb, sc)
    nan = np.full(T, np.nan)
    req_b, req_c = sb.get("requests", nan), sc.get("requests", nan)
    cum_rb, cum_rc = _run_cumsum(req_b), _run_cumsum(req_c)
    v_opt = max(config.decision.horizon_s / 60.0 / 6.0, 5.0)
    cps = config.decision.promote_checkpoints_min()
    tests = _tests_of(config)
    refs: dict[str, np.ndarray] = {}  # latency metric -> per-minute variance of its best-measured quantile
    ys: dict[str, np.ndarray] = {}  # paired series computed ahead for the above, by test label
    posts: dict[str, tuple[DriftPosterior, dict[str, int]]] = {}  # metric -> drift posterior, row per test
    for t in tests:
        m = t.metric
        # separate instances: relative latency and gauge changes are checked against instance drift
        drift_check = (config.decision.instances == "separate" and t.relative
                       and m.kind in ("latency", "gauge"))
        if m.kind == "error_rate":
            eb, ec = sb.get("errors", nan), sc.get("errors", nan)
            nb_, nc_ = req_b, req_c
            okb = np.isfinite(eb) & np.isfinite(nb_) & (nb_ > 0)
            okc = np.isfinite(ec) & np.isfinite(nc_) & (nc_ > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                rb_ = np.where(okb, eb / np.where(okb, nb_, 1), np.nan)
                rc_ = np.where(okc, ec / np.where(okc, nc_, 1), np.nan)
            xb, xc = _run_cumsum(np.where(okb, eb, 0)), _run_cumsum(np.where(okc, ec, 0))
            n_b, n_c = _run_cumsum(np.where(okb, nb_, 0)), _run_cumsum(np.where(okc, nc_, 0))
            with np.errstate(invalid="ignore", divide="ignore"):
                pb, pc = np.where(n_b > 0, xb / n_b, np.nan), np.where(n_c > 0, xc / n_c, np.nan)
            t.base_value, t.can_value, t.n_base, t.n_can = pb, pc, n_b, n_c
            both = okb & okc
            y = np.where(both, rc_ - rb_, np.nan)
            t.effect_kind = "difference" if not t.relative else "ratio"
            # paired differences of per-minute rates (robust to overdispersion), absolute scale
            margin_abs = m.margin.value if not t.relative else m.margin.value * np.nan_to_num(pb, nan=0.0)
            tt = _Test(m, t.label, t.kind, False, "difference", t.alpha, t.beta)
            _bounds(y, tt, v_opt, checkpoints=cps)
            # counts: rollback by the conditional count test
            delta0 = math.log1p(m.rollback_threshold.value) if t.relative else 0.0
            ct = count_test(np.where(both, eb, 0), np.where(both, nb_, 0), np.where(both, ec, 0),
                            np.where(both, nc_, 0), delta0=delta0)
            t.e_value, t.p_value = ct.e_value, ct.p_value
            up_c = _betabinom_upper(xc, n_c, t.beta / 2, True)
            lo_b = _betabinom_upper(xb, n_b, t.beta / 2, False)
            lo_c = _betabinom_upper(xc, n_c, t.beta / 2, False)
            up_b = _betabinom_upper(xb, n_b, t.beta / 2, True)
            diff_hi = np.minimum.accumulate(up_c - lo_b)
            diff_lo = np.maximum.accumulate(lo_c - up_b)
            t.minutes = tt.minutes
            if m.direction == "increase":
                use_counts_rb = t.relative or m.rollback_threshold.value == 0
                t.rollback = (ct.e_value >= 1.0 / t.alpha) if use_counts_rb else (tt.lower > t.rb_thr)
                t.rollback = t.rollback & ~((diff_hi < margin_abs) & (tt.upper_tu < margin_abs))
                t.promote = (diff_hi < margin_abs) & (tt.upper < margin_abs)
            else:
                _decide_paired(tt)
                t.rollback, t.promote = tt.rollback, tt.promote
                if m.direction == "either":
                    t.promote = t.promote & (diff_hi < margin_abs) & (diff_lo > -margin_abs)
                    t.rollback = t.rollback & ~((diff_hi < margin_abs) & (diff_lo > -margin_abs))
                else:
                    t.promote = t.promote & (diff_lo > -margin_abs)
                    t.rollback = t.rollback & ~(diff_lo > -margin_abs)
            if t.relative:
                with np.errstate(invalid="ignore", divide="ignore"):
                    t.estimate = pc / pb
                    t.lower = np.where(pb > 0, 1.0 + diff_lo / np.maximum(pb, _EPS), np.nan)
                    t.upper = np.where(pb > 0, 1.0 + diff_hi / np.maximum(pb, _EPS), np.inf)
            else:
                t.estimate, t.lower, t.upper = pc - pb, diff_lo, diff_hi
            t.test_name = "count-mixture + beta-binomial CS"
            t.no_canary_data = (n_c == 0) & (n_b > 0)
            continue
        series = _series_of(t)
        b, c = sb.get(series, nan), sc.get(series, nan)
        ref = drift = None
        if (m.kind == "latency" and len(m.quantiles) > 1) or drift_check:
            if m.name not in refs:
                mine = [u for u in tests if u.metric is m]
                for u in mine:
                    su = _series_of(u)
                    ys[u.label] = _paired(u, sb.get(su, nan), sc.get(su, nan), su)
                rv = [running_variance(ys[u.label]) for u in mine]
                # the prior's persistent part is sized by the metric's best-measured quantile
                refs[m.name] = np.fmin.reduce(rv)
                if drift_check:
                    # drift shifts every quantile alike: its posterior comes from the best-measured one
                    best = np.argmin(np.nan_to_num(np.stack(rv), nan=np.inf), axis=0)
                    posts[m.name] = (drift_posterior(np.stack([ys[u.label] for u in mine]), shared_from=best),
                                     {u.label: i for i, u in enumerate(mine)})
            if m.kind == "latency" and len(m.quantiles) > 1:
                ref = refs[m.name]
            if drift_check:
                post, idx = posts[m.name]
                i = idx[t.label]
                drift = DriftPosterior(post.mean[i:i + 1], post.var[i:i + 1], post.log_w[i:i + 1], post.n[i:i + 1])
        y = ys.pop(t.label) if t.label in ys else _paired(t, b, c, series)
        psd = math.sqrt(2.0) * config.decision.instance_noise if t.relative else 0.0
        _bounds(y, t, v_opt, psd, cps, ref, drift)
        _decide_paired(t)
        if m.kind == "latency" and not matched:
            q = quantile_level(t.label.rsplit(".", 1)[1])
            low = _size_bias(q, req_b, req_c)
            # the arm with few requests reads low, so the side of the test that the bias favours is
            # not evidence: with a small canary (low < 0) a canary that looks faster, with a small
            # baseline a canary that looks slower (sides swap for direction: decrease)
            if low:
                nb_med = float(np.nanmedian(np.where(req_b > 0, req_b, np.nan)))
                nc_med = float(np.nanmedian(np.where(req_c > 0, req_c, np.nan)))
                t.size_note = (f"per-minute {t.label.rsplit('.', 1)[1]} of {nb_med:.0f} (baseline) vs {nc_med:.0f} "
                               f"(canary) requests are not comparable (a small sample reads low); give raw "
                               f"requests, where equal-size estimates are used")
                looks_better = (low < 0) == (m.direction != "decrease")
                if looks_better or m.direction == "either":
                    t.promote = np.zeros_like(np.asarray(t.promote, bool))
                if not looks_better or m.direction == "either":
                    t.rollback = np.zeros_like(np.asarray(t.rollback, bool))
        hb = np.isfinite(b)
        hc = np.isfinite(c)
        with np.errstate(invalid="ignore"):
            cnt_b = _run_cumsum(np.where(hb, 1.0, 0.0))
            cnt_c = _run_cumsum(np.where(hc, 1.0, 0.0))
            t.base_value = _running_median(b)
            t.can_value = _running_median(c)
        t.n_base = cum_rb if m.kind == "latency" else cnt_b
        t.n_can = cum_rc if m.kind == "latency" else cnt_c
        t.no_canary_data = (cnt_c == 0) & (cnt_b > 0)
        t.test_name = "paired-minutes-cs"
        if t.relative:
            with np.errstate(over="ignore"):
                t.estimate = np.exp(t.estimate)
                t.lower, t.upper = np.exp(t.lower), np.exp(t.upper)
                t.lower_pr, t.upper_rb = np.exp(t.lower_pr), np.exp(t.upper_rb)
                t.upper_tu, t.lower_pr_tu = np.exp(t.upper_tu), np.exp(t.lower_pr_tu)
    eligible = (np.arange(1, T + 1) * 60.0 >= config.decision.min_duration_s - 1e-9)
    if config.decision.min_requests > 0:
        eligible &= (cum_rb >= config.decision.min_requests) & (cum_rc >= config.decision.min_requests)
    return tests, T, eligible


def _running_median(x: np.ndarray) -> np.ndarray:
    """Median of the per-minute values so far (what the report shows as the arm's value)."""
    out = np.full(x.size, np.nan)
    vals: list[float] = []
    import bisect

    for i, v in enumerate(x):
        if np.isfinite(v):
            bisect.insort(vals, float(v))
        if vals:
            k = len(vals)
            out[i] = vals[k // 2] if k % 2 else 0.5 * (vals[k // 2 - 1] + vals[k // 2])
    return out


def _available(arm: ArmData) -> list[str]:
    out: list[str] = []
    if arm.minutes is not None and len(arm.minutes):
        out += [str(x) for x in arm.minutes["metric"].unique()]
    if arm.requests is not None and len(arm.requests):
        out += ["requests", "errors", "latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_mean_s"]
    if arm.histograms is not None and len(arm.histograms):
        out += ["requests", "latency_p50_s", "latency_p90_s", "latency_p99_s"]
    return out


def _src(arm: ArmData) -> str:
    return f" ({arm.source})" if arm.source else ""


# --------------------------------------------------------------------------------------------------
# verdicts


def _states(tests: list[_Test], eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test and look: 0 inconclusive, 1 promote, 2 rollback; and the overall code per look."""
    k, T = len(tests), eligible.size
    st = np.zeros((k, T), dtype=np.int8)
    for i, t in enumerate(tests):
        promote = np.asarray(t.promote, bool) & eligible
        rollback = np.asarray(t.rollback, bool) & eligible & ~promote
        if t.metric.critical:
            rollback |= np.asarray(t.no_canary_data, bool) & eligible
        st[i] = np.where(promote, 1, np.where(rollback, 2, 0))
    overall = np.where((st == 2).any(0), 2, np.where((st == 1).all(0), 1, 0)).astype(np.int8)
    return st, overall


_CODE = {0: Decision.INCONCLUSIVE, 1: Decision.PROMOTE, 2: Decision.ROLLBACK}


def _fmt(v: float, kind: str) -> str:
    if not np.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "n/a")
    if kind == "ratio":
        return f"{(v - 1) * 100:+.1f}%"
    return f"{v * 100:+.3g}pp"


def _metric_result(t: _Test, i: int, code: int) -> MetricResult:
    m = t.metric
    kind = "ratio" if t.relative else "difference"
    if m.kind == "error_rate" and not t.relative:
        kind = "difference"
    margin = (1.0 + m.margin.value) if t.relative else m.margin.value
    est, lo, hi = float(t.estimate[i]), float(t.lower[i]), float(t.upper[i])
    if not np.isfinite(hi) and t.upper_tu.size:  # before the first PROMOTE checkpoint: the every-look bound
        hi = float(t.upper_tu[i])
    n = int(t.minutes[i]) if t.minutes.size else 0
    dec = _CODE[int(code)]
    unit = "pp" if (m.kind == "error_rate" and not t.relative) else ""
    mtxt = f"{m.margin}" if t.relative else (f"{m.margin.value * 100:g}pp" if unit else f"{m.margin.value:g}")
    if n == 0 or not np.isfinite(est):
        if t.no_canary_data[i]:
            reason = "no canary data" + (" for a critical metric" if m.critical else "")
        else:
            reason = "no data in both arms yet"
    elif dec is Decision.ROLLBACK and t.e_value is not None and m.direction == "increase":
        reason = (f"worse: error rate {t.can_value[i] * 100:.3g}% vs {t.base_value[i] * 100:.3g}% on the baseline; "
                  f"count test e-value {t.e_value[i]:.3g} >= {1 / t.alpha:.3g}")
    elif dec is Decision.ROLLBACK:
        reason = f"worse: change {_fmt(est, kind)}, bounds [{_fmt(lo, kind)}, {_fmt(hi, kind)}], allowed {mtxt}"
    elif dec is Decision.PROMOTE:
        reason = f"within margin: change {_fmt(est, kind)}, bound {_fmt(hi, kind)} < {mtxt}"
    else:
        reason = f"undecided: change {_fmt(est, kind)}, bounds [{_fmt(lo, kind)}, {_fmt(hi, kind)}], allowed {mtxt}"
    if t.size_note and dec is not Decision.ROLLBACK and dec is not Decision.PROMOTE:
        reason += f"; {t.size_note}"
    if dec is Decision.INCONCLUSIVE and t.drift_held is not None and t.drift_held[i]:
        reason += ("; beyond sampling noise, but slow drift between the arms' instances could still explain it "
                   "(instances: separate); set instances: shared if one fleet serves both arms")
    pv = float(t.p_value[i]) if t.p_value is not None else None
    ev = float(t.e_value[i]) if t.e_value is not None else None
    return MetricResult(
        name=t.label, kind=m.kind, decision=dec, effect=est, ci_low=lo, ci_high=hi, margin=margin,
        effect_kind=kind, p_value=pv, e_value=ev, test=t.test_name,
        baseline=float(t.base_value[i]) if t.base_value.size else float("nan"),
        canary=float(t.can_value[i]) if t.can_value.size else float("nan"),
        n_baseline=int(np.nan_to_num(t.n_base[i])) if t.n_base.size else 0,
        n_canary=int(np.nan_to_num(t.n_can[i])) if t.n_can.size else 0,
        critical=m.critical, sequential=True, reason=reason,
        details={"minutes": n, "alpha": t.alpha, "confidence": 1 - t.beta, "direction": m.direction,
                 "rollback_above": m.rollback_threshold.value},
    )


def _judgement(tests: list[_Test], st: np.ndarray, overall: np.ndarray, i: int, eligible: np.ndarray,
               decided_at: float | None, checkpoints: tuple[int, ...] | None = None) -> Judgement:
    results = tuple(_metric_result(t, i, st[k, i]) for k, t in enumerate(tests))
    code = int(overall[i])
    dec = _CODE[code]
    if dec is Decision.ROLLBACK:
        bad = [r for r in results if r.decision is Decision.ROLLBACK]
        reason = "; ".join(f"{r.name}: {r.reason}" for r in bad)
    elif dec is Decision.PROMOTE:
        reason = f"every metric within its margin ({len(results)} tests)"
    elif not eligible[i]:
        reason = f"too early: no decision before min_duration / min_requests (at minute {i + 1})"
    else:
        pending = [r.name for r in results if r.decision is Decision.INCONCLUSIVE]
        reason = f"not yet decided: {', '.join(pending)}"
        later = [c for c in (checkpoints or ()) if c > i + 1]
        if later:
            reason += f"; PROMOTE is judged at minutes {', '.join(str(c) for c in checkpoints)} (next: {later[0]})"
    return Judgement(decision=dec, metrics=results, reason=reason, mode="meshsim", minutes=float(i + 1),
                     details={"decided_at": decided_at, "tests": len(results)})


def _config(config: JudgeConfig | Mapping[str, Any]) -> JudgeConfig:
    return config if isinstance(config, JudgeConfig) else parse_judge_config(config)


def _first_decision(overall: np.ndarray, looks: np.ndarray) -> int | None:
    hit = np.flatnonzero(overall[looks] != 0)
    return int(looks[hit[0]]) if hit.size else None


def judge(baseline: ArmData, canary: ArmData, config: JudgeConfig | Mapping[str, Any]) -> Judgement:
    """Judge a canary against its baseline.

    Parameters
    ----------
    baseline, canary
        The two arms (raw requests, per-minute aggregates or histograms).
    config
        A :class:`~meshsim.canary.config.JudgeConfig` or a mapping to validate.

    Returns
    -------
    Judgement
        The verdict at the first look (every ``look_every``) at which a decision was
        reached, or at the end of the data (INCONCLUSIVE) -- what :func:`watch` would
        have said. ``details['decided_at']`` is that minute (None if undecided).

    Raises
    ------
    CanaryError
        An arm has no data at all, or a metric's series is in neither arm.
    """
    cfg = _config(config)
    if cfg.mode == "kayenta":
        from meshsim.canary.kayenta import judge_kayenta  # written alongside; imported only when asked

        return judge_kayenta(baseline, canary, cfg)
    tests, T, eligible = _analyze(baseline, canary, cfg)
    st, overall = _states(tests, eligible)
    looks = _look_indices(T, cfg.decision.look_every_s / 60.0)
    first = _first_decision(overall, looks)
    i = first if first is not None else T - 1
    return _judgement(tests, st, overall, i, eligible, None if first is None else float(first + 1),
                      cfg.decision.promote_checkpoints_min())


def _look_indices(T: int, every: float) -> np.ndarray:
    if every <= 0:
        raise CanaryError(f"every_minutes must be > 0, got {every!r}")
    mins = np.arange(every, T + 1e-9, every)
    idx = np.unique(np.clip(np.ceil(mins - 1e-9).astype(np.int64) - 1, 0, T - 1))
    if idx.size == 0 or idx[-1] != T - 1:
        idx = np.r_[idx, T - 1]
    return idx


def watch(
    baseline: ArmData,
    canary: ArmData,
    config: JudgeConfig | Mapping[str, Any],
    every_minutes: float | None = None,
) -> WatchResult:
    """Replay the two arms in time order, looking every ``every_minutes``, until a decision.

    Each look sees only the minutes before it (as :meth:`ArmData.until`); the
    anytime-valid boundaries make looking every minute as safe as looking once.
    The replay stops at the first PROMOTE or ROLLBACK.

    Returns
    -------
    WatchResult
        ``looks``: (minute, Judgement) per look up to the decision; ``decided_at``:
        the minute of the decision, or None (INCONCLUSIVE at the end of the data).
    """
    cfg = _config(config)
    every = cfg.decision.look_every_s / 60.0 if every_minutes is None else float(every_minutes)
    if cfg.mode == "kayenta":
        from meshsim.canary.kayenta import watch_kayenta  # Kayenta judges at its own interval

        return watch_kayenta(baseline, canary, cfg)
    tests, T, eligible = _analyze(baseline, canary, cfg)
    st, overall = _states(tests, eligible)
    idx = _look_indices(T, every)
    first = _first_decision(overall, idx)
    stop = first if first is not None else T - 1
    decided = None if first is None else float(first + 1)
    cps = cfg.decision.promote_checkpoints_min()
    looks = tuple((float(i + 1), _judgement(tests, st, overall, int(i), eligible, decided, cps))
                  for i in idx[idx <= stop])
    return WatchResult(looks=looks, decision=_CODE[int(overall[stop])] if first is not None else Decision.INCONCLUSIVE,
                       decided_at=decided)


def decision_path(
    baseline: ArmData, canary: ArmData, config: JudgeConfig | Mapping[str, Any]
) -> tuple[Decision, float | None, np.ndarray]:
    """Fast path for benchmarks: (decision, minute decided or None, overall code per minute)."""
    cfg = _config(config)
    tests, T, eligible = _analyze(baseline, canary, cfg)
    _, overall = _states(tests, eligible)
    looks = _look_indices(T, cfg.decision.look_every_s / 60.0)
    first = _first_decision(overall, looks)
    if first is None:
        return Decision.INCONCLUSIVE, None, overall
    return _CODE[int(overall[first])], float(first + 1), overall
