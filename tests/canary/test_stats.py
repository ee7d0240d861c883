"""Fixed-sample statistics (meshsim.canary.stats) against scipy, brute force and known values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from meshsim.canary import stats as S


@pytest.fixture
def arms() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(0.0, 1.0, 300), rng.normal(0.4, 1.0, 250)


def test_hodges_lehmann_matches_brute_force(arms) -> None:
    b, c = arms
    d = np.sort(np.subtract.outer(c, b).ravel())
    est, lo, hi = S.hodges_lehmann(b, c, 0.95)
    assert est == pytest.approx(np.median(d))
    n = d.size
    z = sps.norm.isf(0.025)
    k = int(np.floor(n / 2 - z * np.sqrt(b.size * c.size * (b.size + c.size + 1) / 12)))
    assert (lo, hi) == (d[k - 1], d[n - k])


def test_hodges_lehmann_large_samples_by_bisection() -> None:
    rng = np.random.default_rng(1)
    b, c = rng.normal(0, 1, 800), rng.normal(0.25, 1, 700)  # 560k pairs: the counting path
    est, lo, hi = S.hodges_lehmann(b, c)
    assert est == pytest.approx(np.median(np.subtract.outer(c, b)), abs=1e-9)
    assert lo < 0.25 < hi


def test_mann_whitney_is_scipys(arms) -> None:
    b, c = arms
    r = S.mann_whitney(b, c, alternative="greater")
    ref = sps.mannwhitneyu(c, b, alternative="greater")
    assert r.statistic == ref.statistic and r.pvalue == pytest.approx(ref.pvalue)
    assert r.ci_low < r.estimate < r.ci_high and r.effect_kind == "difference"
    assert 0.5 < r.details["cles"] < 1


def test_bootstrap_quantile_seeded_and_covering() -> None:
    rng = np.random.default_rng(3)
    b, c = rng.lognormal(0, 0.5, 4000), 1.2 * rng.lognormal(0, 0.5, 4000)
    r1 = S.bootstrap_quantile(b, c, 0.9, rng=5, alternative="two-sided")
    r2 = S.bootstrap_quantile(b, c, 0.9, rng=5, alternative="two-sided")
    assert r1 == r2
    assert r1.ci_low < 1.2 < r1.ci_high and r1.pvalue < 0.01
    d = S.bootstrap_quantile(b, c, 0.5, kind="difference", rng=5)
    assert d.effect_kind == "difference" and d.ci_high == np.inf


def test_bootstrap_order_statistic_distribution_is_exact() -> None:
    """The direct draw equals resampling: P(boot median <= x_(j)) from both ways."""
    rng = np.random.default_rng(0)
    n, q = 25, 0.5
    idx = S._boot_order_index(n, q, 200_000, rng)
    k = int(np.ceil(q * n))
    brute = np.sort(rng.integers(0, n, size=(40_000, n)), axis=1)[:, k - 1]
    for j in (8, 12, 16):
        assert np.mean(idx <= j) == pytest.approx(np.mean(brute <= j), abs=0.01)


def test_conditional_binomial_test() -> None:
    r = S.conditional_binomial_test(10, 10_000, 50, 10_000)
    assert r.pvalue == pytest.approx(sps.binomtest(50, 60, 0.5, alternative="greater").pvalue)
    assert r.estimate == pytest.approx(5.0) and r.ci_low > 2
    zero = S.conditional_binomial_test(0, 1000, 0, 1000)
    assert zero.pvalue == 1.0 and zero.ci_high == np.inf  # no evidence either way, not a pass
    zb = S.conditional_binomial_test(0, 1000, 6, 1000)  # zero baseline: still a valid test
    assert zb.pvalue == pytest.approx(0.5**6) and zb.estimate == np.inf


def test_poisson_rate_test_is_scipys() -> None:
    r = S.poisson_rate_test(10, 10_000, 30, 10_000)
    ref = sps.poisson_means_test(30, 10_000, 10, 10_000, alternative="greater")
    assert r.pvalue == pytest.approx(ref.pvalue) and r.estimate == pytest.approx(0.002)


def test_shape_tests_see_a_spread_change_that_mann_whitney_misses() -> None:
    rng = np.random.default_rng(11)
    b = rng.normal(0, 1, 2000)
    c = rng.normal(0, 1.5, 2000)  # same median, wider
    assert S.mann_whitney(b, c, alternative="two-sided").pvalue > 0.01
    assert S.ks_test(b, c).pvalue < 1e-6
    ad = S.anderson_darling_test(b, c)
    assert ad.pvalue <= 0.001 and ad.ci_low < 1.5 < ad.ci_high
    assert S.ks_test(b, c + 1.0, alternative="greater").pvalue < 1e-6


def _ar1(rng, n, rho) -> np.ndarray:
    x = np.zeros(n)
    e = rng.normal(size=n)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def test_long_run_variance_estimators() -> None:
    rng = np.random.default_rng(2)
    x = _ar1(rng, 20_000, 0.5)
    true = 1.0 / (1 - 0.5) ** 2  # innovation variance 1
    assert S.hac_variance(x, lags=60) == pytest.approx(true, rel=0.1)
    assert S.batch_means_variance(x, 100) == pytest.approx(true, rel=0.25)
    assert S.hac_variance(np.ones(10) + np.arange(10) * 0) == 0.0


def test_paired_minutes_hac_is_calibrated_where_iid_is_not() -> None:
    rng = np.random.default_rng(4)
    rej_hac = rej_iid = 0
    for _ in range(300):
        u = 0.1 * _ar1(rng, 180, 0.7)  # per-arm noise, only in the canary
        b = np.exp(rng.normal(0, 0.05, 180))
        c = np.exp(rng.normal(0, 0.05, 180) + u)
        rej_hac += S.paired_minutes_test(b, c, variance="hac").pvalue < 0.05
        rej_iid += S.paired_minutes_test(b, c, variance="iid").pvalue < 0.05
    # Newey-West with its default bandwidth still under-corrects at rho = 0.7 over 180 minutes
    # (the judge's sequential variance model is stricter); the iid t-test is far off
    assert rej_hac / 300 < 0.15 and rej_iid / 300 > 1.5 * rej_hac / 300


def test_block_bootstrap_is_seeded() -> None:
    x = _ar1(np.random.default_rng(9), 200, 0.6)
    assert S.block_bootstrap_mean(x, rng=1) == S.block_bootstrap_mean(x, rng=1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alternative"):
        S.mann_whitney([1, 2], [3, 4], alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no finite values"):
        S.mann_whitney([np.nan], [1.0])
    with pytest.raises(ValueError, match="one value per minute"):
        S.paired_minutes_test([1, 2, 3], [1, 2])
