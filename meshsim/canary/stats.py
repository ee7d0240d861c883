"""Fixed-sample statistics for comparing a baseline and a canary.

Each function takes the baseline first and the canary second and returns a
:class:`StatResult`: the test statistic, a p-value (and, where the method has
one, an e-value), and the **effect of the canary relative to the baseline**
with a confidence interval. Effects are differences ``canary - baseline`` or
ratios ``canary / baseline`` as the function's ``kind`` says.

Where scipy has the test it is used (``mannwhitneyu``, ``binomtest``,
``poisson_means_test``, ``ks_2samp``, ``anderson_ksamp``, ``t``); meshsim adds
the Hodges-Lehmann interval, a fast exact bootstrap of quantiles, and tests on
autocorrelated per-minute series (HAC/Newey-West variance, batch means,
circular block bootstrap).

These are one-look tests. Looking repeatedly at growing data needs the
anytime-valid versions in :mod:`meshsim.canary.sequential`; the judge uses those.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> base, can = rng.lognormal(0, 0.5, 400), 1.2 * rng.lognormal(0, 0.5, 400)
>>> r = mann_whitney(base, can)
>>> r.pvalue < 1e-6, round(r.estimate, 2)
(True, 0.2)
>>> b = bootstrap_quantile(base, can, q=0.5, rng=0)
>>> b.ci_low < 1.2 < b.ci_high
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

__all__ = [
    "StatResult",
    "mann_whitney",
    "hodges_lehmann",
    "bootstrap_quantile",
    "conditional_binomial_test",
    "poisson_rate_test",
    "ks_test",
    "anderson_darling_test",
    "hac_variance",
    "batch_means_variance",
    "paired_minutes_test",
    "block_bootstrap_mean",
]

Alternative = Literal["greater", "less", "two-sided"]
_ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class StatResult:
    """The outcome of one comparison of canary with baseline.

    Attributes
    ----------
    statistic
        The test statistic (U, D, A2, t, a count, ...; see ``method``).
    pvalue
        Evidence against "no harmful change" under the chosen ``alternative``.
    estimate
        The effect of the canary relative to the baseline (``effect_kind``).
    ci_low, ci_high
        Confidence interval of ``estimate`` at ``confidence_level``.
    confidence_level
        Level of the interval.
    method
        Name of the test (``"mann-whitney"``, ``"bootstrap-quantile"``, ...).
    effect_kind
        ``"difference"`` (canary - baseline) or ``"ratio"`` (canary / baseline).
    e_value
        An e-value when the method has one (else None).
    details
        Method-specific extras (sample sizes, variance estimates, ...).
    """

    statistic: float
    pvalue: float
    estimate: float
    ci_low: float
    ci_high: float
    confidence_level: float
    method: str
    effect_kind: str = "difference"
    e_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def confidence_interval(self) -> tuple[float, float]:
        """``(ci_low, ci_high)``."""
        return self.ci_low, self.ci_high


def _sample(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError(f"`{name}` has no finite values")
    return a


def _check(alternative: str, confidence: float) -> None:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {set(_ALTERNATIVES)}, got {alternative!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")


# --------------------------------------------------------------------------------------------------
# Mann-Whitney and Hodges-Lehmann


def _pairs_at_most(c: np.ndarray, b_sorted: np.ndarray, mu: float) -> int:
    """Number of pairs (i, j) with ``c[i] - b[j] <= mu``."""
    # c[i] - b[j] <= mu  <=>  b[j] >= c[i] - mu
    return int(b_sorted.size * c.size - np.searchsorted(b_sorted, c - mu, side="left").sum())


def _pairwise_order_stat(c: np.ndarray, b: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of the ``len(c) * len(b)`` differences ``c[i] - b[j]``.

    Bisection on the value with counting by ``searchsorted`` (O(n log n) per
    step), so it works for samples far too large to form every pair.
    """
    n = c.size * b.size
    k = min(max(int(k), 1), n)
    if n <= 250_000:
        d = np.subtract.outer(c, b).ravel()
        return float(np.partition(d, k - 1)[k - 1])
    bs = np.sort(b)
    lo, hi = float(c.min() - bs[-1]), float(c.max() - bs[0])
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _pairs_at_most(c, bs, mid) >= k:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            break
    return hi


