"""Parametric service-time models: constant, exponential, uniform, lognormal, gamma, weibull, pareto.

Sampling uses ``numpy.random.Generator`` methods (vectorised); quantiles and
CDFs are closed forms (``scipy.special`` for the normal and incomplete-gamma
functions), checked against ``scipy.stats`` in the tests.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator, Field, model_validator
from scipy import special

from meshsim.latency._base import (
    Duration,
    FiniteFloat,
    FloatArray,
    LatencyModel,
    PositiveDuration,
    PositiveFloat,
    _Derived,
    fmt_duration,
    fmt_number,
)
from meshsim.units import RATE_HELP, format_rate, parse_rate

__all__ = [
    "Constant",
    "Exponential",
    "Uniform",
    "LogNormal",
    "Gamma",
    "Weibull",
    "Pareto",
    "PERCENTILE_LEVELS",
]

#: lognormal percentile fields and their probability levels
PERCENTILE_LEVELS: dict[str, float] = {
    "p50": 0.50,
    "p75": 0.75,
    "p90": 0.90,
    "p95": 0.95,
    "p99": 0.99,
    "p999": 0.999,
}


def _positive_rate(value: object) -> float:
    rate = parse_rate(value)
    if rate <= 0.0:
        raise ValueError(f"{value!r} must be a positive rate (> 0): {RATE_HELP}")
    return rate


PositiveRate = Annotated[float, BeforeValidator(_positive_rate)]


def _nonneg(x: FloatArray) -> FloatArray:
    """``x`` with negatives (and NaN) mapped to 0: the argument of a CDF of a non-negative variable."""
    return np.where(x > 0.0, x, 0.0)


class Constant(LatencyModel):
    """Every request takes exactly ``value``.

    Parameters
    ----------
    value
        Duration (``"20ms"``, or seconds), >= 0.

    Examples
    --------
    >>> Constant(value="20ms").quantile(0.99)
    0.02
    """

    type: Literal["constant"] = "constant"
    value: Duration

    def mean(self) -> float:
        return self.value

    def var(self) -> float:
        return 0.0

    def _ppf(self, q: FloatArray) -> FloatArray:
        return np.full_like(q, self.value)

    def _cdf(self, x: FloatArray) -> FloatArray:
        return (x >= self.value).astype(np.float64)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return np.full(size, self.value, dtype=np.float64)

    def _describe_args(self) -> list[str]:
        return [f"value={fmt_duration(self.value)}"]


class Exponential(LatencyModel):
    """Memoryless service time (M/M/1's "M"), given by its ``mean`` or its ``rate``.

    Parameters
    ----------
    mean
        Mean duration, > 0. Exactly one of ``mean`` and ``rate``.
    rate
        Completions per second (``"50/s"`` or a number), > 0; ``mean = 1/rate``.

    Examples
    --------
    >>> Exponential(mean="20ms").quantile(0.5)  # ln 2 * 20ms
    0.013862943611198907
    >>> Exponential(rate="50/s").mean()
    0.02
    """

    type: Literal["exponential"] = "exponential"
    mean_: PositiveDuration | None = Field(None, alias="mean")
    rate: PositiveRate | None = None

    @model_validator(mode="after")
    def _resolve(self) -> Exponential:
        if (self.mean_ is None) == (self.rate is None):
            raise ValueError("exponential takes exactly one of `mean` (a duration) and `rate` (per second)")
        self._derived = _Derived(mean=self.mean_ if self.mean_ is not None else 1.0 / self.rate)  # type: ignore[operator]
        return self

    def mean(self) -> float:
        return self._derived.mean

    def var(self) -> float:
        return self._derived.mean**2

    def _ppf(self, q: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return -self._derived.mean * np.log1p(-q) + 0.0  # + 0.0: no -0.0 at q = 0

    def _cdf(self, x: FloatArray) -> FloatArray:
        return -np.expm1(-_nonneg(x) / self._derived.mean)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.exponential(self._derived.mean, size)

    def _describe_args(self) -> list[str]:
        if self.rate is not None:
            return [f"rate={format_rate(self.rate)}"]
        return [f"mean={fmt_duration(self._derived.mean)}"]


class Uniform(LatencyModel):
    """Uniform on ``[low, high]``.

    Parameters
    ----------
    low, high
        Durations with ``0 <= low <= high`` (``low == high`` is a constant).
    """

    type: Literal["uniform"] = "uniform"
    low: Duration
    high: Duration

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        if self.low > self.high:
            raise ValueError(
                f"uniform needs low <= high; got low={fmt_duration(self.low)}, high={fmt_duration(self.high)}"
            )
        return self

    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    def var(self) -> float:
        return (self.high - self.low) ** 2 / 12.0

    def _ppf(self, q: FloatArray) -> FloatArray:
        return self.low + q * (self.high - self.low)

    def _cdf(self, x: FloatArray) -> FloatArray:
        width = self.high - self.low
        if width == 0.0:
            return (x >= self.low).astype(np.float64)
        return np.clip((x - self.low) / width, 0.0, 1.0)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.uniform(self.low, self.high, size)

    def _describe_args(self) -> list[str]:
        return [f"low={fmt_duration(self.low)}", f"high={fmt_duration(self.high)}"]


class LogNormal(LatencyModel):
    """Lognormal service time: ``ln X ~ Normal(mu, sigma)``; the usual shape of measured latency.

    Give exactly one parameterisation:

    * ``mu`` and ``sigma``: mean and standard deviation of ``ln X`` (``X`` in seconds);
    * ``mean`` and ``stdev``: of ``X`` itself (durations);
    * any two percentiles among ``p50, p75, p90, p95, p99, p999`` (durations),
      which the distribution then passes through exactly.

    Parameters
    ----------
    mu
        Log-scale location, ``ln`` of the median in seconds.
    sigma
        Log-scale spread, > 0.
    mean, stdev
        Durations, both > 0.
    p50, p75, p90, p95, p99, p999
        Durations > 0, increasing with the level.

    Attributes
    ----------
    mu, sigma : float
        The resolved log-scale parameters, whichever form was given.

    Notes
    -----
    From two percentiles ``q_a < q_b`` at levels with standard-normal quantiles
    ``z_a < z_b``: ``sigma = (ln q_b - ln q_a) / (z_b - z_a)``, ``mu = ln q_a - sigma z_a``.
    From moments: ``sigma^2 = ln(1 + stdev^2/mean^2)``, ``mu = ln mean - sigma^2/2``.

    Examples
    --------
    >>> m = LogNormal(p50="20ms", p99="200ms")
    >>> m
    lognormal(p50=20ms, p99=200ms)
    >>> round(m.quantile(0.99), 12)
    0.2
    >>> round(m.sigma, 4)
    0.9898
    """

    type: Literal["lognormal"] = "lognormal"
    mu_: FiniteFloat | None = Field(None, alias="mu")
    sigma_: PositiveFloat | None = Field(None, alias="sigma")
    mean_: PositiveDuration | None = Field(None, alias="mean")
    stdev: PositiveDuration | None = None
    p50: PositiveDuration | None = None
    p75: PositiveDuration | None = None
    p90: PositiveDuration | None = None
    p95: PositiveDuration | None = None
    p99: PositiveDuration | None = None
    p999: PositiveDuration | None = None

    @model_validator(mode="after")
    def _fit(self) -> LogNormal:
        pct = {name: getattr(self, name) for name in PERCENTILE_LEVELS if getattr(self, name) is not None}
        forms = {
            "(mu, sigma)": [n for n, v in (("mu", self.mu_), ("sigma", self.sigma_)) if v is not None],
            "(mean, stdev)": [n for n, v in (("mean", self.mean_), ("stdev", self.stdev)) if v is not None],
            "two percentiles": list(pct),
        }
        used = [form for form, names in forms.items() if names]
        allowed = "(mu, sigma), (mean, stdev) or two of p50, p75, p90, p95, p99, p999"
        if len(used) != 1:
            got = ", ".join(n for names in forms.values() for n in names) or "nothing"
            raise ValueError(f"lognormal takes exactly one parameterisation: {allowed}; got {got}")
        form, names = used[0], forms[used[0]]
        if form == "(mu, sigma)":
            if len(names) != 2:
                raise ValueError("lognormal: `mu` and `sigma` must be given together")
            mu, sigma = float(self.mu_), float(self.sigma_)  # type: ignore[arg-type]
        elif form == "(mean, stdev)":
            if len(names) != 2:
                raise ValueError("lognormal: `mean` and `stdev` must be given together")
            m, s = float(self.mean_), float(self.stdev)  # type: ignore[arg-type]
            var_log = math.log1p((s / m) ** 2)
            sigma, mu = math.sqrt(var_log), math.log(m) - 0.5 * var_log
        else:
            if len(pct) != 2:
                raise ValueError(
                    f"lognormal by percentiles needs exactly two of p50, p75, p90, p95, p99, p999; "
                    f"got {len(pct)} ({', '.join(pct)})"
                )
            (na, qa), (nb, qb) = pct.items()  # field order = increasing level
            if not qa < qb:
                raise ValueError(
                    f"lognormal percentiles must increase with the level: "
                    f"{na}={fmt_duration(qa)} is not below {nb}={fmt_duration(qb)}"
                )
            za, zb = special.ndtri(PERCENTILE_LEVELS[na]), special.ndtri(PERCENTILE_LEVELS[nb])
            sigma = float((math.log(qb) - math.log(qa)) / (zb - za))
            mu = float(math.log(qa) - sigma * za)
        self._derived = _Derived(mu=mu, sigma=sigma)
        return self

    @property
    def mu(self) -> float:
        """Log-scale location (resolved from whichever parameterisation was given)."""
        return self._derived.mu

    @property
    def sigma(self) -> float:
        """Log-scale spread (resolved from whichever parameterisation was given)."""
        return self._derived.sigma

    def mean(self) -> float:
        return math.exp(self.mu + 0.5 * self.sigma**2)

    def var(self) -> float:
        s2 = self.sigma**2
        return math.expm1(s2) * math.exp(2.0 * self.mu + s2)

    def _ppf(self, q: FloatArray) -> FloatArray:
        return np.exp(self.mu + self.sigma * special.ndtri(q))

    def _cdf(self, x: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return special.ndtr((np.log(_nonneg(x)) - self.mu) / self.sigma)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.lognormal(self.mu, self.sigma, size)

    def _describe_args(self) -> list[str]:
        if self.mu_ is not None:
            return [f"mu={fmt_number(self.mu)}", f"sigma={fmt_number(self.sigma)}"]
        if self.mean_ is not None:
            return [f"mean={fmt_duration(self.mean_)}", f"stdev={fmt_duration(self.stdev)}"]  # type: ignore[arg-type]
        return [
            f"{n}={fmt_duration(getattr(self, n))}" for n in PERCENTILE_LEVELS if getattr(self, n) is not None
        ]


class Gamma(LatencyModel):
    """Gamma service time, by ``shape`` and ``scale`` or by ``mean`` and ``stdev``.

    Parameters
    ----------
    shape
        Shape ``k`` > 0 (``k = 1`` is exponential; large ``k`` is nearly constant).
    scale
        Scale ``theta`` (a duration) > 0; ``mean = k theta``.
    mean, stdev
        Durations > 0; then ``k = (mean/stdev)^2`` and ``theta = stdev^2/mean``.

    Attributes
    ----------
    shape, scale : float
        The resolved shape ``k`` and scale ``theta`` (seconds), whichever form was given.

    Examples
    --------
    >>> g = Gamma(mean="20ms", stdev="10ms")
    >>> g.shape, g.scale
    (4.0, 0.005)
    """

    type: Literal["gamma"] = "gamma"
    shape_: PositiveFloat | None = Field(None, alias="shape")
    scale_: PositiveDuration | None = Field(None, alias="scale")
    mean_: PositiveDuration | None = Field(None, alias="mean")
    stdev: PositiveDuration | None = None

    @model_validator(mode="after")
    def _resolve(self) -> Gamma:
        direct = (self.shape_ is not None, self.scale_ is not None)
        moments = (self.mean_ is not None, self.stdev is not None)
        if direct == (True, True) and moments == (False, False):
            k, theta = float(self.shape_), float(self.scale_)  # type: ignore[arg-type]
        elif moments == (True, True) and direct == (False, False):
            m, s = float(self.mean_), float(self.stdev)  # type: ignore[arg-type]
            k, theta = (m / s) ** 2, s * s / m
        else:
            given = [
                n
                for n, v in (
                    ("shape", self.shape_),
                    ("scale", self.scale_),
                    ("mean", self.mean_),
                    ("stdev", self.stdev),
                )
                if v is not None
            ]
            raise ValueError(
                "gamma takes exactly one parameterisation: (shape, scale) or (mean, stdev); "
                f"got {', '.join(given) or 'nothing'}"
            )
        self._derived = _Derived(k=k, theta=theta)
        return self

    @property
    def shape(self) -> float:
        """Resolved shape ``k``."""
        return self._derived.k

    @property
    def scale(self) -> float:
        """Resolved scale ``theta`` in seconds."""
        return self._derived.theta

    def mean(self) -> float:
        return self._derived.k * self._derived.theta

    def var(self) -> float:
        return self._derived.k * self._derived.theta**2

    def _ppf(self, q: FloatArray) -> FloatArray:
        return special.gammaincinv(self._derived.k, q) * self._derived.theta

    def _cdf(self, x: FloatArray) -> FloatArray:
        return special.gammainc(self._derived.k, _nonneg(x) / self._derived.theta)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.gamma(self._derived.k, self._derived.theta, size)

    def _describe_args(self) -> list[str]:
        if self.shape_ is not None:
            return [f"shape={fmt_number(self.shape)}", f"scale={fmt_duration(self.scale)}"]
        return [f"mean={fmt_duration(self.mean_)}", f"stdev={fmt_duration(self.stdev)}"]  # type: ignore[arg-type]


class Weibull(LatencyModel):
    """Weibull service time: ``P(X > x) = exp(-(x/scale)^shape)``.

    Parameters
    ----------
    shape
        Shape ``k`` > 0 (``k < 1`` heavy-ish tail, ``k = 1`` exponential).
    scale
        Scale ``lambda`` (a duration) > 0.
    """

    type: Literal["weibull"] = "weibull"
    shape: PositiveFloat
    scale: PositiveDuration

    def mean(self) -> float:
        return self.scale * float(special.gamma(1.0 + 1.0 / self.shape))

    def var(self) -> float:
        g1 = float(special.gamma(1.0 + 1.0 / self.shape))
        g2 = float(special.gamma(1.0 + 2.0 / self.shape))
        return self.scale**2 * (g2 - g1 * g1)

    def _ppf(self, q: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return self.scale * (-np.log1p(-q)) ** (1.0 / self.shape)

    def _cdf(self, x: FloatArray) -> FloatArray:
        return -np.expm1(-((_nonneg(x) / self.scale) ** self.shape))

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return self.scale * rng.weibull(self.shape, size)

    def _describe_args(self) -> list[str]:
        return [f"shape={fmt_number(self.shape)}", f"scale={fmt_duration(self.scale)}"]


class Pareto(LatencyModel):
    """Pareto (type I) service time: ``P(X > x) = (scale/x)^shape`` for ``x >= scale``.

    Parameters
    ----------
    scale
        Minimum value ``x_m`` (a duration) > 0.
    shape
        Tail index ``alpha`` > 0. The mean is infinite for ``alpha <= 1`` and
        the variance for ``alpha <= 2`` (both returned as ``math.inf``).

    Examples
    --------
    >>> Pareto(scale="10ms", shape=3).mean()
    0.015
    >>> Pareto(scale="10ms", shape=1).mean()
    inf
    """

    type: Literal["pareto"] = "pareto"
    scale: PositiveDuration
    shape: PositiveFloat

    def mean(self) -> float:
        a = self.shape
        return math.inf if a <= 1.0 else a * self.scale / (a - 1.0)

    def var(self) -> float:
        a = self.shape
        return math.inf if a <= 2.0 else self.scale**2 * a / ((a - 1.0) ** 2 * (a - 2.0))

    def _ppf(self, q: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return self.scale * (1.0 - q) ** (-1.0 / self.shape)

    def _cdf(self, x: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return np.where(
                x >= self.scale, -np.expm1(self.shape * np.log(self.scale / np.maximum(x, self.scale))), 0.0
            )

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        # Generator.pareto draws Lomax (Pareto II); 1 + Lomax scaled by x_m is Pareto I.
        return self.scale * (1.0 + rng.pareto(self.shape, size))

    def _describe_args(self) -> list[str]:
        return [f"scale={fmt_duration(self.scale)}", f"shape={fmt_number(self.shape)}"]
