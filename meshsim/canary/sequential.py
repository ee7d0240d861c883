"""Anytime-valid monitoring: tests and confidence sequences that may be looked at every minute.

A fixed-sample test looked at after every minute of a rollout rejects a true
null far more often than its alpha. The procedures here hold their error rate
**uniformly over time**: the probability that the boundary is *ever* crossed
under the null is at most alpha, however often and for however long one looks.
All functions work on whole per-look arrays at once (cumulative sums), so a
3-hour replay with a look every minute costs one vectorised pass.

Three procedures, and a planned-look variant of the second:

* :func:`count_test` -- errors (or any event count) of two arms, in the manner
  of Lindon & Malek (2022): given that an event happened in minute t, it fell
  in the canary with probability ``pi_t = r_t e^delta / (r_t e^delta + 1 - r_t)``
  where ``r_t`` is the canary's share of the minute's requests and ``delta`` the
  log rate ratio; the common, arbitrarily time-varying load cancels. A mixture
  over ``delta >= delta0`` of the likelihood ratios is a nonnegative martingale
  under ``delta = delta0``, so by Ville's inequality ``P(sup_t E_t >= 1/alpha) <= alpha``.
  Per-arm overdispersion (separate instances per arm) is absorbed by tempering
  the likelihood with an estimated dispersion factor (quasi-likelihood).
* :func:`paired_cs` -- a confidence sequence for the mean of minute-paired
  differences (e.g. ``log p99_canary - log p99_baseline``): the normal-mixture
  boundary of Robbins / Howard et al. (2021) with a long-run (autocorrelation-
  robust) variance and a Student-t correction for its estimation.
* :func:`checkpoint_bounds` -- the same paired bounds judged only at a few planned
  looks (checkpoints): a group-sequential boundary whose critical value
  (:func:`checkpoint_z`) makes the probability of crossing at *any* checkpoint
  alpha. Fewer looks buy a narrower bound (z 2.10 at four checkpoints against
  about 2.8 for the time-uniform boundary at alpha 0.05); meshsim's judge uses
  it for PROMOTE, where waiting for the next checkpoint costs only time.
* :func:`quantile_cs` / :func:`quantile_ratio_cs` -- confidence sequences for a
  quantile of i.i.d. raw samples (Howard & Ramdas 2022 style, with a
  beta-binomial mixture per quantile), and for the canary/baseline quantile ratio.

References
----------
M. Lindon, A. Malek, "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022 (arXiv:2011.03567).
S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Ann. Statist. 49(2), 2021 (arXiv:1810.08240).
S. R. Howard, A. Ramdas, "Sequential estimation of quantiles with applications to A/B-testing and
best-arm identification", Bernoulli 28(3), 2022 (arXiv:1906.09712).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

__all__ = [
    "mixture_precision",
    "normal_mixture_bound",
    "PairedCS",
    "paired_cs",
    "long_run_variance_path",
    "checkpoint_z",
    "checkpoint_bounds",
    "DriftPosterior",
    "drift_posterior",
    "drift_quantile",
    "CountTest",
    "count_test",
    "quantile_cs",
    "quantile_ratio_cs",
]


# --------------------------------------------------------------------------------------------------
# the normal-mixture boundary


def mixture_precision(v_opt: float, alpha: float) -> float:
    """Mixture precision that makes the boundary tightest near intrinsic time ``v_opt``.

    ``rho = v_opt / (2 log(1/alpha) + log(1 + 2 log(1/alpha)))`` (Howard et al. 2021, sec. 3.5).
    """
    la = math.log(1.0 / alpha)
    return float(v_opt) / (2.0 * la + math.log(1.0 + 2.0 * la))


def normal_mixture_bound(v: np.ndarray | float, alpha: float, rho: float, *, one_sided: bool = True) -> np.ndarray:
    """Boundary ``u(v)`` with ``P(exists t: S_t >= u(V_t)) <= alpha`` for a 1-sub-Gaussian sum ``S``.

    ``V_t`` is the variance process (``t`` for unit-variance steps). One-sided:
    the half-normal mixture e-value ``2 sqrt(rho/(v+rho)) exp(x^2/2) Phi(x)``,
    ``x = S/sqrt(v+rho)``, equals ``1/alpha`` on the boundary (solved exactly by
    fixed-point iteration); two-sided: ``sqrt((v+rho) log((v+rho)/(rho alpha^2)))``.

    Examples
    --------
    >>> round(float(normal_mixture_bound(100.0, 0.05, 10.0, one_sided=False)), 3)
    30.378
    """
    v = np.asarray(v, dtype=float)
    w = v + rho
    if not one_sided:
        return np.sqrt(w * np.log(w / (rho * alpha**2)))
    base = np.log(np.sqrt(w / rho) / (2.0 * alpha))
    x = np.sqrt(2.0 * np.maximum(base, 1e-12))
    for _ in range(30):
        x_new = np.sqrt(2.0 * np.maximum(base - np.log(sps.norm.cdf(x)), 1e-12))
        if np.all(np.abs(x_new - x) < 1e-10):
            x = x_new
            break
        x = x_new
    return x * np.sqrt(w)


# --------------------------------------------------------------------------------------------------
# paired per-minute differences


def _lag_sums(x: np.ndarray, ok: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums over pairs (t, t-k) both observed: count, sum x_t x_{t-k}, sum x_t, sum x_{t-k}."""
    pair = np.zeros_like(ok)
    pair[k:] = ok[k:] & ok[:-k]
    xl = np.zeros_like(x)
    xl[k:] = x[:-k]
    return (np.cumsum(pair), np.cumsum(np.where(pair, x * xl, 0.0)), np.cumsum(np.where(pair, x, 0.0)),
            np.cumsum(np.where(pair, xl, 0.0)))


