"""Error models: what fraction of requests a service answers with an error status, and how spaced.

``ErrorModel`` is the config form (``errors: 0.5%`` or
``errors: {rate: 0.5%, status: 503, spacing: even}``); ``ErrorDraw`` is its
runtime form, one cheap call per request.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from meshsim.latency._base import as_generator, config_error_from
from meshsim.units import FRACTION_HELP, format_fraction, parse_fraction

__all__ = [
    "ErrorModel",
    "ErrorSpec",
    "ErrorDraw",
    "parse_errors",
    "DEFAULT_ERROR_STATUS",
    "EVEN_MAX_DENOMINATOR",
]

#: status returned for an injected error unless the model says otherwise
DEFAULT_ERROR_STATUS = 500
#: "even" spacing uses the rate as the nearest fraction p/q with q at most this
EVEN_MAX_DENOMINATOR = 1_000_000_000
_CYCLE_MAX_PERIOD = 1 << 16


def _status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, str)):
        raise ValueError(f"{value!r} is not an HTTP error status: expected an int in 400..599")
    try:
        code = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an HTTP error status: expected an int in 400..599") from None
    if not 400 <= code <= 599:
        raise ValueError(f"{value!r} is not an HTTP error status: expected an int in 400..599")
    return code


class ErrorModel(BaseModel):
    """How often a service fails a request, with which status, and how the failures are spaced.

    Parameters
    ----------
    rate
        Fraction of requests that fail: ``"0.5%"`` or ``0.005``, in [0, 1].
    status
        HTTP status of a failure, 400..599. Defaults to 500.
    spacing
        ``"random"`` (default): each request fails independently with probability
        ``rate``. ``"even"``: deterministic, as isotope does it: request ``n``
        (counting from 1) fails exactly when ``floor(n * rate)`` increases, so
        after ``n`` requests exactly ``floor(n * rate)`` have failed (one failure
        every ``1/rate`` requests). The simulator keeps one such counter per
        replica, as each isotope process keeps its own.

    Notes
    -----
    For ``"even"`` the rate is taken as the nearest fraction ``p/q`` with
    ``q <= 10**9`` (``Fraction.limit_denominator``), so ``0.29`` means exactly 29
    failures per 100 requests, with no floating-point drift.

    Examples
    --------
    >>> ErrorModel(rate="0.5%")
    errors(rate=0.5%, status=500)
    >>> parse_errors("1%").rate
    0.01
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: Annotated[float, BeforeValidator(parse_fraction)]
    status: Annotated[int, BeforeValidator(_status)] = DEFAULT_ERROR_STATUS
    spacing: Literal["random", "even"] = "random"

    def describe(self) -> str:
        """Readable one-line form, e.g. ``'errors(rate=0.5%, status=503, spacing=even)'``."""
        args = [f"rate={format_fraction(self.rate)}", f"status={self.status}"]
        if self.spacing != "random":
            args.append(f"spacing={self.spacing}")
        return f"errors({', '.join(args)})"

    def __repr__(self) -> str:
        return self.describe()

    __str__ = __repr__


def _error_shorthand(value: Any) -> Any:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return {"rate": parse_fraction(value)}
        except ValueError:
            raise ValueError(
                f"{value!r} is not an error model: give {FRACTION_HELP}, "
                "or a mapping such as {rate: 0.5%, status: 503, spacing: even}"
            ) from None
    return value


#: Pydantic field type for error models; a bare fraction (``errors: 0.5%``) means ``ErrorModel(rate=...)``.
ErrorSpec = Annotated[ErrorModel, BeforeValidator(_error_shorthand)]

_ADAPTER: TypeAdapter[ErrorModel] = TypeAdapter(ErrorSpec)


def parse_errors(obj: Any, *, path: str = "errors", source: str = "") -> ErrorModel:
    """Build an :class:`ErrorModel` from config data (``"0.5%"``, ``0.005``, a mapping or a model).

    Raises
    ------
    meshsim.ConfigError
        With the field path, the offending value and what is allowed.
    """
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise config_error_from(exc, path=path, source=source) from exc


def _even_outcomes(rate: float, status: int) -> Iterator[int]:
    """Endless outcomes for even spacing: request n fails iff floor(n p/q) > floor((n-1) p/q)."""
    frac = Fraction(rate).limit_denominator(EVEN_MAX_DENOMINATOR)
    p, q = frac.numerator, frac.denominator
    if p == 0:
        return itertools.repeat(0)
    if q <= _CYCLE_MAX_PERIOD:  # the pattern repeats every q requests: precompute one period
        return itertools.cycle([status if (n * p) // q > ((n - 1) * p) // q else 0 for n in range(1, q + 1)])
    return _even_accumulator(p, q, status)


def _even_accumulator(p: int, q: int, status: int) -> Iterator[int]:
    acc = 0  # (n * p) mod q
    while True:
        acc += p
        if acc >= q:
            acc -= q
            yield status
        else:
            yield 0


class ErrorDraw:
    """Per-request error outcomes for one service: ``draw()`` is 0 (success) or the error status.

    Parameters
    ----------
    model
        An :class:`ErrorModel` (or anything :func:`parse_errors` accepts).
    rng
        Random stream for ``"random"`` spacing (Generator, int seed or None);
        unused for ``"even"`` spacing and for rates 0 and 1.
    block
        Uniforms drawn per numpy call (the outcomes of ``block`` requests at a time).

    Notes
    -----
    With ``"random"`` spacing request ``i`` fails iff ``u_i < rate`` for the
    ``i``-th uniform of ``rng``, so the sequence depends only on the generator's
    state; outcomes are precomputed a block at a time and ``__call__`` only
    advances a C-level iterator.

    Examples
    --------
    >>> draw = ErrorDraw(ErrorModel(rate=0.25, status=503, spacing="even"), rng=None)
    >>> [draw() for _ in range(8)]
    [0, 0, 0, 503, 0, 0, 0, 503]
    """

    __slots__ = ("model", "_next")

    def __init__(
        self, model: ErrorModel | Any, rng: np.random.Generator | int | None, block: int = 4096
    ) -> None:
        if not isinstance(model, ErrorModel):
            model = parse_errors(model)
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be an int >= 1; got {block!r}")
        self.model = model
        rate, status = model.rate, model.status
        if rate <= 0.0:
            it: Iterator[int] = itertools.repeat(0)
        elif model.spacing == "even":
            it = _even_outcomes(rate, status)
        elif rate >= 1.0:
            it = itertools.repeat(status)
        else:
            gen = as_generator(rng)

            def next_block() -> list[int]:
                return np.where(gen.random(block) < rate, status, 0).tolist()

            it = itertools.chain.from_iterable(iter(next_block, None))
        self._next: Callable[[], int] = it.__next__

    def __call__(self) -> int:
        """Outcome of the next request: 0 for success, else the error status."""
        return self._next()

    def __repr__(self) -> str:
        return f"ErrorDraw({self.model.describe()})"
