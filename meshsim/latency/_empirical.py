"""Data-driven service-time models: raw samples (``empirical``) and Prometheus buckets (``histogram``)."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from meshsim.latency._base import Duration, FloatArray, LatencyModel, _Derived, fmt_duration, fmt_number
from meshsim.units import DURATION_HELP, parse_duration

__all__ = ["Empirical", "Histogram", "HistogramBucket"]


class Empirical(LatencyModel):
    """Resample measured service times (with replacement).

    Parameters
    ----------
    samples
        Durations (``"12ms"`` or seconds), at least one; order does not matter.

    Notes
    -----
    The distribution is the empirical one: ``cdf(x)`` is the fraction of
    samples ``<= x`` and ``quantile(q)`` its inverse, the smallest sample ``x``
    with ``cdf(x) >= q`` (numpy's ``method="inverted_cdf"``). No interpolation
    happens, so the quantiles are exactly those of an infinite stream of draws.

    Examples
    --------
    >>> m = Empirical(samples=["10ms", "20ms", "30ms", "40ms"])
    >>> m.quantile(0.5), m.quantile(0.51), m.mean()
    (0.02, 0.03, 0.025)
    """

    type: Literal["empirical"] = "empirical"
    samples: tuple[Duration, ...]

    @model_validator(mode="after")
    def _sort(self) -> Empirical:
        if not self.samples:
            raise ValueError("empirical needs at least one sample")
        self._derived = _Derived(xs=np.sort(np.asarray(self.samples, dtype=np.float64)))
        return self

    def mean(self) -> float:
        return float(np.mean(self._derived.xs))

    def var(self) -> float:
        return float(np.var(self._derived.xs))

    def _ppf(self, q: FloatArray) -> FloatArray:
        xs = self._derived.xs
        n = xs.size
        k = np.ceil(q * n)
        # smallest k with k/n >= q, computed as cdf() computes it (guards against rounding in q*n)
        k = np.where((k - 1.0) / n >= q, k - 1.0, k)
        k = np.where(k / n < q, k + 1.0, k)
        return xs[np.clip(k, 1, n).astype(np.intp) - 1]

    def _cdf(self, x: FloatArray) -> FloatArray:
        xs = self._derived.xs
        return np.searchsorted(xs, x, side="right") / xs.size

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        xs = self._derived.xs
        return xs[rng.integers(0, xs.size, size)]

    def _describe_args(self) -> list[str]:
        p50, p99 = self._ppf(np.array([0.5, 0.99]))
        return [f"n={len(self.samples)}", f"p50={fmt_duration(p50)}", f"p99={fmt_duration(p99)}"]


_INF_WORDS = frozenset({"+inf", "inf", "+infinity", "infinity"})


def _parse_le(value: object) -> float:
    if isinstance(value, str) and value.strip().lower() in _INF_WORDS:
        return math.inf
    if isinstance(value, float) and value == math.inf:
        return math.inf
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f'{value!r} is not a bucket bound: expected {DURATION_HELP}, or "+Inf"') from None


class HistogramBucket(BaseModel):
    """One Prometheus bucket: observations ``<= le``.

    Parameters
    ----------
    le
        Upper bound: a duration, or ``"+Inf"`` (last bucket only).
    count
        Number of observations (cumulative or per bucket, see ``Histogram.cumulative``), >= 0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    le: Annotated[float, BeforeValidator(_parse_le)]
    count: Annotated[float, Field(ge=0, allow_inf_nan=False)]

    def __repr__(self) -> str:
        return f"{{le: {fmt_duration(self.le)}, count: {fmt_number(self.count)}}}"


class Histogram(LatencyModel):
    """Service times from a Prometheus-style bucketed histogram.

    Parameters
    ----------
    buckets
        ``[{le: 10ms, count: 120}, ..., {le: "+Inf", count: 1000}]``: upper bounds
        strictly increasing; a ``+Inf`` bucket is optional and must come last.
    cumulative
        ``True`` (default, as Prometheus exports them): each count includes all
        lower buckets and counts never decrease. ``False``: counts are per bucket.

    Notes
    -----
    The distribution is the one Prometheus' ``histogram_quantile`` assumes:
    observations spread uniformly inside each bucket, between the previous
    bound (0 for the first bucket) and ``le``. With cumulative counts ``c_i``,
    total ``N`` and ``rank = q N``, ``quantile(q)`` takes the first bucket ``b``
    with ``c_b >= rank`` and returns
    ``le_{b-1} + (le_b - le_{b-1}) (rank - c_{b-1}) / (c_b - c_{b-1})``,
    exactly Prometheus' ``bucketQuantile``. ``sample`` is ``quantile`` applied to
    uniform draws, so draws and quantiles agree by construction.

    Observations in the ``+Inf`` bucket have no upper bound to interpolate to.
    As in Prometheus, their quantile is the highest finite bound, and here they
    are *drawn* as that value too: the +Inf mass becomes a point mass at the
    last finite ``le``, which understates that tail. Add a finite bucket above
    your slowest observation to avoid this.

    Unlike Prometheus, a ``+Inf`` bucket is not required (without one, all mass is
    finite); negative bounds are refused (service times are >= 0).

    References
    ----------
    Prometheus ``promql/quantile.go`` (``BucketQuantile``) and the
    ``histogram_quantile`` documentation.

    Examples
    --------
    >>> h = Histogram(buckets=[{"le": "100ms", "count": 50}, {"le": "200ms", "count": 90},
    ...                        {"le": "+Inf", "count": 100}])
    >>> round(h.quantile(0.7), 12)  # rank 70 is 20 of the 40 in (100ms, 200ms]
    0.15
    >>> h.quantile(0.95)  # in +Inf: the last finite bound
    0.2
    """

    type: Literal["histogram"] = "histogram"
    buckets: tuple[HistogramBucket, ...]
    cumulative: bool = True

    @model_validator(mode="after")
    def _build(self) -> Histogram:
        if not self.buckets:
            raise ValueError("histogram needs at least one bucket")
        les = [b.le for b in self.buckets]
        counts = [b.count for b in self.buckets]
        if math.inf in les[:-1]:
            raise ValueError('only the last bucket may have le="+Inf"')
        n = len(les) - (1 if les[-1] == math.inf else 0)
        if n == 0:
            raise ValueError("histogram needs at least one bucket with a finite `le` besides +Inf")
        for prev, cur in pairwise(les):
            if not cur > prev:
                raise ValueError(
                    f"bucket bounds must strictly increase: le={fmt_duration(cur)} follows le={fmt_duration(prev)}"
                )
        if self.cumulative:
            for (lp, cp), (lc, cc) in pairwise(zip(les, counts, strict=True)):
                if cc < cp:
                    raise ValueError(
                        f"cumulative counts must not decrease: le={fmt_duration(lc)} has {fmt_number(cc)} "
                        f"< {fmt_number(cp)} at le={fmt_duration(lp)}; set `cumulative: false` "
                        "if the counts are per bucket"
                    )
            cum_all = np.asarray(counts, dtype=np.float64)
        else:
            cum_all = np.cumsum(np.asarray(counts, dtype=np.float64))
        total = float(cum_all[-1])
        if total <= 0.0:
            raise ValueError("histogram has no observations (all counts are 0)")
        ub = np.asarray(les[:n], dtype=np.float64)
        cum = cum_all[:n]
        self._derived = _Derived(
            ub=ub,
            lower=np.concatenate(([0.0], ub[:-1])),
            cum=cum,
            cum_prev=np.concatenate(([0.0], cum[:-1])),
            total=total,
            inf_count=total - float(cum[-1]),
        )
        return self

    def _moment(self, k: int) -> float:
        d = self._derived
        a, b, cnt = d.lower, d.ub, d.cum - d.cum_prev
        if k == 1:
            inside = cnt * (a + b) / 2.0
        else:
            inside = cnt * (a * a + a * b + b * b) / 3.0
        return float((inside.sum() + d.inf_count * d.ub[-1] ** k) / d.total)

    def mean(self) -> float:
        return self._moment(1)

    def var(self) -> float:
        return max(self._moment(2) - self._moment(1) ** 2, 0.0)

    def _ppf(self, q: FloatArray) -> FloatArray:
        d = self._derived
        n = d.ub.size
        rank = q * d.total
        b = np.searchsorted(d.cum, rank, side="left")  # first bucket with cum >= rank (n: the +Inf bucket)
        bi = np.minimum(b, n - 1)
        start, prev = d.lower[bi], d.cum_prev[bi]
        cnt = d.cum[bi] - prev
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(cnt > 0.0, (rank - prev) / cnt, 0.0)
        return np.where(b < n, start + (d.ub[bi] - start) * frac, d.ub[-1])

    def _cdf(self, x: FloatArray) -> FloatArray:
        d = self._derived
        n = d.ub.size
        i = np.searchsorted(d.ub, x, side="right")  # number of bounds <= x
        ii = np.minimum(i, n - 1)
        start, prev = d.lower[ii], d.cum_prev[ii]
        width = d.ub[ii] - start
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(width > 0.0, np.clip((x - start) / width, 0.0, 1.0), 0.0)
        return np.where(i < n, (prev + (d.cum[ii] - prev) * frac) / d.total, 1.0)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return self._ppf(rng.random(size))

    def _describe_args(self) -> list[str]:
        les = [fmt_duration(b.le) for b in self.buckets]
        if len(les) > 6:
            les = [*les[:2], "...", *les[-2:]]
        args = [f"le=[{', '.join(les)}]", f"count={fmt_number(self._derived.total)}"]
        if not self.cumulative:
            args.append("cumulative=false")
        return args
