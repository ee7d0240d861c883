"""Tests of meshsim.sim._histogram.LogHistogram against numpy on the same values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.sim._histogram import HIGHEST, LOWEST, SUB_BUCKETS, LogHistogram

QS = [0.0, 1e-4, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0]


def _lognormal(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(0.030), 1.2, n)


def test_quantiles_of_a_million_lognormal_draws_within_0_1_percent():
    x = _lognormal(1_000_000)
    h = LogHistogram()
    h.add_array(x)
    est = h.quantile(QS)
    exact = np.quantile(x, QS)
    assert isinstance(est, np.ndarray) and est.shape == (len(QS),)
    np.testing.assert_array_less(np.abs(est / exact - 1.0), 1e-3)
    assert h.quantile(0.0) == x.min() and h.quantile(1.0) == x.max()


def test_scalar_quantile_is_a_float_and_shape_follows_q():
    h = LogHistogram()
    h.add_array(_lognormal(1000))
    assert isinstance(h.quantile(0.5), float)
    assert h.quantile([[0.5, 0.9], [0.99, 1.0]]).shape == (2, 2)


def test_count_sum_mean_min_max_are_exact():
    x = _lognormal(200_000, seed=3)
    h = LogHistogram()
    for v in x.tolist():
        h.add(v)
    assert h.count == x.size
    assert h.min == x.min() and h.max == x.max()
    assert h.sum == pytest.approx(math.fsum(x.tolist()), rel=1e-15)
    assert h.mean == pytest.approx(x.mean(), rel=1e-12)


def test_add_and_add_array_and_any_order_give_the_same_buckets():
    x = _lognormal(50_000, seed=4)
    a = LogHistogram(buffer_size=1000)
    for v in x.tolist():
        a.add(v)
    b = LogHistogram()
    b.add_array(np.random.default_rng(0).permutation(x))
    da, db = a.to_dict(), b.to_dict()
    assert da.pop("sum") == pytest.approx(db.pop("sum"), rel=1e-14)
    assert da == db
    np.testing.assert_array_equal(a.quantile(QS), b.quantile(QS))


def test_merge_equals_adding_all():
    x = _lognormal(300_000, seed=5)
    whole = LogHistogram()
    whole.add_array(x)
    parts = [LogHistogram() for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(x, 3), strict=True):
        for v in chunk[:100].tolist():  # some values still in the buffer when merging
            part.add(v)
        part.add_array(chunk[100:])
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged is parts[0]
    dm, dw = merged.to_dict(), whole.to_dict()
    assert dm.pop("sum") == pytest.approx(dw.pop("sum"), rel=1e-14)
    assert dm == dw
    np.testing.assert_array_equal(merged.quantile(QS), whole.quantile(QS))


def test_memory_is_fixed_whatever_the_count():
    h = LogHistogram()
    size = h._counts.nbytes
    assert size < 400_000
    for v in _lognormal(300_000, seed=6).tolist():
        h.add(v)
        assert len(h._buf) < 65_536
    h.add_array(_lognormal(1_000_000, seed=7))
    assert h._counts.nbytes == size
    assert h.count == 1_300_000


def test_bucket_width_bound_and_range_cover_the_documented_span():
    assert LOWEST <= 1e-7 and HIGHEST >= 1e6
    assert 1.0 / SUB_BUCKETS <= 1e-3


def test_dict_round_trip_through_json():
    h = LogHistogram()
    h.add_array(_lognormal(10_000, seed=8))
    h.add(0.0)
    h.add(2e6)
    d = json.loads(json.dumps(h.to_dict()))
    back = LogHistogram.from_dict(d)
    assert back.to_dict() == h.to_dict()
    np.testing.assert_array_equal(back.quantile(QS), h.quantile(QS))
    with pytest.raises(ValueError, match="layout"):
        LogHistogram.from_dict({**d, "sub_buckets": 512})


def test_zero_and_overflow_buckets_are_counted():
    h = LogHistogram()
    h.add_array([0.0, 0.0, 0.0, 0.5, 2e6, math.inf])
    assert h.underflow == 3 and h.overflow == 2
    assert h.quantile(0.2) == 0.0
    assert h.max == math.inf and h.min == 0.0


def test_empty_histogram_gives_nan():
    h = LogHistogram()
    assert h.count == 0
    assert math.isnan(h.mean) and math.isnan(h.min) and math.isnan(h.max)
    assert math.isnan(h.quantile(0.5))
    assert LogHistogram.from_dict(h.to_dict()).count == 0


def test_bad_input_is_refused():
    h = LogHistogram()
    with pytest.raises(ValueError, match="NaN"):
        h.add_array([1.0, math.nan])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        h.quantile(1.5)
    with pytest.raises(ValueError, match="buffer_size"):
        LogHistogram(buffer_size=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-7, max_value=1e6), min_size=1, max_size=300),
       st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=5))
def test_every_quantile_is_within_one_bucket_of_numpy(values, qs):
    h = LogHistogram(buffer_size=64)
    for v in values:
        h.add(v)
    est = h.quantile(qs)
    exact = np.quantile(np.asarray(values), qs)
    assert np.all(np.abs(est - exact) <= exact / SUB_BUCKETS * (1 + 1e-12))
