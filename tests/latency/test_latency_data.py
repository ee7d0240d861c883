"""Data-driven latency models: ``empirical`` (resampling) and ``histogram`` (Prometheus buckets).

Tolerances as in test_latency_models.py: sample means within 4 standard errors,
sample quantiles within the distribution-free order-statistic bound
``[Q(q - d), Q(q + d)]``, ``d = 4 sqrt(q (1 - q) / N)``, KS p-value > 0.001,
binomial frequencies within 4 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from meshsim import ConfigError
from meshsim.latency import Empirical, Histogram, parse_latency

N = 200_000
SEED = 77

# ---- empirical -------------------------------------------------------------------------------------


def test_empirical_quantile_is_the_inverse_of_the_empirical_cdf():
    m = Empirical(samples=["40ms", "10ms", "30ms", "20ms"])
    assert m.quantile(0.0) == 0.01
    assert m.quantile(0.25) == 0.01
    assert m.quantile(0.2500001) == 0.02
    assert m.quantile(0.5) == 0.02
    assert m.quantile(0.75) == 0.03
    assert m.quantile(1.0) == 0.04
    assert m.cdf([0.0, 0.01, 0.015, 0.04, 1.0]).tolist() == [0.0, 0.25, 0.25, 1.0, 1.0]
    assert m.mean() == pytest.approx(0.025)
    assert m.var() == pytest.approx(np.var([0.01, 0.02, 0.03, 0.04]))


@settings(max_examples=200, deadline=None)
@given(
    samples=st.lists(st.integers(0, 20).map(lambda k: k / 10), min_size=1, max_size=30),
    q=st.one_of(st.floats(0.0, 1.0), st.integers(0, 30).map(lambda k: k / 30)),
)
def test_empirical_quantile_is_the_generalised_inverse(samples, q):
    m = Empirical(samples=samples)
    x = m.quantile(q)
    assert x in samples
    assert m.cdf(x) >= q  # x reaches level q ...
    below = [s for s in samples if s < x]
    if below:  # ... and no smaller sample does
        assert m.cdf(max(below)) < q
    assert x == np.quantile(np.asarray(samples), q, method="inverted_cdf")


def test_empirical_draws_resample_with_equal_frequencies():
    values = [0.001, 0.002, 0.005, 0.010, 0.100]
    m = Empirical(samples=values)
    x = m.sample(np.random.default_rng(SEED), N)
    assert set(np.unique(x)) == set(values)
    p = 1 / len(values)
    counts = np.array([np.count_nonzero(x == v) for v in values])
    assert np.all(np.abs(counts - N * p) <= 4 * math.sqrt(N * p * (1 - p)))
    assert abs(x.mean() - m.mean()) <= 4 * math.sqrt(m.var() / N)
    for q in (0.5, 0.9, 0.99):
        d = 4 * math.sqrt(q * (1 - q) / N)
        assert m.quantile(q - d) <= np.quantile(x, q, method="inverted_cdf") <= m.quantile(q + d)


def test_empirical_describe_and_validation():
    m = Empirical(samples=["10ms"] * 50 + ["1s"])
    assert m.describe() == "empirical(n=51, p50=10ms, p99=1s)"
    with pytest.raises(ConfigError, match="at least one sample"):
        parse_latency({"type": "empirical", "samples": []})
    with pytest.raises(ConfigError, match=r"latency\.samples\.1: '-5ms' is negative"):
        parse_latency({"type": "empirical", "samples": ["1ms", "-5ms"]})


# ---- histogram -------------------------------------------------------------------------------------

# A Prometheus-style cumulative histogram (le in seconds, as Prometheus exports it).
PROM_BUCKETS = [
    {"le": "0.1", "count": 10},
    {"le": "0.25", "count": 40},
    {"le": "0.5", "count": 80},
    {"le": "1", "count": 95},
    {"le": "+Inf", "count": 100},
]


def prometheus_bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Transcription of Prometheus' promql/quantile.go ``BucketQuantile`` (cumulative, last is +Inf)."""
    assert buckets[-1][0] == math.inf and len(buckets) >= 2
    observations = buckets[-1][1]
    rank = q * observations
    # b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].count >= rank })
    b = next((i for i in range(len(buckets) - 1) if buckets[i][1] >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)


def test_histogram_quantile_matches_prometheus_worked_example():
    h = Histogram(buckets=PROM_BUCKETS)
    # histogram_quantile(0.5): rank 50 falls in (0.25, 0.5] holding 40 -> 0.25 + 0.25 * (50 - 40) / 40
    assert h.quantile(0.5) == pytest.approx(0.3125, abs=1e-15)
    # histogram_quantile(0.9): rank 90 in (0.5, 1] holding 15 -> 0.5 + 0.5 * (90 - 80) / 15
    assert h.quantile(0.9) == pytest.approx(0.5 + 0.5 * 10 / 15, abs=1e-15)
    # first bucket interpolates from 0: rank 5 of 10 in (0, 0.1]
    assert h.quantile(0.05) == pytest.approx(0.05, abs=1e-15)
    # rank 99 is in the +Inf bucket: the highest finite bound, as Prometheus returns
    assert h.quantile(0.99) == 1.0
    assert h.quantile(1.0) == 1.0
    ref = [(float(b["le"]), b["count"]) for b in PROM_BUCKETS]
    for q in (0.01, 0.1, 0.4, 0.5, 0.8, 0.95, 0.96, 0.99):
        assert h.quantile(q) == pytest.approx(prometheus_bucket_quantile(q, ref), rel=1e-12)


bucket_sets = st.tuples(
    st.lists(st.integers(1, 2000), min_size=1, max_size=8, unique=True).map(
        lambda xs: sorted(x / 1000 for x in xs)
    ),
    st.lists(st.integers(0, 50), min_size=9, max_size=9),
).filter(lambda t: sum(t[1][: len(t[0]) + 1]) > 0)


@settings(max_examples=200, deadline=None)
@given(buckets=bucket_sets, q=st.floats(1e-9, 1.0))
def test_histogram_quantile_agrees_with_prometheus(buckets, q):
    bounds, per_bucket = buckets
    counts = np.cumsum(per_bucket[: len(bounds) + 1]).tolist()  # last is the +Inf bucket
    ref = [*zip(bounds, counts[:-1], strict=True), (math.inf, counts[-1])]
    h = Histogram(buckets=[{"le": le, "count": c} for le, c in ref])
    assert h.quantile(q) == pytest.approx(prometheus_bucket_quantile(q, ref), rel=1e-12, abs=1e-15)
    # the same data given per bucket
    per = Histogram(
        buckets=[{"le": le, "count": c} for le, c in zip([*bounds, "+Inf"], per_bucket, strict=False)],
        cumulative=False,
    )
    assert per.quantile(q) == pytest.approx(h.quantile(q), rel=1e-12, abs=1e-15)
    # cdf inverts quantile wherever the CDF is not flat (inside buckets with mass, below +Inf); at
    # q == the finite share, x is the last finite bound, where the +Inf mass sits as a point mass
    finite_mass = counts[-2] / counts[-1]
    x = h.quantile(q)
    if q < finite_mass:
        assert h.cdf(x) == pytest.approx(q, rel=1e-9, abs=1e-12)
    else:
        assert x == bounds[-1] and h.cdf(x) == 1.0


def test_histogram_draws_agree_with_quantile_cdf_and_mean():
    h = Histogram(
        buckets=[
            {"le": "5ms", "count": 100},
            {"le": "10ms", "count": 600},
            {"le": "25ms", "count": 900},
            {"le": "100ms", "count": 990},
            {"le": "1s", "count": 1000},
        ]
    )
    x = h.sample(np.random.default_rng(SEED), N)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert stats.kstest(x, h.cdf).pvalue > 0.001
    assert abs(x.mean() - h.mean()) <= 4 * math.sqrt(h.var() / N)
    for q in (0.5, 0.9, 0.99):
        d = 4 * math.sqrt(q * (1 - q) / N)
        assert h.quantile(q - d) <= np.quantile(x, q, method="inverted_cdf") <= h.quantile(q + d)


def test_histogram_moments_equal_the_integral_of_the_quantile_function():
    # E[X^k] = integral_0^1 Q(u)^k du; the midpoint rule on a fine grid is an independent check
    h = Histogram(buckets=PROM_BUCKETS)
    u = (np.arange(1_000_000) + 0.5) / 1_000_000
    xq = h.quantile(u)
    assert h.mean() == pytest.approx(xq.mean(), rel=1e-6)
    assert h.var() == pytest.approx(xq.var(), rel=1e-6)


def test_histogram_inf_mass_is_drawn_as_the_last_finite_bound():
    h = Histogram(buckets=PROM_BUCKETS)
    x = h.sample(np.random.default_rng(SEED), N)
    p = 5 / 100
    at_top = np.count_nonzero(x == 1.0)
    assert abs(at_top - N * p) <= 4 * math.sqrt(N * p * (1 - p))
    assert x.max() == 1.0
    assert h.cdf(1.0) == 1.0
    assert h.cdf(0.999999) == pytest.approx(0.95, abs=1e-6)


def test_histogram_without_inf_bucket_and_with_zero_bound():
    h = Histogram(buckets=[{"le": 0, "count": 5}, {"le": "10ms", "count": 10}])
    assert h.quantile(0.5) == 0.0  # the le=0 bucket holds zero-latency observations
    assert h.quantile(0.75) == pytest.approx(0.005)
    assert h.cdf(0.0) == 0.5
    assert h.cdf(-1.0) == 0.0
    assert h.describe() == "histogram(le=[0s, 10ms], count=10)"


def test_histogram_describe():
    h = parse_latency({"type": "histogram", "buckets": PROM_BUCKETS})
    assert h.describe() == "histogram(le=[100ms, 250ms, 500ms, 1s, +Inf], count=100)"


@pytest.mark.parametrize(
    ("buckets", "extra", "message"),
    [
        ([{"le": "20 parsecs", "count": 1}], {}, r"buckets\.0\.le: '20 parsecs' is not a bucket bound"),
        ([{"le": "+Inf", "count": 1}, {"le": 1, "count": 2}], {}, r"only the last bucket"),
        ([{"le": "+Inf", "count": 1}], {}, r"at least one bucket with a finite"),
        ([{"le": 1, "count": 1}, {"le": 1, "count": 2}], {}, r"strictly increase"),
        ([{"le": 1, "count": 5}, {"le": 2, "count": 3}], {}, r"must not decrease.*cumulative: false"),
        ([{"le": 1, "count": 0}, {"le": 2, "count": 0}], {}, r"no observations"),
        ([{"le": 1, "count": -1}], {}, r"count: Input should be greater than or equal to 0"),
        ([], {}, r"at least one bucket"),
        ([{"le": 1, "count": 1, "sum": 3}], {}, r"buckets\.0\.sum: Extra inputs"),
    ],
)
def test_histogram_validation(buckets, extra, message):
    with pytest.raises(ConfigError, match=message):
        parse_latency({"type": "histogram", "buckets": buckets, **extra})


def test_histogram_per_bucket_counts_may_decrease():
    h = Histogram(buckets=[{"le": 1, "count": 5}, {"le": 2, "count": 3}], cumulative=False)
    assert h.cdf(1.0) == pytest.approx(5 / 8)
    assert h.describe() == "histogram(le=[1s, 2s], count=8, cumulative=false)"