def _ar1_mean_factor(n: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``Var(mean of n AR(1) values) / Var(one value)``: ``(n(1+phi)/(1-phi) - 2phi(1-phi^n)/(1-phi)^2) / n^2``."""
    n = np.maximum(np.asarray(n, float), 1.0)
    phi = np.clip(phi, 0.0, 0.999)
    g = (n * (1 + phi) / (1 - phi) - 2 * phi * (1 - phi**n) / (1 - phi) ** 2) / n**2
    return np.clip(g, 1.0 / n, 1.0)


def running_variance(d: np.ndarray) -> np.ndarray:
    """Sample variance (ddof 1) of every prefix of ``d`` (NaN = missing minute; NaN before 2 values)."""
    d = np.asarray(d, dtype=float)
    ok = np.isfinite(d)
    x = np.where(ok, d, 0.0)
    n = np.cumsum(ok).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.cumsum(x) / n
        v = (np.cumsum(x * x) / n - mean**2) * n / (n - 1)
    return np.where(n >= 2, np.maximum(v, 0.0), np.nan)


def long_run_variance_path(
    d: np.ndarray,
    *,
    persistent_sd: float = 0.0,
    phi_prior: float = 0.9,
    prior_minutes: float = 30.0,
    gate: float = 1.0,
    phi_max: float = 0.97,
    phi_floor: float = 0.9,
    ratio_prior: float = 1.0,
    ratio_prior_minutes: float = 0.0,
    ratio_prior_ref: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every prefix of the series ``d`` (NaN = missing minute): n, mean, variance of the mean, n_eff.

    The model is the one of paired minute differences between two arms: white
    sampling noise (variance ``w``) plus a persistent AR(1) component (per-arm
    cluster effects; variance ``s^2``, persistence ``phi``), whose
    autocovariances are ``gamma_k = s^2 phi^k`` (k >= 1). The variance of the
    mean of n minutes is ``w / n + s^2 g(n, phi)`` with the exact AR(1) factor
    ``g`` (about ``(1+phi)/((1-phi) n)`` for long series, but near 1 for a series
    shorter than the component's memory: a slowly wandering offset does not
    average out).

    ``gamma_1`` counts only beyond its noise level (``gate / sqrt(n)`` of
    ``gamma_0``); ``phi = gamma_2 / gamma_1`` is shrunk towards ``phi_prior`` with
    the weight of ``prior_minutes`` minutes; ``s`` is at least ``persistent_sd``
    (the prior on instance effects: a short series cannot tell a wandering
    cluster effect from a real difference). ``ratio_prior`` > 1 keeps the ratio
    of ``n var(mean)`` to ``gamma_0`` at least at that value shrunk with the
    weight of ``ratio_prior_minutes`` minutes (``max(r, (m r0 + n r) / (m + n))``):
    a weak prior that some of the minute-to-minute variance is persistent, for
    series too short to show it. ``ratio_prior_ref`` (per prefix) scales the
    prior's persistent part by another series' minute-to-minute variance instead
    of this one's (``(gamma_0 + (r0 - 1) ref) / n``): instance drift is one shift of
    the whole distribution, so it is sized by the best-measured quantile and adds
    little to a noisy one. With ``persistent_sd`` given, ``phi`` is at
    least ``phi_floor``: the lag-2/lag-1 ratio of a short, demeaned series is
    biased low, and an underestimated memory made the declared prior leak (an
    A/A false-alarm rate of 7.5 % at a nominal 1 % with the true noise declared,
    per-arm AR(1) rho 0.95, sd 5 %; 0 % with the floor, 200 runs each).
    ``n_eff = gamma_0 / var(mean)``.
    All prefixes at once from cumulative sums.
    """
    d = np.asarray(d, dtype=float)
    ok = np.isfinite(d)
    x = np.where(ok, d, 0.0)
    n = np.cumsum(ok).astype(float)
    s1 = np.cumsum(x)
    s2 = np.cumsum(x * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        g0 = (s2 / n - mean**2) * n / np.maximum(n - 1, 1)
        gam = []
        for k in (1, 2):
            nk, sp, sa, sb = _lag_sums(x, ok, k)
            gam.append(np.where(nk > 0, (sp - mean * (sa + sb) + nk * mean**2) / np.maximum(nk, 1), 0.0))
        g1, g2 = gam
        g1a = np.maximum(g1 - gate * g0 / np.sqrt(np.maximum(n, 1)), 0.0)
        phi_hat = np.where(g1 > 0, np.clip(g2 / np.where(g1 > 0, g1, 1.0), 0.0, phi_max), phi_prior)
        phi = np.clip((n * phi_hat + prior_minutes * phi_prior) / (n + prior_minutes), 0.05, phi_max)
        s2p = np.minimum(g1a / phi, g0)
        w = np.maximum(g0 - s2p, 0.0)
        s2p = np.maximum(s2p, persistent_sd**2)
        if persistent_sd > 0:
            phi = np.maximum(phi, phi_floor)
        var_mean = w / np.maximum(n, 1) + s2p * _ar1_mean_factor(n, phi)
        # degrees of freedom from what the data estimated (the prior below is not an estimate)
        neff = np.clip(np.where(var_mean > 0, g0 / var_mean, n), 1.0, np.maximum(n, 1.0))
        if ratio_prior > 1.0 and ratio_prior_minutes > 0:
            nn = np.maximum(n, 1)
            ref = g0 if ratio_prior_ref is None else np.minimum(np.asarray(ratio_prior_ref, float), g0)
            v0 = (g0 + (ratio_prior - 1.0) * np.nan_to_num(ref)) / nn
            mixed = (ratio_prior_minutes * v0 + nn * var_mean) / (ratio_prior_minutes + nn)
            var_mean = np.where(g0 > 0, np.maximum(var_mean, mixed), var_mean)
    return n, mean, var_mean, neff


@dataclass(frozen=True)
class PairedCS:
    """A confidence sequence for the mean of paired differences, one entry per look.

    ``lower`` holds with probability ``1 - alpha_lower`` and ``upper`` with
    ``1 - alpha_upper``, each uniformly over looks (not yet intersected over
    looks: take ``np.maximum.accumulate(lower)`` for the running bound).
    """

    n: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sd: np.ndarray  # long-run standard deviation per minute
    n_eff: np.ndarray


def _t_corrected(z: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Replace a normal critical value by the Student-t one with the same tail probability."""
    p = sps.norm.sf(z)
    return sps.t.isf(p, np.maximum(df, 1.0))


def paired_cs(
    d: np.ndarray,
    *,
    alpha_lower: float,
    alpha_upper: float,
    v_opt: float = 30.0,
    **variance: float,
) -> PairedCS:
    """Anytime-valid bounds for the mean of per-minute paired differences ``d`` at every prefix.

    Parameters
    ----------
    d
        One value per minute (NaN when either arm had no data that minute).
    alpha_lower, alpha_upper
        Error rates of the lower and the upper bound (each over all looks).
    v_opt
        Minutes of data around which the boundary is tightest.
    variance
        Keyword settings of :func:`long_run_variance_path`.

    Notes
    -----
    With ``sigma`` the long-run standard deviation, the bound at n minutes is
    ``mean -/+ sigma u(n) / n`` where ``u`` is the one-sided normal-mixture
    boundary (:func:`normal_mixture_bound`, mixture precision from ``v_opt``).
    Because sigma is estimated, the boundary's normal critical value
    ``u(n)/sqrt(n)`` is replaced by the Student-t value with ``n_eff - 1`` degrees
    of freedom at the same tail probability.
    """
    n, mean, var_mean, neff = long_run_variance_path(d, **variance)
    nn = np.maximum(n, 1).astype(float)
    se = np.sqrt(np.maximum(var_mean, 0.0))
    out = []
    for a in (alpha_lower, alpha_upper):
        z = normal_mixture_bound(nn, a, mixture_precision(v_opt, a)) / np.sqrt(nn)
        out.append(_t_corrected(z, neff - 1.0) * se)
    sd = se * np.sqrt(nn)
    bad = (n < 2) | ~np.isfinite(se)
    lower = np.where(bad, -np.inf, mean - out[0])
    upper = np.where(bad, np.inf, mean + out[1])
    return PairedCS(n=n, mean=np.where(n > 0, mean, np.nan), lower=lower, upper=upper, sd=sd, n_eff=neff)


def _crossing_probability(t: np.ndarray, z: float, m: int = 401) -> float:
    """``P(exists k: W(t_k) >= z sqrt(t_k))`` for a standard Brownian motion ``W`` (recursive integration).

    The density of ``W(t_k)`` on the paths that have not crossed yet is carried on a grid of
    ``m`` points from one checkpoint to the next (Armitage, McPherson & Rowe 1969).
    """
    sd1 = math.sqrt(t[0])
    x = np.linspace(-10.0 * math.sqrt(t[-1]), z * sd1, m)
    f = np.exp(-0.5 * (x / sd1) ** 2) / (sd1 * math.sqrt(2.0 * math.pi))
    p = float(sps.norm.sf(z))
    for k in range(1, t.size):
        s = math.sqrt(t[k] - t[k - 1])
        w = f * (x[1] - x[0])
        w[0] *= 0.5
        w[-1] *= 0.5
        hi = z * math.sqrt(t[k])
        p += float(w @ sps.norm.sf((hi - x) / s))
        y = np.linspace(x[0], hi, m)
        f = np.exp(-0.5 * ((y[:, None] - x[None, :]) / s) ** 2) @ w / (s * math.sqrt(2.0 * math.pi))
        x = y
    return p


@functools.lru_cache(maxsize=256)
def _checkpoint_z(times: tuple[float, ...], alpha: float) -> float:
    t = np.asarray(times, dtype=float)
    if t.size == 1:
        return float(sps.norm.isf(alpha))
    from scipy import optimize

    lo, hi = float(sps.norm.isf(alpha)), float(sps.norm.isf(alpha / t.size)) + 1e-6
    return float(optimize.brentq(lambda z: _crossing_probability(t, z) - alpha, lo, hi, xtol=1e-6))


def checkpoint_z(times: tuple[float, ...] | list[float], alpha: float) -> float:
    """Critical value ``z`` with ``P(any checkpoint k has Z_k >= z) = alpha`` for a random walk.

    ``Z_k`` is the walk standardised at the k-th checkpoint (``times`` increasing, any unit);
    the looks are correlated (``corr(Z_j, Z_k) = sqrt(t_j / t_k)``), so ``z`` lies between the
    one-look value and the Bonferroni one. Deterministic (numerical integration, no sampling).

    Examples
    --------
    >>> round(checkpoint_z((30, 60, 120, 180), 0.05), 3)
    2.102
    >>> round(checkpoint_z((60,), 0.05), 3)
    1.645
    """
    ts = tuple(float(x) for x in times)
    if not ts or any(b <= a for a, b in zip(ts, ts[1:], strict=False)) or ts[0] <= 0:
        raise ValueError(f"checkpoint times must be positive and increasing, got {list(times)!r}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    return _checkpoint_z(ts, float(alpha))


def checkpoint_bounds(
    d: np.ndarray,
    checkpoints: np.ndarray | list[int],
    *,
    alpha_lower: float,
    alpha_upper: float,
    **variance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds for the mean of paired differences ``d`` judged only at planned checkpoints.

    ``checkpoints`` are minutes (1-based: the bound after minute ``c`` uses ``d[:c]``). At
    each checkpoint the bound is ``mean -/+ t * se`` with the long-run standard error of
    :func:`long_run_variance_path` and the Student-t value (``n_eff - 1`` degrees of
    freedom) at the tail probability of :func:`checkpoint_z` for all checkpoints together;
    it is carried forward (running intersection) to later looks, and is infinite before
    the first checkpoint. The probability that a lower (upper) bound is ever above (below)
    the true mean, at any checkpoint, is at most ``alpha_lower`` (``alpha_upper``).
    """
    d = np.asarray(d, dtype=float)
    T = d.size
    cps = np.asarray(sorted({int(c) for c in checkpoints if 1 <= int(c) <= T}), dtype=np.int64)
    lower = np.full(T, -np.inf)
    upper = np.full(T, np.inf)
    if cps.size == 0:
        return lower, upper
    n, mean, var_mean, neff = long_run_variance_path(d, **variance)
    planned = tuple(float(c) for c in sorted({int(c) for c in checkpoints if int(c) >= 1}))
    idx = cps - 1
    se = np.sqrt(np.maximum(var_mean[idx], 0.0))
    ok = (n[idx] >= 2) & np.isfinite(se)
    lo_c = np.full(idx.size, -np.inf)
    hi_c = np.full(idx.size, np.inf)
    for a, sign, out in ((alpha_lower, -1.0, lo_c), (alpha_upper, 1.0, hi_c)):
        tail = float(sps.norm.sf(checkpoint_z(planned, a)))
        q = sps.t.isf(tail, np.maximum(neff[idx] - 1.0, 1.0))
        out[ok] = (mean[idx] + sign * q * se)[ok]
    lower[idx] = lo_c
    upper[idx] = hi_c
    return np.maximum.accumulate(lower), np.minimum.accumulate(upper)


# --------------------------------------------------------------------------------------------------
# instance drift: a Bayesian check on the ROLLBACK side of paired minutes

# The prior on per-arm instance drift: the log latency of one arm's instances wanders as an AR(1) with
# this stationary sd (probabilities DRIFT_PRIOR_P) and per-minute memory (equally likely). The white
# sampling noise of a minute's value has a flat prior on the log scale over DRIFT_WHITE_VAR.
DRIFT_PRIOR_SD = (0.0, 0.02, 0.04, 0.06)
DRIFT_PRIOR_P = (0.4, 0.3, 0.2, 0.1)
DRIFT_PRIOR_PHI = (0.8, 0.9, 0.95)
DRIFT_WHITE_VAR = (1e-5, 1.0, 24)  # geometric grid: low, high, points
_LOG_2PI = math.log(2.0 * math.pi)
_DRIFT_V0 = 25.0  # prior variance of the mean change (log scale): flat for any realistic change


def _drift_grid(sds: tuple[float, ...] | None = None, ps: tuple[float, ...] | None = None,
                phis: tuple[float, ...] | None = None, white: tuple[float, float, int] | None = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid points (per-arm sd, memory, white variance), log prior, and the (sd, memory) index of each.

    Defaults: the module's prior (:data:`DRIFT_PRIOR_SD`, :data:`DRIFT_PRIOR_P`,
    :data:`DRIFT_PRIOR_PHI`, :data:`DRIFT_WHITE_VAR`). The log prior sums to 0 over the grid.
    """
    return _grid(tuple(DRIFT_PRIOR_SD if sds is None else sds), tuple(DRIFT_PRIOR_P if ps is None else ps),
                 tuple(DRIFT_PRIOR_PHI if phis is None else phis), tuple(DRIFT_WHITE_VAR if white is None else white))


@functools.lru_cache(maxsize=8)
def _grid(sds: tuple[float, ...], ps: tuple[float, ...], phis: tuple[float, ...], white: tuple[float, float, int],
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    sd_, phi_, w_, lp, hp = [], [], [], [], []
    levels = np.geomspace(white[0], white[1], int(white[2]))
    total = float(sum(ps))
    h = 0
    for sd, p in zip(sds, ps, strict=True):
        memories = phis if sd > 0 else (0.0,)
        for phi in memories:
            for w in levels:
                sd_.append(sd)
                phi_.append(phi)
                w_.append(w)
                lp.append(math.log(p / total / len(memories) / levels.size))
                hp.append(h)
            h += 1
    return np.array(sd_), np.array(phi_), np.array(w_), np.array(lp), np.array(hp)


@dataclass(frozen=True)
class DriftPosterior:
    """Per series and prefix, the posterior of the mean change under the drift model.

    Arrays of shape ``(series, minutes, grid)``: the posterior mean and variance of the mean
    change given each grid point, and the grid point's posterior log weight (normalised per
    series and prefix). ``n`` is the number of observed minutes per series and prefix;
    ``log_evidence`` (``(series, minutes)``) the log marginal likelihood of each prefix under the
    whole prior, for Bayes factors between priors.
    """

    mean: np.ndarray
    var: np.ndarray
    log_w: np.ndarray
    n: np.ndarray
    log_evidence: np.ndarray | None = None


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def drift_posterior(ys: np.ndarray, *, shared_from: np.ndarray | None = None,
                    prior: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] | None = None,
                    white: tuple[float, float, int] | None = None, mean_var: float = _DRIFT_V0) -> DriftPosterior:
    """The drift model of paired minute differences, for every prefix of each series at once.

    Each series ``y_t`` (one row of ``ys``; NaN = missing minute) is modelled as
    ``mu + a_t + e_t``: ``mu`` the version's change, ``a_t`` the difference of two arms'
    independent AR(1) instance drifts (per-arm sd and memory from the grid of
    :data:`DRIFT_PRIOR_SD` x :data:`DRIFT_PRIOR_PHI`), ``e_t`` white sampling noise. A Kalman
    filter with ``mu`` in the state gives, in one pass per grid point, the posterior of ``mu``
    and the marginal likelihood of every prefix (``mu`` integrated out under a flat prior, so a
    constant change is never taken for drift).

    ``shared_from`` (an index per prefix into the rows of ``ys``) takes the posterior of the
    drift's sd and memory from that row, and only the white noise from each series' own data:
    drift of the instances shifts every quantile of a latency alike, and the best-measured
    quantile shows it first.

    ``prior`` (per-arm sds, their probabilities, memories), ``white`` (low, high, points of the
    white-noise variance grid) and ``mean_var`` (the prior variance of ``mu`` around 0; 0 fixes
    ``mu = 0``) replace the module's defaults, e.g. to weigh two models of the same series by
    their ``log_evidence``.
    """
    ys = np.atleast_2d(np.asarray(ys, dtype=float))
    k, T = ys.shape
    sds, ps, phis = prior if prior is not None else (None, None, None)
    sd, phi, wv, lp, hp = _drift_grid(sds, ps, phis, white)
    G = sd.size
    d2 = 2.0 * sd**2  # variance of the difference of two arms' drifts
    q = d2 * (1.0 - phi**2)
    mm = np.zeros((k, G))
    ma = np.zeros((k, G))
    pmm = np.full((k, G), float(mean_var))
    pma = np.zeros((k, G))
    paa = np.broadcast_to(d2, (k, G)).copy()
    ll = np.zeros((k, G))
    M = np.empty((k, T, G))
    V = np.empty((k, T, G))
    L = np.empty((k, T, G))
    ok = np.isfinite(ys)
    for t in range(T):
        if t:
            ma *= phi
            pma *= phi
            paa = phi**2 * paa + q
        o = ok[:, t]
        if o.any():
            y = np.where(o, ys[:, t], 0.0)[:, None]
            f = pmm + 2.0 * pma + paa + wv
            v = y - mm - ma
            b1 = pmm + pma
            b2 = pma + paa
            k1 = b1 / f
            k2 = b2 / f
            upd = (mm + k1 * v, ma + k2 * v, pmm - k1 * b1, pma - k1 * b2, paa - k2 * b2,
                   ll - 0.5 * (np.log(f) + _LOG_2PI + v * v / f))
            if o.all():
                mm, ma, pmm, pma, paa, ll = upd
            else:
                sel = o[:, None]
                mm, ma, pmm, pma, paa, ll = (np.where(sel, new, old) for new, old in
                                             zip(upd, (mm, ma, pmm, pma, paa, ll), strict=True))
        M[:, t] = mm
        V[:, t] = pmm
        L[:, t] = ll
    lw = L + lp  # (k, T, G) unnormalised log posterior
    evidence = _logsumexp(lw, axis=2)
    if shared_from is not None:
        nh = int(hp.max()) + 1
        # log posterior of (sd, memory) per series and prefix, the white noise integrated out
        lh = np.stack([_logsumexp(lw[:, :, hp == h], axis=2) for h in range(nh)], axis=2)  # (k, T, nh)
        src = np.asarray(shared_from, dtype=int)
        lh_ref = lh[src, np.arange(T)]  # (T, nh)
        lw = lw - lh[:, :, hp] + lh_ref[None, :, hp]
    lw = lw - _logsumexp(lw, axis=2)[:, :, None]
    return DriftPosterior(mean=M, var=np.maximum(V, 1e-300), log_w=lw, n=np.cumsum(ok, axis=1),
                          log_evidence=evidence)


def drift_quantile(post: DriftPosterior, p: float, *, cap: np.ndarray | None = None, upper: bool = False) -> np.ndarray:
    """The ``p`` quantile of the posterior of the mean change, per series and prefix (``(series, minutes)``).

    The posterior is a mixture of normals over the grid; its quantile is found by safeguarded
    Newton steps from the moment-matched normal. NaN before two observed minutes. With ``cap``
    (same shape), the result is ``min(quantile, cap)`` (``max`` with ``upper``), and the quantile is
    solved only where it is beyond the cap (one evaluation of the posterior elsewhere).
    """
    w = np.exp(post.log_w)
    m, sd = post.mean, np.sqrt(post.var)
    out = np.full(m.shape[:2], np.nan)
    todo = post.n >= 2
    if cap is not None:
        cap = np.broadcast_to(np.asarray(cap, float), out.shape)
        fin = todo & np.isfinite(cap)
        at_cap = np.full(out.shape, np.inf)
        at_cap[fin] = np.sum(w[fin] * special.ndtr((cap[fin][:, None] - m[fin]) / sd[fin]), axis=1)
        beyond = at_cap < p if upper else at_cap > p  # the quantile lies beyond the cap
        out[todo] = cap[todo]
        todo = todo & (beyond | ~np.isfinite(cap))
    if not todo.any():
        return out
    w, m, sd, v = w[todo], m[todo], sd[todo], post.var[todo]
    lo = np.min(m - 12.0 * sd, axis=1)
    hi = np.max(m + 12.0 * sd, axis=1)
    mu = np.sum(w * m, axis=1)
    var = np.sum(w * (v + m * m), axis=1) - mu * mu
    x = np.clip(mu + sps.norm.ppf(p) * np.sqrt(np.maximum(var, 0.0)), lo, hi)
    c = 1.0 / math.sqrt(2.0 * math.pi)
    # Newton steps on log F (lower tail) or log(1 - F) (upper tail): nearly linear in the tails
    tail = min(p, 1.0 - p)
    sign = 1.0 if p <= 0.5 else -1.0
    for _ in range(60):
        z = (x[:, None] - m) / sd
        cdf = np.sum(w * special.ndtr(z), axis=1)
        dens = np.sum(w * np.exp(-0.5 * z * z) * c / sd, axis=1)
        f = cdf - p
        hi = np.where(f > 0, x, hi)
        lo = np.where(f > 0, lo, x)
        tail_mass = cdf if sign > 0 else 1.0 - cdf
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - sign * (np.log(tail_mass) - math.log(tail)) * tail_mass / dens
        x_new = np.where(np.isfinite(step) & (step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
        done = np.abs(x_new - x) <= 1e-8 * (1.0 + np.abs(x))
        x = x_new
        if done.all():
            break
    out[todo] = x
    return out


# --------------------------------------------------------------------------------------------------
# counts


@dataclass(frozen=True)
class CountTest:
    """The sequential count test, one entry per look (cumulative over minutes).

    ``e_value`` is the mixture e-value against ``delta <= delta0`` (a harmful
    change of at least ``exp(delta0)``), ``p_value`` the always-valid p-value
    ``min(1, 1 / max_{s<=t} E_s)``; ``dispersion`` the tempering factor used.
    """

    e_value: np.ndarray
    p_value: np.ndarray
    dispersion: np.ndarray
    events: np.ndarray  # cumulative events in both arms
    log_ratio: np.ndarray  # estimate of delta


def _dispersion_path(xc: np.ndarray, m: np.ndarray, share: np.ndarray, block: int, prior_blocks: float) -> np.ndarray:
    """Quasi-likelihood dispersion (>= 1) of the canary's event share, per look, from blocks of minutes."""
    T = xc.size
    var = m * share * (1 - share)
    res = xc - m * share
    nb = T // block
    phi = np.ones(T)
    if nb < 2:
        return phi
    R = res[: nb * block].reshape(nb, block).sum(1)
    V = var[: nb * block].reshape(nb, block).sum(1)
    cR, cV = np.cumsum(R), np.cumsum(V)
    cRR, cRV, cVV = np.cumsum(R * R), np.cumsum(R * V), np.cumsum(V * V)
    k = np.arange(1, nb + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(cV > 0, cR / cV, 0.0)  # drift of the share (a real effect), removed
        ss = cRR - 2 * kappa * cRV + kappa**2 * cVV
        phi_b = np.where(cV > 0, ss / cV * k / np.maximum(k - 1, 1), 1.0)
        phi_b = (k * phi_b + prior_blocks) / (k + prior_blocks)
    phi_b = np.maximum(phi_b, 1.0)
    # the look after minute t sees blocks completed by then
    done = (np.arange(1, T + 1) // block) - 1
    phi = np.where(done >= 0, phi_b[np.clip(done, 0, nb - 1)], 1.0)
    return phi


def count_test(
    events_baseline: np.ndarray,
    requests_baseline: np.ndarray,
    events_canary: np.ndarray,
    requests_canary: np.ndarray,
    *,
    delta0: float = 0.0,
    scale: float = 1.0,
    overdispersion: bool = True,
    block: int = 10,
    prior_blocks: float = 3.0,
) -> CountTest:
    """Sequential test that the canary's event rate exceeds the baseline's by more than ``exp(delta0)``.

    Parameters
    ----------
    events_baseline, requests_baseline, events_canary, requests_canary
        Per-minute counts (NaN = missing minute, treated as no data).
    delta0
        Null log rate ratio; 0 tests "any increase".
    scale
        Scale of the half-normal mixing distribution on ``delta - delta0``
        (1.0 puts most weight on rate ratios up to about e^2).
    overdispersion
        Temper the likelihood by an estimated dispersion factor (per-arm
        noise beyond binomial, e.g. separate instances per arm).

    Notes
    -----
    Conditional on ``m_t`` events in minute t, the canary's count is
    Binomial(m_t, pi_t(delta)), whatever the load did; the log likelihood ratio
    of delta against delta0 is ``x_t (delta - delta0) - m_t [log(r_t e^delta + 1 - r_t) -
    log(r_t e^delta0 + 1 - r_t)]``. It is computed on a grid of 241 values of
    delta, mixed with half-normal weights, cumulated over minutes. Minutes in
    which an arm had no requests carry no information (``r_t`` is 0 or 1).
    """
    xb = np.nan_to_num(np.asarray(events_baseline, float))
    xc = np.nan_to_num(np.asarray(events_canary, float))
    nb = np.nan_to_num(np.asarray(requests_baseline, float))
    nc = np.nan_to_num(np.asarray(requests_canary, float))
    tot = nb + nc
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(tot > 0, nc / tot, 0.5)
    m = xb + xc
    use = (m > 0) & (nb > 0) & (nc > 0)
    share_u, m_u, xc_u = share[use], m[use], xc[use]
    grid = delta0 + np.linspace(0.0, 6.0 * scale, 241)
    w = sps.norm.pdf((grid - delta0) / scale)
    logw = np.log(w / w.sum())
    T = xb.size
    llr = np.zeros((T, grid.size))
    if use.any():
        lse = np.logaddexp(np.log(share_u)[:, None] + grid[None, :], np.log1p(-share_u)[:, None])
        lse0 = np.logaddexp(np.log(share_u) + delta0, np.log1p(-share_u))
        llr[use] = xc_u[:, None] * (grid - delta0)[None, :] - m_u[:, None] * (lse - lse0[:, None])
    cum = np.cumsum(llr, axis=0)
    if overdispersion:
        phi = _dispersion_path(np.where(use, xc, 0.0), np.where(use, m, 0.0), np.where(use, share, 0.5),
                               block, prior_blocks)
    else:
        phi = np.ones(T)
    log_e = special.logsumexp(cum / phi[:, None] + logw[None, :], axis=1)
    e = np.exp(np.minimum(log_e, 700.0))
    p = np.minimum(1.0, 1.0 / np.maximum.accumulate(np.maximum(e, 1e-300)))
    cx, cm = np.cumsum(np.where(use, xc, 0)), np.cumsum(np.where(use, m, 0))
    cexp = np.cumsum(np.where(use, m * share, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # odds of the canary's observed share against the expected share
        lr = np.log((cx / np.maximum(cm - cx, 1e-300)) / (cexp / np.maximum(cm - cexp, 1e-300)))
    return CountTest(e_value=e, p_value=p, dispersion=phi, events=np.cumsum(m), log_ratio=lr)


# --------------------------------------------------------------------------------------------------
# quantiles of raw samples


def _betabinom_interval(n: np.ndarray, p: float, alpha: float, k: float) -> tuple[np.ndarray, np.ndarray]:
    """For each n: the smallest and largest count s with beta-binomial mixture e-value < 1/alpha."""
    a, b = p * k, (1 - p) * k
    lo = np.empty(n.size, dtype=np.int64)
    hi = np.empty(n.size, dtype=np.int64)
    thr = math.log(1.0 / alpha)
    for i, nn in enumerate(n.astype(np.int64)):
        s = np.arange(nn + 1)
        log_e = (special.betaln(a + s, b + nn - s) - special.betaln(a, b)
                 - s * math.log(p) - (nn - s) * math.log1p(-p))
        inside = np.flatnonzero(log_e < thr)
        lo[i], hi[i] = (inside[0], inside[-1]) if inside.size else (0, nn)
    return lo, hi


def quantile_cs(
    x: np.ndarray, p: float, alpha: float, *, looks: np.ndarray | None = None, t_opt: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence sequence for the p-quantile of i.i.d. samples ``x`` (in arrival order).

    At a look after n samples the interval is ``[x_(lo), x_(hi+1)]`` (order
    statistics of the first n), where ``lo..hi`` are the counts ``s`` of samples
    below a candidate value that a beta-binomial mixture martingale for
    ``F(q) = p`` does not reject at ``alpha``; the mixture is tuned to be tightest
    at ``t_opt`` samples. Time-uniform: ``P(exists n: q_p outside) <= alpha``
    (two-sided). ``-inf``/``inf`` where too few samples fall on a side.

    Parameters
    ----------
    looks
        Sample counts at which to report (default every 100 samples and the end).

    Returns
    -------
    (lower, upper) arrays, one entry per look.
    """
    x = np.asarray(x, dtype=float)
    N = x.size
    if looks is None:
        looks = np.unique(np.r_[np.arange(100, N, 100), N])
    looks = np.asarray(looks, dtype=np.int64)
    t_opt = float(t_opt or max(N / 3.0, 10.0))
    k = max(mixture_precision(t_opt, alpha / 2.0), 1e-3)  # beta concentration ~ precision in counts
    lo_s, hi_s = _betabinom_interval(looks, p, alpha / 2.0, k)
    lower = np.full(looks.size, -np.inf)
    upper = np.full(looks.size, np.inf)
    for i, n in enumerate(looks):
        if n <= 0:
            continue
        xs = np.sort(x[:n])
        if lo_s[i] >= 1:
            lower[i] = xs[lo_s[i] - 1]
        if hi_s[i] + 1 <= n:
            upper[i] = xs[hi_s[i]]
    return lower, upper


def quantile_ratio_cs(
    baseline: np.ndarray, canary: np.ndarray, p: float, alpha: float, *, looks: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Time-uniform bounds on ``q_p(canary) / q_p(baseline)`` from each arm's quantile CS at ``alpha/2``.

    Valid when each arm's requests are i.i.d. (randomised assignment on a shared
    fleet); per-arm cluster effects break that assumption, which the
    minute-paired test (:func:`paired_cs`) does not need. ``looks`` evenly
    spaced looks over the shorter arm.
    """
    b, c = np.asarray(baseline, float), np.asarray(canary, float)
    n = min(b.size, c.size)
    frac = np.linspace(1.0 / looks, 1.0, looks)
    lb, ub = quantile_cs(b, p, alpha / 2, looks=np.maximum((frac * b.size).astype(int), 1))
    lc, uc = quantile_cs(c, p, alpha / 2, looks=np.maximum((frac * c.size).astype(int), 1))
    del n
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(ub > 0, lc / ub, 0.0)
        upper = np.where(lb > 0, uc / lb, np.inf)
    return np.maximum.accumulate(np.nan_to_num(lower, nan=0.0)), np.minimum.accumulate(np.nan_to_num(upper, nan=np.inf))