def hodges_lehmann(baseline: Any, canary: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Hodges-Lehmann shift ``canary - baseline`` and its distribution-free interval.

    The estimate is the median of all pairwise differences; the interval's ends
    are order statistics of those differences, with the rank from the normal
    approximation of the Mann-Whitney U distribution (Lehmann 1975, as R's
    ``wilcox.test(conf.int=TRUE)``).

    Returns
    -------
    (estimate, ci_low, ci_high)
    """
    b, c = _sample(baseline, "baseline"), _sample(canary, "canary")
    n1, n2 = c.size, b.size
    n = n1 * n2
    est = 0.5 * (_pairwise_order_stat(c, b, (n + 1) // 2) + _pairwise_order_stat(c, b, n // 2 + 1))
    z = sps.norm.isf((1.0 - confidence) / 2.0)
    k = int(math.floor(n / 2.0 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)))
    if k < 1:
        return est, float(c.min() - b.max()), float(c.max() - b.min())
    return est, _pairwise_order_stat(c, b, k), _pairwise_order_stat(c, b, n - k + 1)


def mann_whitney(
    baseline: Any, canary: Any, *, alternative: Alternative = "greater", confidence: float = 0.95
) -> StatResult:
    """Mann-Whitney U test (scipy) with the Hodges-Lehmann shift and interval.

    ``alternative="greater"``: the canary tends to be larger (worse, for latency).
    The effect is the location shift ``canary - baseline``. Like every
    location-shift test it is blind to a change of spread or shape that keeps
    the median (use :func:`ks_test`, :func:`anderson_darling_test` or
    :func:`bootstrap_quantile` at the tail).
    """
    _check(alternative, confidence)
    b, c = _sample(baseline, "baseline"), _sample(canary, "canary")
    res = sps.mannwhitneyu(c, b, alternative=alternative, method="auto")
    est, lo, hi = hodges_lehmann(b, c, confidence)
    cles = float(res.statistic) / (b.size * c.size)
    return StatResult(
        statistic=float(res.statistic), pvalue=float(res.pvalue), estimate=est, ci_low=lo, ci_high=hi,
        confidence_level=confidence, method="mann-whitney", effect_kind="difference",
        details={"n_baseline": b.size, "n_canary": c.size, "cles": cles},
    )


# --------------------------------------------------------------------------------------------------
# bootstrap of quantiles


def _boot_order_index(n: int, q: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """0-based indices into the sorted sample of ``size`` bootstrap replicates of its q-quantile.

    The q-quantile of a resample (the ``ceil(q n)``-th order statistic) is
    ``x_(j)`` with ``P(x*_(k) <= x_(j)) = P(Binomial(n, j/n) >= k)``: drawing j
    from that distribution is the bootstrap, exactly, without resampling n values.
    """
    k = max(1, math.ceil(q * n))
    j = np.arange(1, n + 1)
    cdf = sps.binom.sf(k - 1, n, j / n)
    cdf[-1] = 1.0
    u = rng.random(size)
    return np.minimum(np.searchsorted(cdf, u, side="left"), n - 1)


def bootstrap_quantile(
    baseline: Any,
    canary: Any,
    q: float = 0.99,
    *,
    kind: Literal["ratio", "difference"] = "ratio",
    n_resamples: int = 4000,
    confidence: float = 0.95,
    alternative: Alternative = "greater",
    rng: np.random.Generator | int | None = None,
) -> StatResult:
    """Bootstrap percentile interval of the canary/baseline ratio (or difference) of the q-quantile.

    Each arm is resampled independently (i.i.d. requests). The resampled
    quantile is drawn directly from its exact bootstrap distribution over the
    order statistics (:func:`_boot_order_index`), so 4 000 resamples of 10^5
    requests take milliseconds. The p-value is the bootstrap tail mass beyond
    "no change" (ratio 1 / difference 0) on the ``alternative`` side.

    Parameters
    ----------
    q
        Quantile in (0, 1): 0.5, 0.9, 0.99.
    kind
        ``ratio`` (canary / baseline) or ``difference`` (canary - baseline).
    rng
        Seed or Generator; the same seed gives the same interval.
    """
    _check(alternative, confidence)
    if not 0.0 < q < 1.0:
        raise ValueError(f"`q` must be in (0, 1), got {q!r}")
    if kind not in ("ratio", "difference"):
        raise ValueError(f"`kind` must be one of {{'ratio', 'difference'}}, got {kind!r}")
    gen = np.random.default_rng(rng)
    b, c = np.sort(_sample(baseline, "baseline")), np.sort(_sample(canary, "canary"))
    qb = b[max(1, math.ceil(q * b.size)) - 1]
    qc = c[max(1, math.ceil(q * c.size)) - 1]
    bb = b[_boot_order_index(b.size, q, n_resamples, gen)]
    cc = c[_boot_order_index(c.size, q, n_resamples, gen)]
    if kind == "ratio":
        if qb <= 0 or np.any(bb <= 0):
            raise ValueError("a ratio of quantiles needs a positive baseline quantile; use kind='difference'")
        est, reps, null = float(qc / qb), cc / bb, 1.0
    else:
        est, reps, null = float(qc - qb), cc - bb, 0.0
    a = 1.0 - confidence
    if alternative == "two-sided":
        lo, hi = np.quantile(reps, [a / 2, 1 - a / 2])
        p = min(1.0, 2 * min(np.mean(reps <= null), np.mean(reps >= null)))
    elif alternative == "greater":
        lo, hi = np.quantile(reps, a), np.inf
        p = float(np.mean(reps <= null))
    else:
        lo, hi = -np.inf if kind == "difference" else 0.0, np.quantile(reps, 1 - a)
        p = float(np.mean(reps >= null))
    return StatResult(
        statistic=est, pvalue=float(max(p, 1.0 / (n_resamples + 1))), estimate=est, ci_low=float(lo),
        ci_high=float(hi), confidence_level=confidence, method="bootstrap-quantile", effect_kind=kind,
        details={"q": q, "baseline": float(qb), "canary": float(qc), "n_resamples": n_resamples,
                 "n_baseline": b.size, "n_canary": c.size},
    )


# --------------------------------------------------------------------------------------------------
# rates from counts


def conditional_binomial_test(
    errors_baseline: int,
    requests_baseline: float,
    errors_canary: int,
    requests_canary: float,
    *,
    alternative: Alternative = "greater",
    confidence: float = 0.95,
) -> StatResult:
    """Exact conditional test of equal error rates from counts (scipy ``binomtest``).

    Given the total number of errors ``m``, the canary's share of them is
    Binomial(m, pi) with ``pi0 = n_c / (n_b + n_c)`` when the rates are equal.
    The effect is the **rate ratio** canary / baseline, its interval the
    Clopper-Pearson interval of pi mapped through ``pi/(1-pi) * n_b/n_c``. With
    no errors at all the p-value is 1 and the interval is [0, inf): no evidence
    either way, never a pass by default.
    """
    _check(alternative, confidence)
    xb, xc = int(errors_baseline), int(errors_canary)
    nb, nc = float(requests_baseline), float(requests_canary)
    if min(xb, xc) < 0 or nb <= 0 or nc <= 0 or xb > nb or xc > nc:
        raise ValueError("counts must be errors >= 0 and requests > 0 with errors <= requests")
    m = xb + xc
    pi0 = nc / (nb + nc)
    rb, rc = xb / nb, xc / nc
    if m == 0:
        return StatResult(0.0, 1.0, float("nan"), 0.0, float("inf"), confidence, "conditional-binomial",
                          "ratio", details={"rate_baseline": rb, "rate_canary": rc, "errors": 0})
    res = sps.binomtest(xc, m, pi0, alternative=alternative)
    ci = res.proportion_ci(confidence_level=confidence, method="exact")

    def to_ratio(p: float) -> float:
        return float("inf") if p >= 1.0 else p / (1.0 - p) * nb / nc

    est = float("inf") if xb == 0 else rc / rb
    return StatResult(
        statistic=float(xc), pvalue=float(res.pvalue), estimate=est, ci_low=to_ratio(ci.low),
        ci_high=to_ratio(ci.high), confidence_level=confidence, method="conditional-binomial",
        effect_kind="ratio",
        details={"rate_baseline": rb, "rate_canary": rc, "errors": m, "pi0": pi0, "difference": rc - rb},
    )


def poisson_rate_test(
    errors_baseline: int,
    exposure_baseline: float,
    errors_canary: int,
    exposure_canary: float,
    *,
    alternative: Alternative = "greater",
    confidence: float = 0.95,
) -> StatResult:
    """Krishnamoorthy-Thomson E-test of equal Poisson rates (scipy ``poisson_means_test``).

    For events over an exposure (requests, seconds). The effect is the rate
    difference canary - baseline, with a Wald interval (a zero count is given
    half an event in the interval's variance so it stays non-degenerate).
    """
    _check(alternative, confidence)
    xb, xc = int(errors_baseline), int(errors_canary)
    nb, nc = float(exposure_baseline), float(exposure_canary)
    if min(xb, xc) < 0 or nb <= 0 or nc <= 0:
        raise ValueError("counts must be >= 0 and exposures > 0")
    res = sps.poisson_means_test(xc, nc, xb, nb, alternative=alternative)
    rb, rc = xb / nb, xc / nc
    se = math.sqrt(max(xc, 0.5) / nc**2 + max(xb, 0.5) / nb**2)
    z = sps.norm.isf((1 - confidence) / 2)
    return StatResult(
        statistic=float(res.statistic), pvalue=float(res.pvalue), estimate=rc - rb, ci_low=float(rc - rb - z * se),
        ci_high=float(rc - rb + z * se), confidence_level=confidence, method="poisson-e-test", effect_kind="difference",
        details={"rate_baseline": rb, "rate_canary": rc},
    )


# --------------------------------------------------------------------------------------------------
# shape and spread


def ks_test(baseline: Any, canary: Any, *, alternative: Alternative = "two-sided") -> StatResult:
    """Two-sample Kolmogorov-Smirnov test (scipy ``ks_2samp``): any change of distribution.

    ``alternative="greater"`` here means the canary is stochastically *larger*
    (slower). The effect is the largest CDF gap D with a DKW-based interval.
    """
    _check(alternative, 0.95)
    b, c = _sample(baseline, "baseline"), _sample(canary, "canary")
    # scipy's 'less' means the CDF of the first sample lies below: the first sample is larger
    alt = {"greater": "less", "less": "greater", "two-sided": "two-sided"}[alternative]
    res = sps.ks_2samp(c, b, alternative=alt, method="exact" if b.size * c.size <= 10_000 else "asymp")
    eps = math.sqrt(math.log(2 / 0.05) / 2) * (math.sqrt(1 / b.size) + math.sqrt(1 / c.size))
    d = float(res.statistic)
    return StatResult(
        statistic=d, pvalue=float(res.pvalue), estimate=d, ci_low=max(0.0, d - eps), ci_high=min(1.0, d + eps),
        confidence_level=0.95, method="kolmogorov-smirnov", effect_kind="difference",
        details={"n_baseline": b.size, "n_canary": c.size},
    )


def anderson_darling_test(baseline: Any, canary: Any) -> StatResult:
    """k-sample Anderson-Darling test (scipy ``anderson_ksamp``): changes in shape, spread or tail.

    More sensitive to tails than KS. scipy bounds the p-value to [0.001, 0.25]
    from its table; the effect reported is the ratio of the two samples'
    interquartile ranges (a spread change), with a 95 % bootstrap interval.
    """
    b, c = _sample(baseline, "baseline"), _sample(canary, "canary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's note that the table p-value is floored/capped
        res = sps.anderson_ksamp([c, b], variant="midrank")
    pv = float(getattr(res, "pvalue", getattr(res, "significance_level", float("nan"))))
    gen = np.random.default_rng(0)

    def iqr_boot(x: np.ndarray) -> np.ndarray:
        xs = np.sort(x)
        return xs[_boot_order_index(xs.size, 0.75, 2000, gen)] - xs[_boot_order_index(xs.size, 0.25, 2000, gen)]

    ib, ic = np.subtract(*np.quantile(b, [0.75, 0.25])), np.subtract(*np.quantile(c, [0.75, 0.25]))
    est = float(ic / ib) if ib > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = iqr_boot(c) / iqr_boot(b)
    reps = reps[np.isfinite(reps)]
    lo, hi = (np.quantile(reps, [0.025, 0.975]) if reps.size else (float("nan"), float("nan")))
    return StatResult(
        statistic=float(res.statistic), pvalue=pv, estimate=est, ci_low=float(lo), ci_high=float(hi),
        confidence_level=0.95, method="anderson-darling", effect_kind="ratio",
        details={"n_baseline": b.size, "n_canary": c.size, "effect": "IQR ratio"},
    )


# --------------------------------------------------------------------------------------------------
# autocorrelated per-minute series


def _series(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if not np.any(np.isfinite(a)):
        raise ValueError(f"`{name}` has no finite values")
    return a


def hac_variance(x: Any, lags: int | None = None) -> float:
    """Long-run variance of a stationary series (Newey-West, Bartlett kernel).

    ``sum_{|k| <= L} (1 - |k|/(L+1)) gamma_k`` with ``L = floor(4 (n/100)^(2/9))``
    by default. The variance of the series' mean is this over n. NaNs are dropped
    (their neighbours are treated as adjacent).
    """
    a = _series(x, "x")
    a = a[np.isfinite(a)]
    n = a.size
    if n < 2:
        return float("nan")
    if lags is None:
        lags = int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0)))
    lags = max(0, min(int(lags), n - 1))
    d = a - a.mean()
    v = float(d @ d) / n
    for k in range(1, lags + 1):
        v += 2.0 * (1.0 - k / (lags + 1.0)) * float(d[k:] @ d[:-k]) / n
    return max(v, 0.0)


def batch_means_variance(x: Any, n_batches: int | None = None) -> float:
    """Long-run variance by non-overlapping batch means: ``b * var(batch means)``.

    ``n_batches`` defaults to ``floor(sqrt(n))``; the trailing partial batch is dropped.
    """
    a = _series(x, "x")
    a = a[np.isfinite(a)]
    n = a.size
    k = int(n_batches or max(2, int(math.sqrt(n))))
    b = n // k
    if k < 2 or b < 1:
        return float("nan")
    means = a[: k * b].reshape(k, b).mean(axis=1)
    return float(b * means.var(ddof=1))


def paired_minutes_test(
    baseline: Any,
    canary: Any,
    *,
    log: bool = True,
    alternative: Alternative = "greater",
    confidence: float = 0.95,
    variance: Literal["hac", "batch-means", "iid"] = "hac",
) -> StatResult:
    """Test on minute-paired differences of a per-minute series, robust to autocorrelation.

    Both arms' values of minute t are paired (``d_t = log c_t - log b_t`` with
    ``log=True``, else ``c_t - b_t``), which cancels load swings shared by the
    arms; minutes missing in either arm are dropped. The mean of ``d`` is
    tested with a t statistic whose variance is the long-run (HAC) variance,
    so per-arm autocorrelated noise (separate instances per arm) does not
    masquerade as a difference. With ``log=True`` the effect is the ratio
    ``exp(mean d)`` (a geometric mean of per-minute ratios).
    """
    _check(alternative, confidence)
    b, c = _series(baseline, "baseline"), _series(canary, "canary")
    if b.size != c.size:
        raise ValueError(f"the two series must have one value per minute each (lengths {b.size} and {c.size})")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(c) - np.log(b) if log else c - b
    d = d[np.isfinite(d)]
    n = d.size
    if n < 3:
        raise ValueError(f"need at least 3 minutes with data in both arms, got {n}")
    if variance == "hac":
        lrv = hac_variance(d)
    elif variance == "batch-means":
        lrv = batch_means_variance(d)
    elif variance == "iid":
        lrv = float(d.var(ddof=1))
    else:
        raise ValueError(f"`variance` must be one of {{'hac', 'batch-means', 'iid'}}, got {variance!r}")
    mean = float(d.mean())
    se = math.sqrt(max(lrv, 1e-300) / n)
    t = mean / se
    df = n - 1
    if alternative == "greater":
        p = float(sps.t.sf(t, df))
    elif alternative == "less":
        p = float(sps.t.cdf(t, df))
    else:
        p = float(2 * sps.t.sf(abs(t), df))
    h = float(sps.t.isf((1 - confidence) / 2, df)) * se
    lo, hi = mean - h, mean + h
    if log:
        est, lo, hi, kind = math.exp(mean), math.exp(lo), math.exp(hi), "ratio"
    else:
        est, kind = mean, "difference"
    return StatResult(
        statistic=t, pvalue=p, estimate=est, ci_low=lo, ci_high=hi, confidence_level=confidence,
        method=f"paired-minutes-{variance}", effect_kind=kind,
        details={"minutes": n, "long_run_variance": lrv, "variance_iid": float(d.var(ddof=1))},
    )


def block_bootstrap_mean(
    x: Any,
    *,
    block: int | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> StatResult:
    """Circular block bootstrap interval of the mean of an autocorrelated series (e.g. paired differences).

    Blocks of ``block`` consecutive values (default ``ceil(n^(1/3))``) are drawn
    with wrap-around, all resamples at once (vectorised). The p-value is for
    ``mean > 0`` (bootstrap mass at or below 0, centred at the estimate).
    """
    a = _series(x, "x")
    a = a[np.isfinite(a)]
    n = a.size
    if n < 2:
        raise ValueError("need at least 2 values")
    gen = np.random.default_rng(rng)
    L = int(block or math.ceil(n ** (1.0 / 3.0)))
    L = max(1, min(L, n))
    k = math.ceil(n / L)
    starts = gen.integers(0, n, size=(n_resamples, k))
    idx = (starts[:, :, None] + np.arange(L)[None, None, :]) % n
    means = a[idx.reshape(n_resamples, -1)[:, :n]].mean(axis=1)
    mean = float(a.mean())
    al = 1 - confidence
    lo, hi = np.quantile(means, [al / 2, 1 - al / 2])
    centred = means - mean
    p = float(np.mean(centred >= mean))
    return StatResult(
        statistic=mean, pvalue=max(p, 1.0 / (n_resamples + 1)), estimate=mean, ci_low=float(lo),
        ci_high=float(hi), confidence_level=confidence, method="block-bootstrap", effect_kind="difference",
        details={"block": L, "n": n, "n_resamples": n_resamples},
    )
