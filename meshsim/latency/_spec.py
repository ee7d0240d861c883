"""Mixtures, the ``LatencySpec`` field type and ``parse_latency``.

``LatencySpec`` is what other modules put in their pydantic models
(``latency: LatencySpec``): a union of every model, discriminated by ``type``,
with shorthands applied first:

* a duration (``"20ms"``, ``0.02``) is ``constant``;
* a mapping without ``type`` but with percentiles (``p50``, ``p99``, ...) is ``lognormal``;
* any other mapping without ``type`` is refused and asked for one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from scipy.optimize import brentq

from meshsim.latency._base import (
    FloatArray,
    LatencyModel,
    PositiveFloat,
    _Derived,
    config_error_from,
)
from meshsim.latency._empirical import Empirical, Histogram
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
from meshsim.units import DURATION_HELP, format_fraction, parse_duration

__all__ = ["LATENCY_TYPES", "LatencySpec", "Mixture", "MixtureComponent", "parse_latency"]

#: every value of the ``type`` discriminator, in documentation order
LATENCY_TYPES: tuple[str, ...] = (
    "constant",
    "exponential",
    "uniform",
    "lognormal",
    "gamma",
    "weibull",
    "pareto",
    "empirical",
    "histogram",
    "mixture",
)
_ALLOWED = ", ".join(LATENCY_TYPES)
# brentq tolerances for mixture quantiles: |error| <= _XTOL + _RTOL * x
_XTOL, _RTOL = 1e-15, 1e-12


def _latency_shorthand(value: Any) -> Any:
    """Expand shorthands and refuse what cannot be a latency, before the tagged union runs."""
    if isinstance(value, LatencyModel):
        return value
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return {"type": "constant", "value": parse_duration(value)}
        except ValueError:
            raise ValueError(
                f"{value!r} is not a latency: give {DURATION_HELP} for a constant, "
                "or a model such as {type: lognormal, p50: 20ms, p99: 200ms}"
            ) from None
    if isinstance(value, Mapping):
        if "type" not in value:
            keys = set(value)
            if keys & PERCENTILE_LEVELS.keys():
                return {"type": "lognormal", **value}
            if "mean" in keys:
                raise ValueError(
                    f"`mean` alone does not say which distribution; add a `type` (one of {_ALLOWED}), "
                    "e.g. {type: exponential, mean: 20ms}"
                )
            raise ValueError(
                f"a latency model needs a `type`, one of {_ALLOWED} "
                "(or percentiles such as {p50: 20ms, p99: 200ms} for a lognormal)"
            )
        kind = value["type"]
        if not isinstance(kind, str) or kind not in LATENCY_TYPES:
            raise ValueError(f"unknown latency type {kind!r}; allowed types: {_ALLOWED}")
        return value
    raise ValueError(
        f"expected a latency: a duration such as 20ms, or a mapping with a `type` ({_ALLOWED}); "
        f"got {type(value).__name__}"
    )


class MixtureComponent(BaseModel):
    """One component of a :class:`Mixture`: a weight and a model.

    Written either as ``{weight: 0.98, model: {type: lognormal, p50: 20ms, p99: 200ms}}``
    or inline as ``{weight: 0.98, type: lognormal, p50: 20ms, p99: 200ms}``.

    Parameters
    ----------
    weight
        Relative weight > 0 (weights are normalised by their sum).
    model
        Any latency model (``LatencySpec``), shorthands included.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight: PositiveFloat
    model: LatencySpec

    @model_validator(mode="before")
    @classmethod
    def _inline(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "model" not in data and "weight" in data:
            return {"weight": data["weight"], "model": {k: v for k, v in data.items() if k != "weight"}}
        return data

    def __repr__(self) -> str:
        return f"{{weight: {self.weight:g}, model: {self.model!r}}}"


class Mixture(LatencyModel):
    """A random choice among models: with probability ``w_i`` (normalised), draw from model ``i``.

    Typical use: a fast path plus a slow tail, ``98%`` lognormal and ``2%`` a one-second stall.

    Parameters
    ----------
    components
        At least one :class:`MixtureComponent` (``{weight, model}`` or inline ``{weight, type, ...}``).

    Notes
    -----
    ``mean`` is the weighted mean; ``cdf`` the weighted CDF. ``quantile`` inverts
    that CDF numerically (``scipy.optimize.brentq``, relative tolerance 1e-12)
    inside the bracket ``[min_i Q_i(q), max_i Q_i(q)]``, which always holds the
    mixture quantile; the result ``x`` satisfies ``cdf(x) >= q`` and is within
    ``1e-15 + 1e-12 x`` of the exact quantile (also at jumps of the CDF). Sampling picks each draw's component from one uniform,
    then draws all of a component's values in one vectorised call.

    Examples
    --------
    >>> m = Mixture(components=[{"weight": 0.9, "type": "constant", "value": "10ms"},
    ...                         {"weight": 0.1, "model": "1s"}])
    >>> m
    mixture(90%: constant(value=10ms), 10%: constant(value=1s))
    >>> round(m.mean(), 9), round(m.quantile(0.5), 9), round(m.quantile(0.95), 9)
    (0.109, 0.01, 1.0)
    """

    type: Literal["mixture"] = "mixture"
    components: tuple[MixtureComponent, ...]

    @model_validator(mode="after")
    def _normalise(self) -> Mixture:
        if not self.components:
            raise ValueError("mixture needs at least one component")
        w = np.asarray([c.weight for c in self.components], dtype=np.float64)
        w = w / w.sum()
        cum = np.cumsum(w)
        cum[-1] = 1.0
        self._derived = _Derived(w=w, cum=cum, models=tuple(c.model for c in self.components))
        return self

    @property
    def weights(self) -> tuple[float, ...]:
        """Normalised weights (summing to 1), in component order."""
        return tuple(float(x) for x in self._derived.w)

    @property
    def models(self) -> tuple[LatencyModel, ...]:
        """The component models, in order."""
        return self._derived.models

    def mean(self) -> float:
        return float(sum(w * m.mean() for w, m in zip(self._derived.w, self.models, strict=True)))

    def var(self) -> float:
        means = [m.mean() for m in self.models]
        second = sum(
            w * (m.var() + mu * mu) for w, m, mu in zip(self._derived.w, self.models, means, strict=True)
        )
        mean = self.mean()
        return float(second - mean * mean) if np.isfinite(second) else float("inf")

    def _cdf(self, x: FloatArray) -> FloatArray:
        out = np.zeros_like(x)
        for w, m in zip(self._derived.w, self.models, strict=True):
            out += w * m._cdf(x)
        return out

    def _ppf_one(self, q: float) -> float:
        qs = [float(m._ppf(np.asarray(q))) for m in self.models]
        lo, hi = min(qs), max(qs)
        if q <= 0.0:
            return lo
        if q >= 1.0 or lo == hi:
            return hi

        def excess(x: float) -> float:
            return float(self._cdf(np.asarray(x))) - q

        if excess(lo) >= 0.0:
            return lo
        if excess(hi) <= 0.0:  # == 0, or < 0 by rounding in a component's cdf(quantile(q))
            return hi
        x = float(brentq(excess, lo, hi, xtol=_XTOL, rtol=_RTOL))
        if excess(x) < 0.0:
            # Just below a jump of the CDF (an atom, e.g. a constant component): the root lies
            # within brentq's tolerance above x; step over it so that cdf(result) >= q holds.
            x = min(hi, x + 2.0 * (_XTOL + _RTOL * abs(x)))
            if excess(x) < 0.0:
                x = hi
        return x

    def _ppf(self, q: FloatArray) -> FloatArray:
        flat = [self._ppf_one(float(v)) for v in q.ravel()]
        return np.asarray(flat, dtype=np.float64).reshape(q.shape)

    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        models = self.models
        if len(models) == 1:
            return models[0]._sample(rng, size)
        pick = np.searchsorted(self._derived.cum, rng.random(size), side="right")
        np.minimum(pick, len(models) - 1, out=pick)
        out = np.empty(size, dtype=np.float64)
        for i, m in enumerate(models):
            mask = pick == i
            count = int(np.count_nonzero(mask))
            if count:
                out[mask] = m._sample(rng, count)
        return out

    def _describe_args(self) -> list[str]:
        return [
            f"{format_fraction(w)}: {m.describe()}" for w, m in zip(self._derived.w, self.models, strict=True)
        ]


#: Pydantic field type for "a latency model": use ``latency: LatencySpec`` in config models.
LatencySpec = Annotated[
    Constant | Exponential | Uniform | LogNormal | Gamma | Weibull | Pareto | Empirical | Histogram | Mixture,
    Discriminator("type"),
    BeforeValidator(_latency_shorthand),
]

MixtureComponent.model_rebuild()
Mixture.model_rebuild()

_ADAPTER: TypeAdapter[LatencyModel] = TypeAdapter(LatencySpec)
_TAGS = frozenset(LATENCY_TYPES)


def parse_latency(obj: Any, *, path: str = "latency", source: str = "") -> LatencyModel:
    """Build a latency model from config data (mapping, duration or model).

    Parameters
    ----------
    obj
        What a user wrote: ``"20ms"``, ``{"p50": "20ms", "p99": "200ms"}``,
        ``{"type": "gamma", "mean": "20ms", "stdev": "5ms"}``, ... or a model (returned as is).
    path
        Field path used in error messages.
    source
        File name used in error messages, when known.

    Returns
    -------
    LatencyModel

    Raises
    ------
    meshsim.ConfigError
        With the field path, the offending value and what is allowed.

    Examples
    --------
    >>> parse_latency({"p50": "20ms", "p99": "200ms"})
    lognormal(p50=20ms, p99=200ms)
    >>> parse_latency("5ms")
    constant(value=5ms)
    """
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise config_error_from(exc, path=path, source=source, drop=_TAGS) from exc
