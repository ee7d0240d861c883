"""The ROLLBACK-side variance prior of paired minutes (``ratio_prior``, sized by a reference series)."""

from __future__ import annotations

import numpy as np

from meshsim.canary.sequential import long_run_variance_path, running_variance


def test_running_variance_matches_numpy() -> None:
    d = np.random.default_rng(1).normal(0, 1, 40)
    d[7] = np.nan
    v = running_variance(d)
    assert np.isnan(v[0])
    ok = np.isfinite(d[:20])
    assert np.isclose(v[19], np.var(d[:20][ok], ddof=1))


def test_prior_inflates_early_and_fades() -> None:
    """White minutes: the prior (r0 = 3, 10 minutes) triples var(mean) at first and fades to ~1.2x at
    n = 100; the degrees of freedom come from the data alone."""
    d = np.random.default_rng(2).normal(0, 0.05, 100)
    n, _, plain, neff_plain = long_run_variance_path(d)
    _, _, prior, neff_prior = long_run_variance_path(d, ratio_prior=3.0, ratio_prior_minutes=10.0)
    g0 = running_variance(d)
    assert np.isclose(prior[4] / (g0[4] / 5), (10 * 3 + 5 * plain[4] / (g0[4] / 5)) / 15, rtol=1e-6)
    assert 1.1 < prior[-1] / plain[-1] < 1.3
    assert np.array_equal(neff_plain, neff_prior)


def test_reference_series_sizes_the_prior() -> None:
    """A noisy quantile (sd 0.25) with a precise reference (sd 0.05): the persistent part of the prior
    is the reference's, so the noisy series is inflated by a few percent, not threefold."""
    rng = np.random.default_rng(3)
    noisy, precise = rng.normal(0, 0.25, 30), rng.normal(0, 0.05, 30)
    _, _, plain, _ = long_run_variance_path(noisy)
    _, _, own, _ = long_run_variance_path(noisy, ratio_prior=3.0, ratio_prior_minutes=10.0)
    _, _, ref, _ = long_run_variance_path(noisy, ratio_prior=3.0, ratio_prior_minutes=10.0,
                                          ratio_prior_ref=running_variance(precise))
    assert own[9] / plain[9] > 1.8
    assert ref[9] / plain[9] < 1.1
