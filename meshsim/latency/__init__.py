"""Service-time and error models.

A service's latency is written in config as a ``LatencySpec`` (``"20ms"``,
``{p50: 20ms, p99: 200ms}``, ``{type: gamma, mean: 20ms, stdev: 5ms}``, ...)
and becomes one of the frozen models below; the engine draws from it through a
:class:`Sampler`. Errors are an :class:`ErrorModel` drawn through an
:class:`ErrorDraw`.

Every model has ``mean()``, ``var()``, ``quantile(q)``, ``cdf(x)``,
``sample(rng, size)`` and ``describe()``; all times are seconds.

Examples
--------
>>> from meshsim.latency import parse_latency, Sampler
>>> m = parse_latency({"p50": "20ms", "p99": "200ms"})
>>> m
lognormal(p50=20ms, p99=200ms)
>>> s = Sampler(m, rng=1)
>>> 0 < s() < 10
True
"""

from meshsim.latency._base import Duration, LatencyModel, PositiveDuration
from meshsim.latency._empirical import Empirical, Histogram, HistogramBucket
from meshsim.latency._errors import (
    DEFAULT_ERROR_STATUS,
    ErrorDraw,
    ErrorModel,
    ErrorSpec,
    parse_errors,
)
from meshsim.latency._models import (
    PERCENTILE_LEVELS,
    Constant,
    Exponential,
    Gamma,
    LogNormal,
    Pareto,
    Uniform,
    Weibull,
)
from meshsim.latency._sampler import DEFAULT_BLOCK, Sampler
from meshsim.latency._spec import LATENCY_TYPES, LatencySpec, Mixture, MixtureComponent, parse_latency

__all__ = [
    # models
    "LatencyModel",
    "Constant",
    "Exponential",
    "Uniform",
    "LogNormal",
    "Gamma",
    "Weibull",
    "Pareto",
    "Empirical",
    "Histogram",
    "HistogramBucket",
    "Mixture",
    "MixtureComponent",
    # config field types and parsers
    "LatencySpec",
    "parse_latency",
    "LATENCY_TYPES",
    "PERCENTILE_LEVELS",
    "Duration",
    "PositiveDuration",
    # errors
    "ErrorModel",
    "ErrorSpec",
    "ErrorDraw",
    "parse_errors",
    "DEFAULT_ERROR_STATUS",
    # runtime
    "Sampler",
    "DEFAULT_BLOCK",
]

for _obj in (
    LatencyModel,
    Constant,
    Exponential,
    Uniform,
    LogNormal,
    Gamma,
    Weibull,
    Pareto,
    Empirical,
    Histogram,
    HistogramBucket,
    Mixture,
    MixtureComponent,
    ErrorModel,
    ErrorDraw,
    Sampler,
    parse_latency,
    parse_errors,
):
    _obj.__module__ = "meshsim.latency"
del _obj
