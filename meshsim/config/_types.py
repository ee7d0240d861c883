"""Field types with units: durations, rates, fractions, counts, names.

Each is an ``Annotated`` type whose before-validator calls the parser of
:mod:`meshsim.units` and turns its ``ValueError`` into a validation error that
``meshsim.config`` reports verbatim, with the field path in front.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator

from meshsim.policies._model import refuse
from meshsim.units import parse_count, parse_duration, parse_fraction, parse_rate

__all__ = [
    "Duration",
    "PositiveDuration",
    "Rate",
    "PositiveRate",
    "Fraction",
    "Count",
    "PositiveCount",
    "QueueLimit",
    "Name",
    "NAME_RE",
    "check_name",
]

#: service, version, zone and source names: no dots (dotted override paths), no ``|`` (Envoy cluster names)
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")
NAME_HELP = "letters, digits, '-' and '_', starting and ending with a letter or digit"


def _via(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    def validate(value: object) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise refuse(str(exc)) from None

    return validate


def _positive_duration(value: object) -> float:
    seconds = _via(parse_duration)(value)
    if seconds <= 0:
        raise refuse(f"{value!r} must be a duration > 0 such as 250ms, 1.5s, 2m")
    return seconds


def _positive_rate(value: object) -> float:
    rate = _via(parse_rate)(value)
    if rate <= 0:
        raise refuse(f"{value!r} must be a rate > 0 such as 200/s, 12k/min")
    return rate


def _count_at_least(minimum: int) -> Callable[[object], int]:
    def validate(value: object) -> int:
        n = _via(parse_count)(value)
        if n < minimum:
            raise refuse(f"{value!r} is too small; must be an integer >= {minimum}")
        return n

    return validate


_UNLIMITED = {"unlimited", "none", "null", "inf", "infinite"}


def _queue_limit(value: object) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _UNLIMITED):
        return None
    try:
        return parse_count(value)
    except ValueError:
        raise refuse(f"{value!r} is not a queue size; expected an integer >= 0 or 'unlimited'") from None


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid service/version/zone name, else raise."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise refuse(f"{value!r} is not a valid {what}: use {NAME_HELP}")
    return value


Duration = Annotated[float, BeforeValidator(_via(parse_duration))]
"""Seconds (>= 0) from ``"250ms"``, ``"1.5s"``, ``2`` ..."""

PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
"""Seconds (> 0)."""

Rate = Annotated[float, BeforeValidator(_via(parse_rate))]
"""Events per second (>= 0) from ``"200/s"``, ``"12k/min"`` ..."""

PositiveRate = Annotated[float, BeforeValidator(_positive_rate)]
"""Events per second (> 0)."""

Fraction = Annotated[float, BeforeValidator(_via(parse_fraction))]
"""A probability in [0, 1] from ``"0.5%"`` or ``0.005``."""

Count = Annotated[int, BeforeValidator(_count_at_least(0))]
"""An integer >= 0 (``12``, ``"10k"``)."""

PositiveCount = Annotated[int, BeforeValidator(_count_at_least(1))]
"""An integer >= 1."""

QueueLimit = Annotated[int | None, BeforeValidator(_queue_limit)]
"""An integer >= 0, or ``None`` for unlimited (``"unlimited"``, ``null``)."""

Name = Annotated[str, BeforeValidator(check_name)]
"""A service, version or zone name."""
