"""Shared pieces of the latency models: duration field types and the base class.

Every model is a frozen pydantic v2 model whose fields are the user's own
spelling (``p50``/``p99``, ``mean``/``stdev``, ...). Values derived from the
fields (fitted parameters, sorted sample arrays, bucket tables) live in one
private ``_Derived`` holder that never takes part in equality, hashing or
serialisation: it is a pure function of the fields.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError

from meshsim.units import DURATION_HELP, format_duration, parse_duration

__all__ = [
    "Duration",
    "PositiveDuration",
    "PositiveFloat",
    "LatencyModel",
    "as_generator",
]

FloatArray = npt.NDArray[np.float64]


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0.0:
        raise ValueError(f"{value!r} must be a positive duration (> 0): {DURATION_HELP}")
    return seconds


#: Non-negative seconds; accepts ``"250ms"``, ``"1.5s"`` or a number of seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]
#: Strictly positive seconds (for parameters whose log or inverse is taken).
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
#: A finite number > 0 (shape parameters, weights, log-scale sigma).
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: A finite real number (log-scale mu).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Normalise ``rng`` (a Generator, a seed or ``None``) to a ``numpy.random.Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None; got {type(rng).__name__}")


def fmt_duration(seconds: float) -> str:
    """``0.02 -> '20ms'``; infinity as ``'+Inf'``."""
    return "+Inf" if math.isinf(seconds) else format_duration(seconds)


def fmt_number(value: float) -> str:
    """Compact number: ``0.98 -> '0.98'``, ``1.0 -> '1'``."""
    return f"{value:.6g}"


class _Derived:
    """Holder for values computed from a model's fields (never compared, never hashed)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only reached for missing names; types the rest as Any
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:  # derived from the fields: equal fields, equal values
        return isinstance(other, _Derived)

    __hash__ = None  # type: ignore[assignment]


class LatencyModel(BaseModel, ABC):
    """Base class of every service-time model (all times in seconds).

    Subclasses are frozen pydantic models discriminated by their ``type`` field.
    They share one interface: :meth:`mean`, :meth:`var`, :meth:`quantile`,
    :meth:`cdf`, :meth:`sample` and :meth:`describe`.

    Notes
    -----
    ``quantile`` is the generalised inverse of ``cdf``:
    ``quantile(q) = inf{x : cdf(x) >= q}``; ``sample`` draws from that same
    distribution, so the two always agree (for the discrete and piecewise models
    included). ``quantile`` and ``cdf`` take a scalar (and return a ``float``)
    or an array (and return an array of the same shape).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True)

    #: the discriminator; each subclass narrows it to ``Literal["<its name>"]``
    type: str

    _derived: _Derived = PrivateAttr(default_factory=_Derived)

    # ---- interface -------------------------------------------------------------------------------
    @abstractmethod
    def mean(self) -> float:
        """Expected value in seconds (``math.inf`` when it does not exist)."""

    @abstractmethod
    def var(self) -> float:
        """Variance in seconds squared (``math.inf`` when it does not exist)."""

    def quantile(self, q: npt.ArrayLike) -> float | FloatArray:
        """Inverse CDF: the smallest ``x`` with ``cdf(x) >= q``.

        Parameters
        ----------
        q
            Probability level(s) in [0, 1], scalar or array.

        Returns
        -------
        float or numpy.ndarray
            Seconds; a ``float`` for a scalar ``q``, else an array of ``q``'s shape.

        Raises
        ------
        ValueError
            If any ``q`` is outside [0, 1] or NaN.
        """
        qa = np.asarray(q, dtype=np.float64)
        if not np.all((qa >= 0.0) & (qa <= 1.0)):
            raise ValueError(f"q must be a probability in [0, 1]; got {q!r}")
        out = np.asarray(self._ppf(qa), dtype=np.float64)
        return float(out) if out.ndim == 0 else out

    def cdf(self, x: npt.ArrayLike) -> float | FloatArray:
        """Probability that a draw is ``<= x`` (``x`` in seconds, scalar or array)."""
        xa = np.asarray(x, dtype=np.float64)
        out = np.asarray(self._cdf(xa), dtype=np.float64)
        return float(out) if out.ndim == 0 else out

    def sample(self, rng: np.random.Generator | int | None, size: int) -> FloatArray:
        """Draw ``size`` independent service times (seconds, float64, all >= 0).

        Parameters
        ----------
        rng
            The random stream (a ``numpy.random.Generator``; an int seed or ``None``
            is turned into one with ``numpy.random.default_rng``).
        size
            Number of draws, >= 0.

        Returns
        -------
        numpy.ndarray
            Shape ``(size,)``, dtype float64. The values depend only on the
            generator's state (and ``size``).
        """
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"size must be an int >= 0; got {size!r}")
        return self._sample(as_generator(rng), int(size))

    def describe(self) -> str:
        """Readable one-line form, e.g. ``'lognormal(p50=20ms, p99=200ms)'``."""
        return f"{self.type}({', '.join(self._describe_args())})"

    def __repr__(self) -> str:
        return self.describe()

    __str__ = __repr__

    # ---- for subclasses --------------------------------------------------------------------------
    @abstractmethod
    def _ppf(self, q: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _cdf(self, x: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _sample(self, rng: np.random.Generator, size: int) -> FloatArray: ...

    @abstractmethod
    def _describe_args(self) -> list[str]: ...


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_error_from(
    exc: ValidationError, *, path: str, source: str = "", drop: frozenset[str] = frozenset()
):
    """Turn a pydantic ``ValidationError`` into one ``ConfigError`` line per problem.

    Parameters
    ----------
    exc
        The pydantic error.
    path
        Dotted path of the validated value (``"services.reviews.latency"``), prefixed to each location.
    source
        File name, when known.
    drop
        Location segments to leave out (the tags pydantic adds for discriminated unions).
    """
    from meshsim._exceptions import ConfigError

    lines, first = [], ""
    for err in exc.errors():
        loc = ".".join([path, *(str(p) for p in err["loc"] if not (isinstance(p, str) and p in drop))]).strip(
            "."
        )
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif "input" in err:
            msg = f"{msg}; got {_short_repr(err['input'])}"
        lines.append(f"{loc}: {msg}" if loc else msg)
        first = first or loc
    return ConfigError("; ".join(lines), path=first, source=source)
