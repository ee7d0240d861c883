"""Parametric latency models: moments, quantiles and CDFs against sampling and against scipy.stats.

Statistical tolerances (all with fixed seeds, so each check is deterministic):

* sample mean: within 4 standard errors, ``4 * sqrt(var / N)`` (a correct model fails
  with probability ~6e-5 under the CLT);
* sample quantiles: distribution-free order-statistic bound. The empirical q-quantile of
  N draws lies in ``[Q(q - d), Q(q + d)]`` with ``d = 4 sqrt(q (1 - q) / N)`` except with
  probability ~6e-5 (normal approximation of the binomial count below ``Q(q)``);
* Kolmogorov-Smirnov test of the draws against ``cdf``: p-value > 0.001.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats

from meshsim.latency import (
    PERCENTILE_LEVELS,
    Constant,
    Exponential,
    Gamma,
    LatencyModel,
    LogNormal,
    Pareto,
    Uniform,
    Weibull,
    parse_latency,
)

N = 200_000
SEED = 20240607

MODELS = {
    "constant": Constant(value="20ms"),
    "exponential-mean": Exponential(mean="20ms"),
    "exponential-rate": Exponential(rate="50/s"),
    "uniform": Uniform(low="5ms", high="25ms"),
    "lognormal-pct": LogNormal(p50="20ms", p99="200ms"),
    "lognormal-mu-sigma": LogNormal(mu=-4.0, sigma=0.5),
    "lognormal-moments": LogNormal(mean="30ms", stdev="15ms"),
    "gamma-shape-scale": Gamma(shape=2.5, scale="8ms"),
    "gamma-moments": Gamma(mean="20ms", stdev="5ms"),
    "weibull": Weibull(shape=0.8, scale="15ms"),
    "pareto": Pareto(scale="10ms", shape=4.0),
}
CONTINUOUS = [k for k in MODELS if k != "constant"]


def scipy_dist(m: LatencyModel):
    """The same distribution from scipy.stats: an independent oracle for quantile/cdf/mean/var."""
    if isinstance(m, Exponential):
        return stats.expon(scale=m.mean())
    if isinstance(m, Uniform):
        return stats.uniform(loc=m.low, scale=m.high - m.low)
    if isinstance(m, LogNormal):
        return stats.lognorm(s=m.sigma, scale=math.exp(m.mu))
    if isinstance(m, Gamma):
        return stats.gamma(a=m.shape, scale=m.scale)
    if isinstance(m, Weibull):
        return stats.weibull_min(c=m.shape, scale=m.scale)
    if isinstance(m, Pareto):
        return stats.pareto(b=m.shape, scale=m.scale)
    raise AssertionError(m)


@pytest.fixture(scope="module")
def draws() -> dict[str, np.ndarray]:
    return {name: m.sample(np.random.default_rng(SEED), N) for name, m in MODELS.items()}


@pytest.mark.parametrize("name", MODELS)
def test_sample_mean_within_four_standard_errors(name, draws):
    m, x = MODELS[name], draws[name]
    assert x.dtype == np.float64 and x.shape == (N,)
    assert np.all(x >= 0.0)
    tolerance = 4.0 * math.sqrt(m.var() / N) + 1e-12 * m.mean()
    assert abs(x.mean() - m.mean()) <= tolerance


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_sample_quantile_within_order_statistic_bound(name, q, draws):
    m, x = MODELS[name], draws[name]
    d = 4.0 * math.sqrt(q * (1.0 - q) / N)
    empirical = np.quantile(x, q, method="inverted_cdf")
    assert m.quantile(q - d) <= empirical <= m.quantile(q + d)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_draws_pass_ks_test_against_cdf(name, draws):
    result = stats.kstest(draws[name], MODELS[name].cdf)
    assert result.pvalue > 0.001


@pytest.mark.parametrize("name", CONTINUOUS)
def test_analytic_forms_agree_with_scipy_stats(name):
    m = MODELS[name]
    ref = scipy_dist(m)
    q = np.array([0.0, 1e-6, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1 - 1e-9])
    np.testing.assert_allclose(m.quantile(q), ref.ppf(q), rtol=1e-9, atol=1e-15)
    x = np.concatenate(([-1.0, 0.0], ref.ppf(q[1:])))
    np.testing.assert_allclose(m.cdf(x), ref.cdf(x), rtol=1e-9, atol=1e-12)
    assert m.mean() == pytest.approx(ref.mean(), rel=1e-9)
    assert m.var() == pytest.approx(ref.var(), rel=1e-9)


@pytest.mark.parametrize("name", CONTINUOUS)
@settings(max_examples=50, deadline=None)
@given(q=st.floats(1e-6, 1 - 1e-6))
def test_cdf_inverts_quantile(name, q):
    m = MODELS[name]
    assert m.cdf(m.quantile(q)) == pytest.approx(q, rel=1e-7, abs=1e-12)


def test_constant():
    m = Constant(value="20ms")
    assert m.quantile(0.0) == m.quantile(1.0) == 0.02
    assert m.cdf([0.0199, 0.02, 1.0]).tolist() == [0.0, 1.0, 1.0]
    assert m.var() == 0.0


def test_quantile_of_unbounded_models_at_one_is_infinite():
    assert Exponential(mean=1).quantile(1.0) == math.inf
    assert Pareto(scale=1, shape=2).quantile(1.0) == math.inf
    assert LogNormal(mu=0, sigma=1).quantile(1.0) == math.inf


def test_lognormal_fitted_from_p50_p99_reproduces_them():
    m = LogNormal(p50="20ms", p99="200ms")
    assert abs(m.quantile(0.5) - 0.02) < 1e-9
    assert abs(m.quantile(0.99) - 0.2) < 1e-9
    # sigma = (ln 0.2 - ln 0.02) / z_0.99, mu = ln 0.02
    assert m.sigma == pytest.approx(math.log(10) / stats.norm.ppf(0.99), rel=1e-12)
    assert m.mu == pytest.approx(math.log(0.02), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    levels=st.lists(st.sampled_from(sorted(PERCENTILE_LEVELS)), min_size=2, max_size=2, unique=True),
    low=st.floats(1e-4, 10.0),
    ratio=st.floats(1.001, 1000.0),
)
def test_lognormal_passes_through_any_two_percentiles(levels, low, ratio):
    a, b = sorted(levels, key=PERCENTILE_LEVELS.get)
    m = LogNormal(**{a: low, b: low * ratio})
    assert m.quantile(PERCENTILE_LEVELS[a]) == pytest.approx(low, rel=1e-9)
    assert m.quantile(PERCENTILE_LEVELS[b]) == pytest.approx(low * ratio, rel=1e-9)


def test_moment_parameterisations_reproduce_the_moments():
    ln = LogNormal(mean="30ms", stdev="15ms")
    assert ln.mean() == pytest.approx(0.03, rel=1e-12)
    assert math.sqrt(ln.var()) == pytest.approx(0.015, rel=1e-12)
    g = Gamma(mean="20ms", stdev="5ms")
    assert (g.shape, g.scale) == pytest.approx((16.0, 0.00125), rel=1e-12)
    assert g.mean() == pytest.approx(0.02, rel=1e-12)
    assert math.sqrt(g.var()) == pytest.approx(0.005, rel=1e-12)
    assert Exponential(rate="50/s").mean() == pytest.approx(0.02)


def test_pareto_infinite_moments():
    assert Pareto(scale="10ms", shape=1.0).mean() == math.inf
    assert Pareto(scale="10ms", shape=0.5).mean() == math.inf
    assert Pareto(scale="10ms", shape=2.0).mean() == pytest.approx(0.02)
    assert Pareto(scale="10ms", shape=2.0).var() == math.inf
    assert Pareto(scale="10ms", shape=3.0).mean() == pytest.approx(0.015)


def test_scalar_in_float_out_array_in_array_out():
    m = MODELS["lognormal-pct"]
    assert type(m.quantile(0.5)) is float
    assert type(m.cdf(0.02)) is float
    out = m.quantile([[0.1, 0.5], [0.9, 0.99]])
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)
    assert m.cdf(np.zeros(3)).shape == (3,)


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan"), [0.5, 2.0]])
def test_quantile_refuses_levels_outside_unit_interval(q):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MODELS["exponential-mean"].quantile(q)


@pytest.mark.parametrize("size", [-1, 2.5, True])
def test_sample_refuses_bad_sizes(size):
    with pytest.raises(ValueError, match="size"):
        MODELS["uniform"].sample(np.random.default_rng(0), size)


def test_sample_accepts_int_seed_and_zero_size():
    m = MODELS["gamma-moments"]
    np.testing.assert_array_equal(m.sample(3, 10), m.sample(np.random.default_rng(3), 10))
    assert m.sample(0, 0).shape == (0,)


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (Constant(value=0.25), "constant(value=250ms)"),
        (Exponential(mean="20ms"), "exponential(mean=20ms)"),
        (Exponential(rate=50), "exponential(rate=50/s)"),
        (Uniform(low=0, high="5ms"), "uniform(low=0s, high=5ms)"),
        (LogNormal(p50="20ms", p99="200ms"), "lognormal(p50=20ms, p99=200ms)"),
        (LogNormal(mu=-4, sigma=0.5), "lognormal(mu=-4, sigma=0.5)"),
        (LogNormal(mean="30ms", stdev="15ms"), "lognormal(mean=30ms, stdev=15ms)"),
        (Gamma(shape=2, scale="10ms"), "gamma(shape=2, scale=10ms)"),
        (Gamma(mean="20ms", stdev="5ms"), "gamma(mean=20ms, stdev=5ms)"),
        (Weibull(shape=0.8, scale="15ms"), "weibull(shape=0.8, scale=15ms)"),
        (Pareto(scale="10ms", shape=1.5), "pareto(scale=10ms, shape=1.5)"),
    ],
)
def test_describe_and_repr(model, text):
    assert model.describe() == text
    assert repr(model) == text == str(model)


@pytest.mark.parametrize("name", MODELS)
def test_models_are_frozen_hashable_picklable_and_round_trip(name):
    m = MODELS[name]
    assert pickle.loads(pickle.dumps(m)) == m
    assert hash(m) == hash(m.model_copy())
    assert parse_latency(m.model_dump()) == m
    assert parse_latency(m.model_dump(exclude_none=True)) == m
    with pytest.raises(ValidationError):
        m.type = "other"  # type: ignore[misc]
